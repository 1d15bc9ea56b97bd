#!/usr/bin/env python3
"""A PyTorch ResNet against a Blockscope ResNet of the same depth, on the same CIFAR-10 test
images, through the daemon (issue 14's example; README.md, "Your own PyTorch models").

1. Trains a torchvision-style CIFAR ResNet in PyTorch (torchvision's BasicBlock when
   torchvision is installed, else the same block written out: 3x3 stem, stages of 16/32/64
   channels, 1x1-conv + BN downsampling) on a random `--fraction` of the CIFAR-10 training
   set, with SGD, crops and flips.
2. `torch_heatmap` streams every leaf module's output over the first `--test-examples` test
   images (batches named "cifar10:test[a:b]") and returns the within-model minibatch-CKA
   heatmap and its block verdict.
3. The same images through a stored Blockscope model (`--blockscope-model`, or one the daemon
   trains now with the same depth, fraction and epochs): the cross-model heatmap, from the
   torch model's cached Grams and the daemon's own forward passes.
4. The same estimator written in plain PyTorch over the same hooked outputs (U-centred Grams
   per batch, accumulated products; tools/bench_cka_pytorch.py's method), timed against
   step 2, and the largest difference between the two heatmaps.

Writes into --out: torch_heatmap.png, cross_heatmap.png, summary.json. Needs torch and numpy
and a running daemon that knows cifar10 (`blockscope data`).

  python3 tools/example_torch_resnet.py --data DIR/cifar-10-batches-bin --out /tmp/ex
"""
import argparse
import json
import os
import struct
import sys
import time
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blockscope_client as bc  # noqa: E402
import blockscope_torch as bt  # noqa: E402

MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32).reshape(1, 3, 1, 1)
STD = np.array([0.2470, 0.2435, 0.2616], dtype=np.float32).reshape(1, 3, 1, 1)


# --- data ---------------------------------------------------------------------------------

def load_cifar(directory, files):
    """The standard binary distribution: records of 1 label byte + 3072 pixel bytes (CHW)."""
    xs, ys = [], []
    for f in files:
        raw = np.fromfile(os.path.join(directory, f), dtype=np.uint8).reshape(-1, 3073)
        ys.append(raw[:, 0].astype(np.int64))
        xs.append(raw[:, 1:].reshape(-1, 3, 32, 32))
    x = (np.concatenate(xs).astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(x), torch.from_numpy(np.concatenate(ys))


def augment(x, rng):
    """Random 4-pixel-padded 32x32 crops and horizontal flips, as one gather."""
    n = x.shape[0]
    padded = F.pad(x, (4, 4, 4, 4))
    steps = torch.arange(32)
    rows = torch.from_numpy(rng.integers(0, 9, n))[:, None] + steps          # [n, 32]
    cols = torch.from_numpy(rng.integers(0, 9, n))[:, None] + steps
    flip = torch.from_numpy(rng.random(n) < 0.5)[:, None]
    cols = torch.where(flip, cols.flip(1), cols)
    return padded[torch.arange(n)[:, None, None, None], torch.arange(3)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


# --- the model ----------------------------------------------------------------------------

try:
    from torchvision.models.resnet import BasicBlock
except Exception:  # torchvision absent or not matching torch: the same block, written out
    class BasicBlock(nn.Module):
        expansion = 1

        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x):
            identity = x
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            if self.downsample is not None:
                identity = self.downsample(x)
            return self.relu(out + identity)


class CifarResNet(nn.Module):
    """torchvision's ResNet layout (conv1/bn1/relu, layer1-3 of BasicBlocks, avgpool, fc) at
    CIFAR scale: depth 6n+2, n blocks per stage."""

    def __init__(self, depth, width=1, classes=10):
        super().__init__()
        n = (depth - 2) // 6
        c = 16 * width
        self.conv1 = nn.Conv2d(3, c, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        layers, inplanes = [], c
        for stage, planes in enumerate([c, 2 * c, 4 * c]):
            blocks = []
            for b in range(n):
                stride = 2 if stage > 0 and b == 0 else 1
                down = None
                if stride != 1 or inplanes != planes:
                    down = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                         nn.BatchNorm2d(planes))
                blocks.append(BasicBlock(inplanes, planes, stride, down))
                inplanes = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def train(model, x, y, epochs, seed, batch_size=128, lr=0.1):
    rng = np.random.default_rng(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    model.train()
    for epoch in range(epochs):
        order = torch.from_numpy(rng.permutation(len(x)))
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            loss = F.cross_entropy(model(augment(x[idx], rng)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        print("  epoch %d/%d: loss %.3f" % (epoch + 1, epochs, loss.item()), flush=True)


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + 500]).argmax(1) for i in range(0, len(x), 500)])
    return float((pred == y).float().mean())


# --- the same estimator in plain PyTorch --------------------------------------------------

def torch_minibatch_cka(model, loader, modules):
    """Unbiased minibatch CKA (docs/ANALYSIS.md, "CKA estimators") over the hooked outputs:
    per batch, centre columns, K = X X^T, U-centre; S += G G^T over the U-centred Grams."""
    grams, S = [], None
    handles = []

    def hook(_m, _i, out):
        if not isinstance(out, torch.Tensor):
            return
        x = out.detach().reshape(out.shape[0], -1).float()
        x = x - x.mean(0, keepdim=True)
        K = x @ x.T
        m = K.shape[0]
        K.fill_diagonal_(0)
        r = K.sum(1, keepdim=True)
        total = r.sum()
        U = K - r / (m - 2) - r.T / (m - 2) + total / ((m - 1) * (m - 2))
        U.fill_diagonal_(0)
        grams.append(U.reshape(-1))

    for _, mod in modules:
        handles.append(mod.register_forward_hook(hook))
    model.eval()
    try:
        with torch.no_grad():
            for batch in loader:
                grams.clear()
                model(batch[0])
                G = torch.stack(grams)
                P = (G @ G.T).double()
                S = P if S is None else S + P
    finally:
        for h in handles:
            h.remove()
    d = S.diagonal().sqrt()
    return (S / torch.outer(d, d)).numpy()


# --- output -------------------------------------------------------------------------------

def write_png(path, values, scale=4):
    """A heatmap as an RGB PNG (viridis-like ramp, undefined cells grey), no plotting library."""
    stops = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], float)
    v = np.array([[np.nan if c is None else c for c in row] for row in values], float)
    t = np.clip(np.nan_to_num(v, nan=0.0), 0, 1) * (len(stops) - 1)
    lo = np.floor(t).astype(int).clip(0, len(stops) - 2)
    frac = (t - lo)[..., None]
    rgb = stops[lo] * (1 - frac) + stops[lo + 1] * frac
    rgb[np.isnan(v)] = 128
    img = np.repeat(np.repeat(rgb.astype(np.uint8), scale, 0), scale, 1)
    raw = b"".join(b"\x00" + row.tobytes() for row in img)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", img.shape[1], img.shape[0], 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def verdict(result):
    b = result.get("block_structure") or {}
    if not b:
        return "no block-structure result"
    ranges = ", ".join("%s..%s" % (r["first"], r["last"]) for r in b.get("ranges", []))
    return "%s (score %.2f%s)" % ("block structure" if b.get("has_block_structure") else "no block structure",
                                  b.get("block_score", 0.0), "; " + ranges if ranges else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="cifar-10-batches-bin directory")
    ap.add_argument("--out", required=True)
    ap.add_argument("--socket", default=None)
    ap.add_argument("--depth", type=int, default=14)
    ap.add_argument("--fraction", type=float, default=0.06)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-examples", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model-file", default=None,
                    help="the PyTorch model's weights: loaded if the file exists, else saved after training")
    ap.add_argument("--blockscope-model", default=None,
                    help="a stored model to compare with (default: the daemon trains one now)")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    summary = {"depth": args.depth, "fraction": args.fraction, "epochs": args.epochs,
               "test_examples": args.test_examples, "torch": torch.__version__}

    x_train, y_train = load_cifar(args.data, ["data_batch_%d.bin" % i for i in range(1, 6)])
    x_test, y_test = load_cifar(args.data, ["test_batch.bin"])
    keep = np.random.default_rng(args.seed).permutation(len(x_train))[:int(round(args.fraction * len(x_train)))]
    model = CifarResNet(args.depth)
    if args.model_file and os.path.exists(args.model_file):
        model.load_state_dict(torch.load(args.model_file))
        print("loaded the PyTorch ResNet-%d from %s" % (args.depth, args.model_file), flush=True)
    else:
        print("training a PyTorch ResNet-%d on %d images, %d epochs" % (args.depth, len(keep), args.epochs), flush=True)
        t = time.perf_counter()
        train(model, x_train[keep], y_train[keep], args.epochs, args.seed)
        summary["torch_train_seconds"] = round(time.perf_counter() - t, 1)
        if args.model_file:
            torch.save(model.state_dict(), args.model_file)
    summary["torch_test_accuracy"] = accuracy(model, x_test, y_test)
    print("  test accuracy %.2f%%" % (100 * summary["torch_test_accuracy"]), flush=True)

    n = args.test_examples - args.test_examples % args.batch_size
    test = torch.utils.data.TensorDataset(x_test[:n], y_test[:n])
    loader = torch.utils.data.DataLoader(test, batch_size=args.batch_size, shuffle=False)
    client = bc.Client(args.socket, timeout=None)

    t = time.perf_counter()
    own = bt.torch_heatmap(model, loader, client=client, name="torch-resnet%d" % args.depth,
                           dataset="cifar10:test")
    summary["blockscope_seconds_stream_and_heatmap"] = round(time.perf_counter() - t, 2)
    summary["representations"] = len(own["row_names"])
    summary["torch_verdict"] = verdict(own)
    write_png(os.path.join(args.out, "torch_heatmap.png"), own["cka"])
    print("within-model heatmap: %d representations, %s, %.1f s (stream + heatmap)"
          % (len(own["row_names"]), summary["torch_verdict"], summary["blockscope_seconds_stream_and_heatmap"]), flush=True)

    modules = bt._select_modules(model, "all")
    t = time.perf_counter()
    ref = torch_minibatch_cka(model, loader, modules)
    summary["pure_torch_seconds"] = round(time.perf_counter() - t, 2)
    ours = np.array([[np.nan if c is None else c for c in row] for row in own["cka"]])
    summary["max_abs_difference_vs_pure_torch"] = float(np.nanmax(np.abs(ours - ref)))
    print("plain PyTorch, same estimator: %.1f s; largest difference %.2e"
          % (summary["pure_torch_seconds"], summary["max_abs_difference_vs_pure_torch"]), flush=True)

    other = args.blockscope_model
    if other is None:
        print("the daemon trains a Blockscope ResNet-%d (same fraction and epochs)" % args.depth, flush=True)
        job = client.train(depth=args.depth, dataset="cifar10", fraction=args.fraction,
                           epochs=args.epochs, seed=args.seed)
        done = client.watch(job["job"])
        other = done.get("model", job["model"])
    described = client.describe(other)
    summary["blockscope_model"] = other
    summary["blockscope_test_accuracy"] = described.get("test_accuracy")
    t = time.perf_counter()
    cross = client.heatmap("torch-resnet%d" % args.depth, other=other, foreign=True, other_foreign=False,
                           batches=own["streamed"]["batches"])
    summary["cross_seconds"] = round(time.perf_counter() - t, 2)
    write_png(os.path.join(args.out, "cross_heatmap.png"), cross["cka"])
    rows, cols = cross["row_names"], cross["column_names"]
    best = [max((c for c in row if c is not None), default=float("nan")) for row in cross["cka"]]
    summary["cross_best_match_mean"] = float(np.nanmean(best))
    print("cross-model heatmap %d x %d in %.1f s" % (len(rows), len(cols), summary["cross_seconds"]), flush=True)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
