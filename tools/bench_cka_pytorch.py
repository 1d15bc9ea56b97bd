#!/usr/bin/env python3
"""PyTorch reference timing for Blockscope's minibatch-CKA benchmark (tools/bench-cka).

What it measures: the whole minibatch-CKA heatmap (docs/ANALYSIS.md, "CKA estimators": unbiased
HSIC1 of Song et al. 2012, the estimator of Nguyen et al. 2021) over EVERY representation of a
randomly initialised CIFAR ResNet (Nguyen et al. 2021; README.md, "The model family":
post-activation basic blocks, depth 6n+2, stage channels 16k/32k/64k, 1x1 stride-2 projection
shortcuts without BN, He-normal init, eval mode), written the way a good PyTorch user would
write it:
  * an explicit forward pass (no hooks) that hands each of the 21n+9 representations (input,
    stem conv/bn/relu, per block conv1 bn1 relu1 conv2 bn2 [shortcut] add out, pool, logits,
    probs) to the estimator as soon as it exists, flattened per example, so at most a few
    activations are alive at once;
  * per representation: centre the columns over the minibatch (needed for fp32 accuracy),
    Gram K = X X^T in fp32 (torch.mm written straight into its row of G), U-centre K in place;
  * the L x m^2 matrix G of U-centred Grams of one minibatch gives all layer pairs at once:
    S += (G @ G.T).double(); at the end CKA = S / sqrt(diag(S) diag(S)^T).
Timings, all after one untimed warm-up batch, with torch.no_grad():
  seconds_total    all batches from scratch: forward + Grams + products (Blockscope: seconds_scratch);
  seconds_forward  the same forward passes alone, every representation produced but unused
                   (a separate pass, as Blockscope's seconds_forward_only);
  seconds_cached   the heatmap again from the kept G of every batch: the products only
                   (median of CACHED_REPEATS = 5 runs).

tools/bench-cka runs this script (with --json, via BLOCKSCOPE_TORCH_PYTHON) right after
Blockscope's own `blockscope-engine bench-cka` for each model, on the same images (the first
batches x batch_size CIFAR-10 test images, or random images of the same shape), and reports
the ratios torch / Blockscope measured in that one run on that machine.

Usage: bench_cka_pytorch.py [--depth 56] [--width 1] [--batches 10] [--batch-size 256]
                            [--threads 2] [--data CIFAR_BIN_DIR] [--json] [--check]
--check verifies, on a tiny random case, that this is the same estimator as the explicit
HSIC1 formula (docs/ANALYSIS.md, "CKA estimators"; float64 numpy) and prints the max abs
difference of the heatmaps.
Needs torch and numpy (e.g. torch==2.13.0+cpu); not part of the test suite.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# Memory layout of the activations. channels_last (NHWC) is oneDNN's preferred CPU layout and
# was the faster of the two here for these small-channel convolutions; it also makes the
# per-example flatten (permute to N,H,W,C then reshape) a free view instead of a copy.
# The Gram is invariant to the order of the features, so HWC vs CHW flattening is irrelevant.
MEMORY_FORMAT = torch.channels_last

CACHED_REPEATS = 5  # the cached timing is the median of this many runs


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, 0, bias=True)  # no BN


class ResNet(nn.Module):
    """CIFAR ResNet of Nguyen et al. 2021 (residual variant; README.md, "The model family")."""

    def __init__(self, depth, k, classes=10):
        super().__init__()
        assert (depth - 2) % 6 == 0, "depth must be 6n+2"
        n = (depth - 2) // 6
        widths = [max(1, round(16 * k)), max(1, round(32 * k)), max(1, round(64 * k))]
        self.stem_conv = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(widths[0])
        blocks, cin = [], widths[0]
        for s, w in enumerate(widths):
            for i in range(n):
                blocks.append(Block(cin, w, 2 if (s > 0 and i == 0) else 1))
                cin = w
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(widths[2], classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")  # He normal
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def representation_count(self):
        return 4 + sum(8 if b.shortcut is not None else 7 for b in self.blocks) + 3

    def forward_reps(self, x, tap):
        """Explicit forward; tap(h) receives every representation, in Blockscope's order."""
        tap(x)                                   # input
        h = self.stem_conv(x); tap(h)            # stem.conv
        h = self.stem_bn(h); tap(h)              # stem.bn
        h = F.relu(h); tap(h)                    # stem.relu
        for b in self.blocks:
            a = b.conv1(h); tap(a)               # conv1
            a = b.bn1(a); tap(a)                 # bn1
            a = F.relu(a); tap(a)                # relu1
            a = b.conv2(a); tap(a)               # conv2
            a = b.bn2(a); tap(a)                 # bn2
            if b.shortcut is not None:
                s = b.shortcut(h); tap(s)        # shortcut
            else:
                s = h
            a = a + s; tap(a)                    # add
            h = F.relu(a); tap(h)                # out
        p = h.mean(dim=(2, 3)); tap(p)           # pool
        z = self.fc(p); tap(z)                   # logits
        tap(torch.softmax(z, dim=1))             # probs
        return z


def flat(t):
    """(N, -1) per example; a view for channels_last 4-D tensors."""
    if t.dim() == 4:
        t = t.permute(0, 2, 3, 1)
    return t.reshape(t.shape[0], -1)


def ucentred_gram_into(x, out):
    """out (m x m view) <- U-centred Gram of the column-centred x, fp32."""
    m = x.shape[0]
    xc = x - x.mean(dim=0, keepdim=True)
    torch.mm(xc, xc.t(), out=out)
    out.fill_diagonal_(0)
    r = out.sum(dim=0) / (m - 2)
    r -= r.sum() / (2 * (m - 1))
    out -= r[:, None]
    out -= r[None, :]
    out.fill_diagonal_(0)


def grams_of_batch(model, x, L):
    """Forward one minibatch and return its L x m^2 matrix of U-centred Grams."""
    m = x.shape[0]
    G = torch.empty(L, m * m, dtype=torch.float32)
    row = [0]

    def tap(t):
        ucentred_gram_into(flat(t), G[row[0]].view(m, m))
        row[0] += 1

    model.forward_reps(x, tap)
    assert row[0] == L, (row[0], L)
    return G


def cka_from_numerator(S):
    d = torch.sqrt(torch.diagonal(S))
    return S / (d[:, None] * d[None, :])


def load_images(args, n):
    if args.data:
        path = os.path.join(args.data, "test_batch.bin")
        raw = np.fromfile(path, dtype=np.uint8)
        records = raw.size // 3073
        if records < n:
            sys.exit(f"bench_cka_pytorch: {path} holds {records} images, need {n}")
        img = raw[: n * 3073].reshape(n, 3073)[:, 1:].reshape(n, 3, 32, 32)
        return torch.from_numpy(img.astype(np.float32) / 255.0), "cifar10-test"
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, 32, 32, generator=g), "random"


def model_name(depth, width):
    return f"resnet{depth}-k{width:g}"


def bench(args):
    torch.manual_seed(0)
    model = ResNet(args.depth, args.width).eval().to(memory_format=MEMORY_FORMAT)
    L = model.representation_count()
    m, nb = args.batch_size, args.batches
    images, data_name = load_images(args, nb * m)
    batches = [images[i * m:(i + 1) * m].contiguous(memory_format=MEMORY_FORMAT) for i in range(nb)]

    with torch.no_grad():
        # Warm-up (untimed): one full batch through forward, Grams and product.
        G = grams_of_batch(model, batches[0], L)
        (G @ G.t()).double()
        del G

        # From scratch: forward + Grams + products, keeping every batch's G for the cache run.
        t = time.perf_counter()
        cache = []
        S = torch.zeros(L, L, dtype=torch.float64)
        for x in batches:
            G = grams_of_batch(model, x, L)
            S += (G @ G.t()).double()
            cache.append(G)
        cka = cka_from_numerator(S)
        seconds_total = time.perf_counter() - t

        # Forward passes alone, every representation produced but unused.
        t = time.perf_counter()
        for x in batches:
            model.forward_reps(x, lambda _t: None)
        seconds_forward = time.perf_counter() - t

        # From cached Grams: the products only. The median of CACHED_REPEATS runs, as
        # blockscope-engine bench-cka does (tens of milliseconds, where one stall shows).
        cached_times = []
        for _ in range(CACHED_REPEATS):
            t = time.perf_counter()
            S2 = torch.zeros(L, L, dtype=torch.float64)
            for G in cache:
                S2 += (G @ G.t()).double()
            cka2 = cka_from_numerator(S2)
            cached_times.append(time.perf_counter() - t)
            # The same products again; BLAS may split the work differently from call to call,
            # so only rounding may differ.
            assert torch.allclose(cka, cka2, rtol=1e-5, atol=1e-6, equal_nan=True), (cka - cka2).abs().max()
        seconds_cached = sorted(cached_times)[CACHED_REPEATS // 2]

    r = dict(model=model_name(args.depth, args.width), representations=L, examples=nb * m,
             seconds_total=round(seconds_total, 4), seconds_forward=round(seconds_forward, 4),
             seconds_cached=round(seconds_cached, 4), torch_version=torch.__version__,
             threads=torch.get_num_threads(), data=data_name)
    if args.json:
        print(json.dumps(r), flush=True)
    else:
        print(f"{r['model']}: {L} representations x {nb * m} examples: total {seconds_total:.2f} s "
              f"(forward alone {seconds_forward:.2f} s), cached {seconds_cached:.3f} s, "
              f"torch {torch.__version__}, {r['threads']} threads, {data_name} images", flush=True)


def hsic1_numpy(K, Lm):
    """Explicit unbiased HSIC1 (docs/ANALYSIS.md, "CKA estimators"), float64."""
    m = K.shape[0]
    Kt = K.copy(); np.fill_diagonal(Kt, 0)
    Lt = Lm.copy(); np.fill_diagonal(Lt, 0)
    one = np.ones(m)
    return (np.trace(Kt @ Lt) + (one @ Kt @ one) * (one @ Lt @ one) / ((m - 1) * (m - 2))
            - 2.0 / (m - 2) * (one @ Kt @ Lt @ one)) / (m * (m - 3))


def check():
    torch.manual_seed(0)
    model = ResNet(8, 0.5).eval().to(memory_format=MEMORY_FORMAT)
    L = model.representation_count()
    m, nb = 16, 2
    g = torch.Generator().manual_seed(2)
    images = torch.rand(nb * m, 3, 32, 32, generator=g)
    S = torch.zeros(L, L, dtype=torch.float64)
    H = np.zeros((L, L))
    with torch.no_grad():
        for i in range(nb):
            x = images[i * m:(i + 1) * m].contiguous(memory_format=MEMORY_FORMAT)
            G = grams_of_batch(model, x, L)
            S += (G @ G.t()).double()
            reps = []
            model.forward_reps(x, lambda t: reps.append(flat(t).double().numpy()))
            grams = [X @ X.T for X in reps]  # raw (uncentred) features, float64
            for a in range(L):
                for b in range(a, L):
                    H[a, b] += hsic1_numpy(grams[a], grams[b]) / nb
                    H[b, a] = H[a, b]
    ours = cka_from_numerator(S).numpy()
    ref = H / np.sqrt(np.outer(np.diag(H), np.diag(H)))
    # Also the identity <vec U(K), vec U(L)> = m(m-3) HSIC1(K, L), per-batch mean.
    num = S.numpy() / (nb * m * (m - 3))
    print(f"check: resnet8-k0.5, {L} representations, {nb} x {m} random images: "
          f"max |CKA torch fp32 - numpy fp64 HSIC1| = {np.abs(ours - ref).max():.2e}, "
          f"max rel |HSIC1 numerator diff| = {np.abs(num - H).max() / np.abs(H).max():.2e}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--depth", type=int, default=56)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--batches", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data", help="cifar-10-batches-bin directory (default: random images)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--check", action="store_true",
                   help="compare with a float64 numpy HSIC1 reference on a tiny case and exit")
    args = p.parse_args()
    if args.batches < 1 or args.batch_size < 4:
        p.error("--batches >= 1, --batch-size >= 4")
    torch.set_num_threads(args.threads)
    if args.check:
        check()
    else:
        bench(args)


if __name__ == "__main__":
    main()
