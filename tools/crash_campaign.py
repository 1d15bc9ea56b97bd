#!/usr/bin/env python3
"""kill -9 of blockscoped at POINTS moments while it writes (tools/crash-campaign builds the
daemon and calls this). Usage: crash_campaign.py BLOCKSCOPED WORKDIR POINTS REPORT.json [SEED]

One store serves the whole campaign. Each point starts the daemon on it, checks what the last
kill left (below), keeps it writing, kills it with SIGKILL and checks the store offline.

Load (tiny models: ResNet-8, width 0.5, synthetic data, two jobs at once on one thread each):
  long    a 40-epoch job checkpointing every epoch, resumed after every kill, replaced when done
  fresh   a new 2-epoch job at each point (unless two still wait), with a snapshot model after
          epoch 1
  study   a study of two seeds (3 epochs, snapshot after epoch 1) whose heatmap, pc and
          cross_seed analyses write result files; deleted when finished, the next declared
When (per point, at random):
  write   an inotify watch sees a temporary file of an atomic save created (a checkpoint, a job
          record or a study result, the kind chosen at random) and the daemon is killed at once
          (checkpoints: half of them up to 4 ms later): inside the write, fsync or rename
  random  0-3 s after the load is set up
  startup 0-0.4 s after the process starts (while it marks jobs interrupted and resumes studies)

Checked after every kill, offline (tools/store_verify.py): no torn file (every checkpoint, job
record, study record and result passes its format's checks); nothing lost (every model, job,
study and result the daemon had listed before the kill is there, and no checkpoint has fewer
epochs than its job reported). After the restart: the temporaries of the killed process are
gone, no model is listed corrupt, the jobs that ran are listed, our interrupted jobs RESUME
(and later train on). Exit 1 on any torn or lost file, resume failure or other finding.
"""
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blockscope_client as bs  # noqa: E402
from daemon_process import DaemonProcess, TempFileWatch, realtime_priority  # noqa: E402
from store_verify import TEMPORARY, StoreScan  # noqa: E402

TINY = dict(dataset="synthetic", depth=8, width=0.5, batch_size=32, test_examples=100, augment=False)
DAEMON_ARGS = ["--parallel-jobs", "2", "--training-threads", "1", "--analysis-threads", "1"]


def study_declaration(n):
    return dict(dataset="synthetic", depths=[8], widths=[0.5], fractions=[0.05],
                seeds=[2 * n, 2 * n + 1], epochs=3, batch_size=32, augment=False,
                test_examples=100, snapshot_epochs=[1], analyses=["heatmap", "pc", "cross_seed"],
                heatmap_examples=128, heatmap_batch=64, pc_examples=128)


class Expected:
    """What the daemon listed before the kill (each listing is on disk by SPEC section 8):
    models (name -> epochs), jobs (id -> entry), studies and their result keys."""

    def __init__(self):
        self.lock = threading.Lock()
        self.models, self.jobs, self.results = {}, {}, {}
        self.deleted = set()        # models deleted on purpose (their jobs stay listed)

    def merge(self, models, jobs, results):
        with self.lock:
            for m in models:
                if m["state"] in ("ready", "training") and m["bytes"] > 0:   # a file is there
                    self.models[m["model"]] = max(self.models.get(m["model"], 0), m.get("epoch", 0))
            for j in jobs:
                old = self.jobs.get(j["job"])
                if old is None or j["epoch"] >= old["epoch"]:
                    self.jobs[j["job"]] = j
            for study, keys in results.items():
                self.results.setdefault(study, set()).update(keys)

    def forget_models(self, names):
        with self.lock:
            for name in names:
                self.models.pop(name, None)
                self.deleted.add(name)

    def forget_study(self, study):
        with self.lock:
            self.results.pop(study, None)


class Monitor(threading.Thread):
    """Polls JOBS, MODELS and the studies' results every 0.1 s until the connection dies."""

    def __init__(self, sock, expected, findings):
        super().__init__(daemon=True)
        self.sock, self.expected, self.findings = sock, expected, findings
        self.polls = 0

    def run(self):
        try:
            c = bs.Client(self.sock, timeout=30)
            while True:
                jobs, models = c.jobs(), c.models()
                results = {}
                for s in c.study_list():
                    index = c.study_results(s["study"])
                    results[s["study"]] = {r["key"] for r in index["results"]}
                    if index["status"]["errors"]:
                        self.findings.add("study %s: %s" % (s["study"], index["status"]["errors"]))
                self.expected.merge(models, jobs, results)
                for j in jobs:
                    if j["state"] == "failed":
                        self.findings.add("job %d failed: %s" % (j["job"], j.get("error")))
                for m in models:
                    if m["state"] == "corrupt":
                        self.findings.add("model %s listed corrupt: %s" % (m["model"], m.get("error")))
                self.polls += 1
                time.sleep(0.1)
        except (OSError, bs.ConnectionClosed, bs.NoDaemonError, bs.BlockscopeError, bs.ProtocolError):
            return      # the kill


class Findings:
    def __init__(self):
        self.lock = threading.Lock()
        self.items = []

    def add(self, text):
        with self.lock:
            if text not in self.items:
                self.items.append(text)
                print("  FINDING: " + text, flush=True)


class Campaign:
    def __init__(self, binary, workdir, points, seed):
        self.rng = random.Random(seed)
        self.points, self.workdir = points, workdir
        self.store = os.path.join(workdir, "store")
        self.sock = os.path.join(workdir, "d.sock")
        self.daemon = DaemonProcess(binary, self.sock, self.store, os.path.join(workdir, "blockscoped.log"),
                                    DAEMON_ARGS)
        self.expected, self.findings = Expected(), Findings()
        self.cache = {}             # StoreScan's: whole files are not read twice
        self.ours = {}              # job id -> model, jobs this campaign submitted
        self.long_job, self.study_n = None, 0
        self.fresh = []             # (job id, model), oldest first
        self.pending_resumes = {}   # job id -> epoch when resumed; cleared once it trains on
        self.counts = dict(points=0, kills_during_write=0, torn_files=0, lost_files=0,
                           resume_failures=0, resumes=0, interrupted_listed=0, stale_temporaries=0,
                           results_checked=0)
        self.write_kinds = {}
        self.rows = []
        self.reported = set()       # paths counted torn or lost

    # --- after a restart ---------------------------------------------------------------

    def recover(self, c):
        models = {m["model"]: m for m in c.models()}
        jobs = {j["job"]: j for j in c.jobs()}
        stored = {s["study"]: {r["key"] for r in c.study_results(s["study"])["results"]}
                  for s in c.study_list()}
        # Scanned after the listings: every file they name was there before the scan began.
        scan = StoreScan(self.store, self.cache)
        # Every temporary of a dead process is gone (the daemon's own new ones may be there).
        left = [t for t in scan.temporaries
                if int(TEMPORARY.match(os.path.basename(t)).group(1)) != self.daemon.pid]
        if left:
            self.counts["stale_temporaries"] += len(left)
            self.findings.add("temporaries of a killed daemon left after the restart: %s" % left)
        # Nothing listed that is not a whole file (a temporary taken for a model or a result).
        for name, m in models.items():
            if m["bytes"] > 0 and "models/%s.bsckpt" % name not in scan.files:
                self.findings.add("MODELS lists %s without a whole file" % name)
        for study, keys in stored.items():
            for key in keys:
                if "studies/%s/results/%s.bsr" % (study, key) not in scan.files:
                    self.findings.add("study %s lists %s without a whole file" % (study, key))
        for name, epochs in list(self.expected.models.items()):
            m = models.get(name)
            if m is None or m["state"] == "corrupt" or m["bytes"] == 0 or m.get("epoch", 0) < epochs:
                self.findings.add("after restart, model %s: %s (had %d epochs)" % (name, m, epochs))
        for jid, before in self.expected.jobs.items():
            now = jobs.get(jid)
            if now is None:
                self.findings.add("after restart, job %d is not listed" % jid)
            elif before["state"] in ("running", "queued") and now["state"] == "interrupted":
                self.counts["interrupted_listed"] += 1
        for study, keys in self.expected.results.items():
            missing = keys - stored.get(study, set())
            if missing:
                self.findings.add("after restart, study %s lacks %s" % (study, sorted(missing)))
        for jid in self.ours:
            if jid in jobs and jobs[jid]["state"] in ("interrupted", "cancelled"):
                self.counts["resumes"] += 1
                try:
                    c.resume(jid)
                    self.pending_resumes[jid] = jobs[jid]["epoch"]
                except bs.BlockscopeError as e:
                    self.counts["resume_failures"] += 1
                    self.findings.add("RESUME of job %d: %s %s" % (jid, e.name, e.message))
        self.track_resumes(jobs)

    def track_resumes(self, jobs):
        for jid, epoch in list(self.pending_resumes.items()):
            j = jobs.get(jid)
            if j and (j["epoch"] > epoch or j["state"] == "finished"):
                del self.pending_resumes[jid]

    # --- the load ----------------------------------------------------------------------

    def train(self, c, model, **kw):
        job = c.train(model=model, **dict(TINY, **kw))["job"]
        self.ours[job] = model
        return job

    def delete_models(self, c, names):
        for name in names:
            try:
                c.delete_model(name)
            except bs.BlockscopeError as e:
                if e.name != "NOT_FOUND":
                    raise
        self.expected.forget_models(names)

    def load(self, c, point):
        jobs = {j["job"]: j for j in c.jobs()}
        if self.long_job not in jobs or jobs[self.long_job]["state"] == "finished":
            if self.long_job is not None:
                self.delete_models(c, [self.ours[self.long_job]])
            self.long_job = self.train(c, "long-%d" % point, fraction=0.1, epochs=40, seed=point)
        while len(self.fresh) > 3 and jobs.get(self.fresh[0][0], {}).get("state") == "finished":
            _, model = self.fresh.pop(0)
            self.delete_models(c, [model, model + ".e1"])
        # A new model file every point, unless earlier ones still wait for the runner.
        if sum(jobs.get(j, {"state": "queued"})["state"] != "finished" for j, _ in self.fresh) < 2:
            job = self.train(c, "fresh-%d" % point, fraction=0.05, epochs=2, seed=point,
                             extra={"snapshot_epochs": [1]})
            self.fresh.append((job, "fresh-%d" % point))
        current = "crash-%d" % self.study_n
        study = {s["study"]: s for s in c.study_list()}.get(current)
        if study and study["state"] in ("finished", "incomplete"):
            if study["state"] == "incomplete":
                self.findings.add("study %s ended incomplete" % current)
            deleted = c.study_delete(current)
            self.expected.forget_models(deleted["models_deleted"])
            self.expected.forget_study(current)
            self.study_n += 1
            study = None
        if study is None:
            c.study_create("crash-%d" % self.study_n, study_declaration(self.study_n))

    # --- one point ---------------------------------------------------------------------

    def kill_point(self, point, mode):
        row = {"point": point, "mode": mode}
        if mode == "startup":
            self.daemon.spawn()
            time.sleep(self.rng.uniform(0, 0.4))
        else:
            row["start_s"] = round(self.daemon.start(), 3)
            c = bs.Client(self.sock, timeout=120)
            if point > 0:
                self.recover(c)
            self.load(c, point)
            c.close()
            monitor = Monitor(self.sock, self.expected, self.findings)
            monitor.start()
            if mode == "random":
                time.sleep(self.rng.uniform(0, 3))
            else:
                kinds = self.rng.choice([["models"], ["models"], ["jobs"], ["results"], ["results", "study"]])
                watch = TempFileWatch(self.store)
                with realtime_priority() as row["realtime"]:
                    hit = watch.next(kinds, timeout=10)
                    # Small files (job records, results) are written within milliseconds: those
                    # are killed at once; checkpoints also a little later (fsync, rename).
                    if hit and hit[0] == "models" and self.rng.random() < 0.5:
                        time.sleep(self.rng.uniform(0, 0.004))
                    self.daemon.kill()
                watch.close()
                row["target"], row["hit"] = kinds[0], hit and hit[1]
        self.last_pid = self.daemon.pid
        self.daemon.kill()
        if mode != "startup":
            monitor.join(10)
            row["polls"] = monitor.polls
        self.check_offline(row)
        self.rows.append(row)
        return row

    def check_offline(self, row):
        scan = StoreScan(self.store, self.cache)
        mine = [t for t in scan.temporaries
                if int(TEMPORARY.match(os.path.basename(t)).group(1)) == self.last_pid]
        row["temporaries_at_kill"] = mine
        if mine:
            self.counts["kills_during_write"] += 1
            for t in mine:
                kind = TempFileWatch.kind(os.path.dirname(t))
                self.write_kinds[kind] = self.write_kinds.get(kind, 0) + 1
        for path, problem in scan.torn:     # counted once, though every later scan sees it
            self.counts["torn_files"] += path not in self.reported
            self.reported.add(path)
            self.findings.add("TORN %s: %s" % (path, problem))
        lost, torn = [], {path for path, _ in scan.torn}     # a torn file counts once, as torn
        with self.expected.lock:
            for name, epochs in self.expected.models.items():
                f = scan.files.get("models/%s.bsckpt" % name)
                if f is None or f["epochs"] < epochs:
                    lost.append("models/%s.bsckpt (%d epochs listed, file: %s)" % (name, epochs, f))
            for jid, entry in self.expected.jobs.items():
                if "jobs/%d.json" % jid not in scan.files:
                    lost.append("jobs/%d.json" % jid)
                model = entry["model"]
                if entry["epoch"] > 0 and model not in self.expected.deleted:
                    f = scan.files.get("models/%s.bsckpt" % model)
                    if f is None or f["epochs"] < entry["epoch"]:
                        lost.append("models/%s.bsckpt (job %d reported %d epochs, file: %s)"
                                    % (model, jid, entry["epoch"], f))
            for study, keys in self.expected.results.items():
                if "studies/%s/study.json" % study not in scan.files:
                    lost.append("studies/%s/study.json" % study)
                for key in keys:
                    self.counts["results_checked"] += 1
                    if "studies/%s/results/%s.bsr" % (study, key) not in scan.files:
                        lost.append("studies/%s/results/%s.bsr" % (study, key))
        for item in lost:
            path = item.split(" ")[0]
            if path in torn:
                continue
            self.counts["lost_files"] += path not in self.reported
            self.reported.add(path)
            self.findings.add("LOST " + item)
        row["files"] = len(scan.files)

    # --- the campaign ------------------------------------------------------------------

    def run(self):
        started = time.monotonic()
        for point in range(self.points):
            mode = "startup" if point > 0 and self.rng.random() < 0.1 else \
                self.rng.choice(["write", "write", "write", "random"])
            t0 = time.monotonic()
            row = self.kill_point(point, mode)
            self.counts["points"] += 1
            row["seconds"] = round(time.monotonic() - t0, 2)
            print("point %3d %-7s %-8s hit=%s at-kill=%s files=%d %.1fs" % (
                point, mode, row.get("target", ""), bool(row.get("hit")), row["temporaries_at_kill"],
                row["files"], row["seconds"]), flush=True)
        self.finish()
        return time.monotonic() - started

    def finish(self):
        """A last restart: recovery checks, every resumed job trains on, then a clean stop."""
        self.daemon.start()
        c = bs.Client(self.sock, timeout=120)
        self.recover(c)
        deadline = time.monotonic() + 300
        while self.pending_resumes and time.monotonic() < deadline:
            time.sleep(0.5)
            self.track_resumes({j["job"]: j for j in c.jobs()})
        for jid in self.pending_resumes:
            self.counts["resume_failures"] += 1
            self.findings.add("job %d did not train on within 300 s of its RESUME" % jid)
        c.close()
        status = self.daemon.terminate()
        if status != 0:
            self.findings.add("blockscoped exited %s on SIGTERM" % status)
        scan = StoreScan(self.store, self.cache)
        if scan.torn or scan.temporaries:
            self.findings.add("after the clean stop: torn %s, temporaries %s" % (scan.torn, scan.temporaries))


def main():
    binary, workdir, points, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    seed = int(sys.argv[5]) if len(sys.argv) > 5 else int(time.time())
    campaign = Campaign(binary, workdir, points, seed)
    try:
        seconds = campaign.run()
    finally:
        campaign.daemon.kill()
    report = dict(campaign.counts, seed=seed, seconds=round(seconds, 1),
                  temporaries_at_kill_by_kind=campaign.write_kinds,
                  findings=campaign.findings.items, points_detail=campaign.rows)
    with open(out, "w") as f:
        json.dump(report, f, indent=1)
    summary = {k: v for k, v in report.items() if k != "points_detail"}
    print(json.dumps(summary, indent=1))
    bad = report["torn_files"] or report["lost_files"] or report["resume_failures"] or report["findings"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
