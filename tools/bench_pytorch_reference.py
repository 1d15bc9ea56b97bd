#!/usr/bin/env python3
"""PyTorch reference for tools/bench-train: the same CIFAR ResNets (Nguyen et al. 2021:
post-activation basic blocks, 1x1 stride-2 projection shortcuts with bias, no conv bias before
BN), the same step (forward, cross-entropy, backward, SGD momentum 0.9 with weight decay) and
the same measurement (median of timed steps after warm-up), so that Blockscope's throughput can
be reported as a ratio measured in the same run on the same machine.

Needs torch (e.g. pip install torch==2.13.0+cpu); not part of the test suite.
Prints one JSON object per line: model, mode, layout, batch, images_per_s, threads, torch.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride, residual):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.residual = residual
        self.shortcut = None
        if residual and (stride != 1 or cin != cout):
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, 0, bias=True)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + (self.shortcut(x) if self.shortcut is not None else x)
        return F.relu(out)


class ResNet(nn.Module):
    def __init__(self, depth, k, residual=True, classes=10, channels=3):
        super().__init__()
        n = (depth - 2) // 6
        widths = [max(1, round(16 * k)), max(1, round(32 * k)), max(1, round(64 * k))]
        self.stem = nn.Sequential(nn.Conv2d(channels, widths[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        blocks, cin = [], widths[0]
        for s, w in enumerate(widths):
            for i in range(n):
                blocks.append(Block(cin, w, 2 if (s > 0 and i == 0) else 1, residual))
                cin = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(widths[2], classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


MODELS = {"resnet20-k1": (20, 1), "resnet56-k1": (56, 1), "resnet20-k2": (20, 2)}


def measure(model_name, mode, layout, steps, warmup):
    depth, k = MODELS[model_name]
    torch.manual_seed(0)
    net = ResNet(depth, k)
    batch = 128 if mode == "train" else 256
    x = torch.rand(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    if layout == "channels_last":
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    times = []
    if mode == "train":
        net.train()
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        for s in range(warmup + steps):
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
            if s >= warmup:
                times.append(time.perf_counter() - t0)
    else:
        net.eval()
        with torch.no_grad():
            for s in range(warmup + steps):
                t0 = time.perf_counter()
                net(x)
                if s >= warmup:
                    times.append(time.perf_counter() - t0)
    return batch / statistics.median(times), batch


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--layouts", default="channels_last,contiguous")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    for m in a.models.split(","):
        for mode in ("train", "infer"):
            for layout in a.layouts.split(","):
                ips, batch = measure(m, mode, layout, a.steps, a.warmup)
                print(json.dumps({"model": m, "mode": mode, "layout": layout, "batch": batch,
                                  "images_per_s": round(ips, 1), "threads": torch.get_num_threads(),
                                  "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
