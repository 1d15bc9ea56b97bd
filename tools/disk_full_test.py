#!/usr/bin/env python3
"""blockscoped on a full disk (tools/disk-full-test mounts the tmpfs and calls this).
Usage: disk_full_test.py BLOCKSCOPED WORKDIR REPORT.json   (WORKDIR/store: a tmpfs, as root)

1. A model `keeper` is trained (1 epoch) on a roomy tmpfs; then the tmpfs is shrunk (remount)
   to what is used plus room for 5.5 checkpoints of that size.
2. `victim` trains 6 epochs with a snapshot model after each of epochs 1-5: every epoch adds a
   file, so epochs 1-3 fit and the save of epoch 4's checkpoint (snapshot e4 written, the model
   file being replaced) hits ENOSPC.
3. Checked: the job stops `interrupted` (SPEC, RESUME: resumable once there is room) with an
   error naming NO_SPACE and the file; the model file still holds the epochs last reported as
   saved and passes every check (tools/store_verify.py); no temporary file is left; STATUS,
   MODELS, DESCRIBE (both models) and a HEATMAP of `keeper` are served; RESUME on the still
   full disk stops the same way.
4. kill -9 while the job runs on the full disk, the last free bytes filled, restart: the
   daemon starts, lists the job `interrupted`, and the store holds no torn file.
5. Room is made (DELETE_MODEL of the snapshots) and RESUME trains `victim` to its 6 epochs.
Exit 1 with the findings if any check fails.
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blockscope_client as bs  # noqa: E402
from daemon_process import DaemonProcess  # noqa: E402
from store_verify import StoreScan, Torn, check_checkpoint  # noqa: E402

TINY = dict(dataset="synthetic", depth=8, width=0.5, batch_size=32, test_examples=100,
            augment=False, fraction=0.1)
PAGE = 4096


class Check:
    def __init__(self):
        self.findings, self.passed = [], []

    def __call__(self, ok, what, detail=""):
        (self.passed if ok else self.findings).append(what + ("" if ok else ": %s" % detail))
        print("  %s %s%s" % ("ok  " if ok else "FAIL", what, "" if ok else " -- %s" % detail), flush=True)
        return ok


def used_bytes(path):
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def watch_epochs(c, job):
    """WATCH to the end; returns (final entry, epochs reported saved by `epoch` events)."""
    saved = []
    end = c.watch(job, on_progress=lambda e: saved.append(e["done"]) if e["phase"] == "epoch" else None)
    return end, saved


def fill(path):
    """Writes zeros to `path` until the file system is full; returns the bytes written."""
    written, chunk = 0, b"\0" * PAGE
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                written += f.write(chunk)
            except OSError:
                return written


def checkpoint_epochs(path):
    with open(path, "rb") as f:
        return check_checkpoint(f.read())["epochsCompleted"]


def main():
    binary, work, out = sys.argv[1], sys.argv[2], sys.argv[3]
    store, sock = os.path.join(work, "store"), os.path.join(work, "d.sock")
    victim_file = os.path.join(store, "models", "victim.bsckpt")
    check, report = Check(), {}
    daemon = DaemonProcess(binary, sock, store, os.path.join(work, "blockscoped.log"),
                           ["--training-threads", "1"])
    t0 = time.monotonic()
    try:
        daemon.start()
        c = bs.Client(sock, timeout=300)
        end, _ = watch_epochs(c, c.train(model="keeper", epochs=1, seed=1, **TINY)["job"])
        check(end["state"] == "finished", "keeper trained", end)
        ckpt = os.path.getsize(os.path.join(store, "models", "keeper.bsckpt"))
        size = (used_bytes(store) + int(5.5 * ckpt) + 8 * PAGE) // PAGE * PAGE
        subprocess.run(["mount", "-o", "remount,size=%d" % size, store], check=True)
        report.update(checkpoint_bytes=ckpt, tmpfs_bytes=size)
        print("tmpfs shrunk to %d KiB (checkpoint %d bytes)" % (size // 1024, ckpt), flush=True)

        job = c.train(model="victim", epochs=6, seed=2, extra={"snapshot_epochs": [1, 2, 3, 4, 5]},
                      **TINY)["job"]
        end, saved = watch_epochs(c, job)
        report.update(victim_end=end, epochs_reported_saved=saved)
        last = max(saved, default=0)
        check(end["state"] == "interrupted", "the job stops interrupted", end)
        error = end.get("error") or ""
        check(error.startswith("NO_SPACE") and "No space left on device" in error
              and "victim.bsckpt" in error, "its error names NO_SPACE and the file", error)
        check(0 < last < 6 and end["epoch"] == last, "epochs 1-%d reported saved, the entry agrees" % last,
              (saved, end["epoch"]))
        try:
            kept = checkpoint_epochs(victim_file)
            check(kept == last, "the model file passes its checks and keeps epoch %d" % last, kept)
        except (OSError, Torn) as e:
            check(False, "the model file passes its checks", e)
        scan = StoreScan(store)
        check(not scan.torn and not scan.temporaries, "no torn file, no temporary left",
              (scan.torn, scan.temporaries))

        status = c.status()
        check(status["jobs"]["interrupted"] == 1, "STATUS answers", status["jobs"])
        models = {m["model"]: m for m in c.models()}
        check(models.get("victim", {}).get("epoch") == last and models["victim"]["state"] == "ready"
              and models.get("keeper", {}).get("state") == "ready"
              and not [m for m in models.values() if m["state"] == "corrupt"],
              "MODELS lists victim at epoch %d and keeper, nothing corrupt" % last, models)
        check([h["epoch"] for h in c.describe("victim")["history"]] == list(range(1, last + 1)),
              "DESCRIBE victim: history 1-%d" % last)
        check(c.describe("keeper")["epoch"] == 1, "DESCRIBE keeper")
        heat = c.heatmap("keeper", examples={"split": "test", "count": 64}, batch_size=32, passes=1)
        check(len(heat["row_names"]) == 30, "HEATMAP of keeper served")

        resumed = c.resume(job)
        again, _ = watch_epochs(c, job)
        check(resumed["state"] == "queued" and again["state"] == "interrupted"
              and (again.get("error") or "").startswith("NO_SPACE"),
              "RESUME on the full disk stops again with NO_SPACE", again)

        # kill -9 while the job runs on the full disk: its record still says "running".
        c.resume(job)
        deadline = time.monotonic() + 60
        while c.jobs()[-1]["state"] != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        c.close()
        daemon.kill()
        # Not one free page left: the restart cannot even rewrite the job's record.
        filler = os.path.join(store, "filler")
        report["filler_bytes"] = fill(filler)
        try:
            daemon.start()
            check(True, "restart after kill -9 on a disk without a free byte")
        except RuntimeError as e:
            check(False, "restart after kill -9 on a disk without a free byte", e)
            raise
        c = bs.Client(sock, timeout=300)
        entry = [j for j in c.jobs() if j["job"] == job][0]
        check(entry["state"] == "interrupted", "the job is listed interrupted", entry)
        with open(os.path.join(store, "jobs", "%d.json" % job)) as f:
            on_disk = json.load(f)["entry"]["state"]
        check(on_disk == "running", "(its record could not be rewritten: the disk was full)", on_disk)
        check(not StoreScan(store).torn, "no torn file after the kill")
        check(c.describe("victim")["epoch"] == last, "DESCRIBE victim after the restart")
        os.unlink(filler)

        for n in range(1, 6):
            try:
                c.delete_model("victim.e%d" % n)
            except bs.BlockscopeError as e:
                if e.name != "NOT_FOUND":
                    raise
        c.resume(job)
        end, _ = watch_epochs(c, job)
        check(end["state"] == "finished" and end["epoch"] == 6, "room made: RESUME trains to epoch 6", end)
        check(checkpoint_epochs(victim_file) == 6, "the model file holds 6 epochs")
        c.close()
        check(daemon.terminate() == 0, "SIGTERM stops the daemon cleanly")
    finally:
        daemon.kill()
        report.update(seconds=round(time.monotonic() - t0, 1), passed=check.passed,
                      findings=check.findings)
        with open(out, "w") as f:
            json.dump(report, f, indent=1)
    print(json.dumps({k: report[k] for k in ("checkpoint_bytes", "tmpfs_bytes", "epochs_reported_saved",
                                             "seconds", "findings") if k in report}, indent=1))
    return 1 if check.findings else 0


if __name__ == "__main__":
    sys.exit(main())
