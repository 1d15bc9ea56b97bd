#!/usr/bin/env python3
"""PyTorch reference of Blockscope's training recipe, for checking the engine's accuracy on
real data: CIFAR ResNet (same architecture as tools/bench_pytorch_reference.py), the first N
CIFAR-10 training images (standard binary layout), inputs in [0, 1], reflect-pad 4 + random
32x32 crop + horizontal flip, SGD momentum 0.9, batch 128, cosine learning rate per step,
weight decay on conv and linear weights only. Prints the test accuracy after every epoch.

Not part of the test suite; needs torch and numpy.
  python3 tools/reference_train_pytorch.py --data DIR [--first 10000] [--epochs 30]
"""
import argparse
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from bench_pytorch_reference import ResNet


def load_cifar10(d):
    def read(names):
        raw = b"".join(open(os.path.join(d, n), "rb").read() for n in names)
        a = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3073)
        return a[:, 1:].reshape(-1, 3, 32, 32), a[:, 0].astype(np.int64)
    if os.path.isdir(os.path.join(d, "cifar-10-batches-bin")):
        d = os.path.join(d, "cifar-10-batches-bin")
    train = read([f"data_batch_{i}.bin" for i in range(1, 6)])
    test = read(["test_batch.bin"])
    return train, test


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--first", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--wd", type=float, default=5e-4)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    (xtr, ytr), (xte, yte) = load_cifar10(a.data)
    xtr, ytr = xtr[:a.first], ytr[:a.first]
    xtr = torch.from_numpy(xtr.astype(np.float32) / 255.0)
    xte = torch.from_numpy(xte.astype(np.float32) / 255.0)
    ytr, yte = torch.from_numpy(ytr), torch.from_numpy(yte)

    net = ResNet(a.depth, a.width).to(memory_format=torch.channels_last)
    for m in net.modules():   # He normal (fan-in) as the engine
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                torch.nn.init.zeros_(m.bias)
    decay = [p for n, p in net.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in net.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": a.wd},
                           {"params": no_decay, "weight_decay": 0.0}], lr=a.lr, momentum=0.9)
    steps_per_epoch = math.ceil(len(xtr) / a.batch)
    total = steps_per_epoch * a.epochs
    step = 0
    for epoch in range(1, a.epochs + 1):
        net.train()
        t0 = time.time()
        order = torch.from_numpy(rng.permutation(len(xtr)))
        for s in range(steps_per_epoch):
            idx = order[s * a.batch:(s + 1) * a.batch]
            x = F.pad(xtr[idx], (4, 4, 4, 4), mode="reflect")
            oy = rng.integers(0, 9, len(idx))
            ox = rng.integers(0, 9, len(idx))
            flip = rng.integers(0, 2, len(idx))
            crops = [x[i, :, oy[i]:oy[i] + 32, ox[i]:ox[i] + 32] for i in range(len(idx))]
            crops = [c.flip(-1) if flip[i] else c for i, c in enumerate(crops)]
            x = torch.stack(crops).contiguous(memory_format=torch.channels_last)
            lr = a.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            for g in opt.param_groups:
                g["lr"] = lr
            loss = F.cross_entropy(net(x), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        net.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, len(xte), 500):
                xb = xte[i:i + 500].contiguous(memory_format=torch.channels_last)
                correct += (net(xb).argmax(1) == yte[i:i + 500]).sum().item()
        print(f"epoch {epoch:3d}/{a.epochs}  test acc {100 * correct / len(xte):.2f}%  "
              f"{time.time() - t0:.1f} s", flush=True)


if __name__ == "__main__":
    main()
