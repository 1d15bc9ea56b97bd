#!/usr/bin/env python3
"""The half of tools/bench-isolation that talks to the daemon: a heatmap's time on an idle
daemon against the same heatmap beside a training job that runs on another thread count
(issue 15's acceptance: within 2x; its values are bitwise the same, which
ServiceAnalysisTests.testHeatmapBesideTrainingIsBitwiseTheIdleOne tests).

A ResNet-20 is trained for one epoch first (synthetic data). Then, alternating, ROUNDS times:
the heatmap of all its representations over 4 x 128 examples chosen afresh each time (another
batch-order seed, so no Gram comes from the cache) on the idle daemon, and the same with a TRAIN
(`threads` 1, a ResNet-20 for many epochs) running; the job is cancelled after each measurement.
Prints one JSON object: the times, their medians and the ratio of medians.
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blockscope_client as bc  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--socket", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    c = bc.Client(args.socket, timeout=3600)
    job = c.train(model="iso-r20", depth=20, dataset="synthetic", fraction=0.2, epochs=1,
                  test_examples=200)
    assert c.watch(job["job"])["state"] == "finished"
    seed = [0]

    def heatmap_seconds():
        seed[0] += 1
        t = time.perf_counter()
        c.heatmap("iso-r20", examples={"split": "test", "count": 512}, batch_size=128, passes=1,
                  seed=seed[0])
        return time.perf_counter() - t

    idle, beside = [], []
    for r in range(args.rounds):
        idle.append(heatmap_seconds())
        running = c.train(model="iso-load-%d" % r, depth=20, dataset="synthetic", fraction=1.0,
                          epochs=50, test_examples=200, threads=1)
        # Measure once the job runs (state "running", then 2 s into its first epoch).
        deadline = time.monotonic() + 120
        while next(j for j in c.jobs() if j["job"] == running["job"])["state"] != "running":
            if time.monotonic() > deadline:
                raise SystemExit("the training job did not start within 120 s")
            time.sleep(0.2)
        time.sleep(2.0)
        beside.append(heatmap_seconds())
        c.cancel(running["job"])
        c.watch(running["job"])
        try:
            c.delete_model("iso-load-%d" % r)
        except bc.BlockscopeError as e:
            if e.name != "NOT_FOUND":       # cancelled before its first checkpoint: no model
                raise
    out = {"idle_seconds": [round(x, 3) for x in idle], "beside_training_seconds": [round(x, 3) for x in beside],
           "idle_median": round(statistics.median(idle), 3), "beside_median": round(statistics.median(beside), 3)}
    out["ratio_of_medians"] = round(out["beside_median"] / out["idle_median"], 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
