#!/usr/bin/env python3
"""The foreign-model half of tools/bench-foreign: streams every representation of a CIFAR
ResNet (the 21n+9 of depth 6n+2, shapes as Blockscope's own: input, stem conv/bn/relu, per
block conv1 bn1 relu1 conv2 bn2 [shortcut] add out, pool, logits, probs) for `batches`
minibatches of `batch_size` examples to a running daemon as a foreign model (SESSION_OPEN,
SESSION_BATCH frames of up to 64 MiB of tensors, two frames in flight; the tensors in the
payload, or with --transfer memfd in a memfd per frame in flight), then asks for the
minibatch-CKA heatmap over all of them from the Gram cache (HEATMAP with `batches`).

The activations are random float32 arrays made before the clock starts: they stand for what a
client's forward pass left in memory (the benchmark times what comes after it). Every batch
sends the same arrays under its own key; the daemon computes every Gram anyway. With
--derive-batchnorm the BatchNorms are declared channel_affine maps of their convs (random
scales and shifts) and not sent, as tools/blockscope_torch.py does for a PyTorch model.

Prints one JSON object: representations, examples, bytes, seconds_stream (all frames sent
and answered, Grams included), seconds_heatmap (the heatmap from the cache), gb_per_s
(bytes / seconds_stream), frames. Needs numpy.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blockscope_client as bc  # noqa: E402

FRAME_TENSOR_BYTES = 64 << 20


def resnet_representations(depth, width=1):
    """(name, per-example shape, block) of every representation, in forward order."""
    assert (depth - 2) % 6 == 0, "depth must be 6n+2"
    n = (depth - 2) // 6
    reps = [("input", (3, 32, 32), 0)]
    c, hw = 16 * width, 32
    reps += [("stem.%s" % k, (c, hw, hw), 0) for k in ("conv", "bn", "relu")]
    block = 0
    for stage in range(3):
        for b in range(n):
            down = stage > 0 and b == 0
            if down:
                c, hw = c * 2, hw // 2
            names = ["conv1", "bn1", "relu1", "conv2", "bn2"] + (["shortcut"] if down else []) + ["add", "out"]
            reps += [("s%db%d.%s" % (stage + 1, b + 1, k), (c, hw, hw), block) for k in names]
            block += 1
    last = max(0, block - 1)
    reps += [("pool", (c,), last), ("logits", (10,), last), ("probs", (10,), last)]
    return reps


def frames_of(reps, batch_size):
    """Consecutive representations grouped into frames of at most 64 MiB of f32 tensors."""
    frames, current, size = [], [], 0
    for name, shape, _ in reps:
        nbytes = batch_size * int(np.prod(shape)) * 4
        if current and size + nbytes > FRAME_TENSOR_BYTES:
            frames.append(current)
            current, size = [], 0
        current.append(name)
        size += nbytes
    if current:
        frames.append(current)
    return frames


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--socket", required=True)
    ap.add_argument("--depth", type=int, default=56)
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--in-flight", type=int, default=2, help="frames sent before waiting for the oldest answer")
    ap.add_argument("--transfer", choices=["socket", "memfd"], default="socket",
                    help="tensors in the frames' payloads, or in memfds passed with them")
    ap.add_argument("--derive-batchnorm", action="store_true",
                    help="declare every BatchNorm a channel_affine map of its conv (as "
                         "blockscope_torch does): never sent, its Gram from the conv's")
    args = ap.parse_args()

    reps = resnet_representations(args.depth)
    rng = np.random.default_rng(0)
    # A BatchNorm's conv: the representation before it (stem.conv/stem.bn, sXbY.convK/bnK).
    derived = {}
    if args.derive_batchnorm:
        for (prev, _, _), (name, shape, _) in zip(reps, reps[1:]):
            if name.split(".")[-1] in ("bn", "bn1", "bn2"):
                c = shape[0]
                derived[name] = {"of": prev, "scale": [float(v) for v in rng.uniform(0.2, 2, c)],
                                 "shift": [float(v) for v in rng.uniform(-1, 1, c)]}
    sent = [r for r in reps if r[0] not in derived]
    acts = {name: rng.standard_normal((args.batch_size,) + shape, dtype=np.float32)
            for name, shape, _ in sent}
    frames = frames_of(sent, args.batch_size)
    total_bytes = args.batches * sum(a.nbytes for a in acts.values())
    represented_bytes = args.batches * sum(args.batch_size * int(np.prod(s)) * 4 for _, s, _ in reps)

    client = bc.Client(args.socket, timeout=3600)
    fingerprint = "bench-%d-%d-%s" % (args.depth, os.getpid(), args.transfer)
    declared = []
    for n, shape, b in reps:
        rep = {"name": n, "shape": list(shape), "block": b}
        if n in derived:
            rep["channel_affine"] = derived[n]
        declared.append(rep)
    session = client.session_open("bench-foreign", fingerprint, declared)["session"]
    keys = ["bench-batch-%d" % b for b in range(args.batches)]

    # One memfd per frame in flight, reused once its frame is answered.
    buffers = [bc.MemfdBuffer() for _ in range(args.in_flight)] if args.transfer == "memfd" else None
    t0 = time.perf_counter()
    in_flight = []
    sent = 0
    for key in keys:
        for names in frames:
            memfd = buffers[sent % len(buffers)] if buffers else None
            in_flight.append(client.submit_session_batch(session, key, {n: acts[n] for n in names}, memfd=memfd))
            sent += 1
            if len(in_flight) >= args.in_flight:
                client.wait(in_flight.pop(0))
    for rid in in_flight:
        client.wait(rid)
    seconds_stream = time.perf_counter() - t0

    t1 = time.perf_counter()
    heatmap = client.heatmap("bench-foreign", batches=keys, foreign=True)
    seconds_heatmap = time.perf_counter() - t1
    client.session_close(session)
    rows = len(heatmap["cka"])
    print(json.dumps({"transfer": args.transfer + ("+derived" if derived else ""),
                      "representations": len(reps), "derived": len(derived), "heatmap_rows": rows,
                      "examples": args.batches * args.batch_size, "bytes": total_bytes,
                      "bytes_represented": represented_bytes,
                      "frames": len(frames) * args.batches, "seconds_stream": seconds_stream,
                      "seconds_heatmap": seconds_heatmap,
                      "gb_per_s": total_bytes / seconds_stream / 1e9}))


if __name__ == "__main__":
    main()
