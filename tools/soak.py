#!/usr/bin/env python3
"""The daemon under mixed load for MINUTES (tools/soak builds it and calls this).

Load, all at once on one daemon (release build, synthetic data, a private store):
  trainer   a long training job, cancelled and resumed every 15-30 s
  heatmap   HEATMAP of a stored model in a loop, a new seed each time (Grams recomputed, the
            cache filling and evicting)
  status    50 clients, each sending STATUS every 50 ms
  garbage   a connection that sends random bytes, again and again (the daemon must close it)
  stalled   a client that asks for a large EXPORT and stops reading for 10 s, then leaves

Every 10 s the daemon's RSS and open file descriptors are sampled from /proc. The report:
requests served and errors by code per request type, p50/p99 latency per type, RSS and fd
count over time. It fails (exit 1) on an unexpected error code, RSS growth above 10 MiB after
the first quarter (warm-up: the median of the last tenth of the samples against the first
tenth's; the least-squares trend is reported beside it), or more fds at the end than after
warm-up plus the clients'.
"""
import json
import os
import random
import socket
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blockscope_client as bs  # noqa: E402

# Codes that the load itself provokes (a resume racing its own cancel, a cancel of a job that
# already stopped); anything else is a finding.
EXPECTED = {
    "TRAIN": set(), "CANCEL": {"CONFLICT"}, "RESUME": {"CONFLICT"}, "HEATMAP": set(),
    "STATUS": set(), "EXPORT": set(),
}


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency = {}       # type -> [seconds]
        self.errors = {}        # (type, code name) -> count

    def ok(self, kind, seconds):
        with self.lock:
            self.latency.setdefault(kind, []).append(seconds)

    def error(self, kind, name):
        with self.lock:
            self.errors[(kind, name)] = self.errors.get((kind, name), 0) + 1


def timed(stats, kind, call):
    t0 = time.monotonic()
    try:
        result = call()
    except bs.BlockscopeError as e:
        stats.error(kind, e.name)
        return None
    stats.ok(kind, time.monotonic() - t0)
    return result


def trainer(sock, stats, stop):
    c = bs.Client(sock, timeout=120)
    job = timed(stats, "TRAIN", lambda: c.train(model="soak-train", dataset="synthetic", depth=8,
                                                 width=0.5, epochs=100000, batch_size=32, seed=1))
    if job is None:
        return
    rng = random.Random(1)
    while not stop.wait(rng.uniform(15, 30)):
        timed(stats, "CANCEL", lambda: c.cancel(job["job"]))
        if stop.wait(rng.uniform(1, 3)):
            break
        timed(stats, "RESUME", lambda: c.resume(job["job"]))
    timed(stats, "CANCEL", lambda: c.cancel(job["job"]))
    c.close()


def heatmapper(sock, stats, stop):
    c = bs.Client(sock, timeout=300)
    seed = 0
    while not stop.is_set():
        seed += 1
        timed(stats, "HEATMAP", lambda: c.heatmap("soak-base", examples={"split": "test", "count": 256},
                                                  batch_size=64, passes=1, seed=seed))
    c.close()


def status_client(sock, stats, stop):
    c = bs.Client(sock, timeout=60)
    while not stop.wait(0.05):
        timed(stats, "STATUS", c.status)
    c.close()


def garbage(sock, stats, stop):
    rng = random.Random(7)
    while not stop.wait(0.5):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # Above the daemon's 10 s hello timeout: fewer than 6 random bytes are not yet a bad
        # header (length and magic incomplete), so such a connection ends with TIMEOUT at 10 s.
        s.settimeout(15)
        try:
            s.connect(sock)
            s.sendall(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4096))))
            while s.recv(65536):      # the daemon answers with an ERROR frame, then closes
                pass
            stats.ok("GARBAGE_CLOSED", 0)
        except (socket.timeout, OSError):
            stats.error("GARBAGE", "not closed within 15 s")
        finally:
            s.close()


def stalled(sock, stats, stop):
    while not stop.wait(2):
        c = bs.Client(sock, timeout=60)
        c.submit("EXPORT", {"model": "soak-base", "representation": "stem.relu",
                            "examples": {"split": "test", "count": 200}})
        stop.wait(10)                 # the answer (~6 MB) waits unread
        c.close()
        stats.ok("STALLED_LEFT", 0)


def sample(pid):
    with open("/proc/%d/status" % pid) as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return rss / 1024.0, len(os.listdir("/proc/%d/fd" % pid))


def main():
    sock, pid, minutes = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    out = sys.argv[4] if len(sys.argv) > 4 else None
    setup = bs.Client(sock, timeout=600)
    base = setup.train(model="soak-base", dataset="synthetic", depth=8, width=0.5, epochs=1, seed=2)
    setup.watch(base["job"])
    setup.close()
    stats, stop = Stats(), threading.Event()
    threads = [threading.Thread(target=trainer, args=(sock, stats, stop)),
               threading.Thread(target=heatmapper, args=(sock, stats, stop)),
               threading.Thread(target=garbage, args=(sock, stats, stop)),
               threading.Thread(target=stalled, args=(sock, stats, stop))]
    threads += [threading.Thread(target=status_client, args=(sock, stats, stop)) for _ in range(50)]
    for t in threads:
        t.daemon = True
        t.start()
    started = time.monotonic()
    samples = []
    while time.monotonic() - started < minutes * 60:
        rss, fds = sample(pid)
        samples.append({"t": round(time.monotonic() - started), "rss_mib": round(rss, 1), "fds": fds})
        time.sleep(10)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    rss, fds = sample(pid)
    samples.append({"t": round(time.monotonic() - started), "rss_mib": round(rss, 1), "fds": fds,
                    "after": True})

    report = {"minutes": minutes, "requests": {}, "errors": {}, "samples": samples}
    for kind, xs in sorted(stats.latency.items()):
        xs.sort()
        report["requests"][kind] = {"n": len(xs), "p50_ms": round(1000 * xs[len(xs) // 2], 2),
                                    "p99_ms": round(1000 * xs[min(len(xs) - 1, int(len(xs) * 0.99))], 2)}
    for (kind, name), n in sorted(stats.errors.items()):
        report["errors"]["%s %s" % (kind, name)] = n
    warm = [s for s in samples if s["t"] >= minutes * 60 / 4 and not s.get("after")]
    findings = []
    if len(warm) >= 2:
        # Growth is the change of the level, not of one sample: a sample lands inside or between
        # requests (a heatmap's Gram slabs and buffers are live for part of each second), so the
        # RSS swings by tens of MiB around its level. The level at each end of the run is the
        # median of a tenth of the samples (at least 3); the trend is a least-squares slope.
        rss = [s["rss_mib"] for s in warm]
        window = max(3, len(rss) // 10)
        growth = statistics.median(rss[-window:]) - statistics.median(rss[:window])
        ts = [s["t"] for s in warm]
        mean_t, mean_r = statistics.fmean(ts), statistics.fmean(rss)
        spread = sum((t - mean_t) ** 2 for t in ts)
        slope = sum((t - mean_t) * (r - mean_r) for t, r in zip(ts, rss)) / spread if spread else 0.0
        report["rss_after_warmup_mib"] = {"min": min(rss), "max": max(rss),
                                          "median_first": statistics.median(rss[:window]),
                                          "median_last": statistics.median(rss[-window:]),
                                          "samples_per_median": window}
        report["rss_growth_after_warmup_mib"] = round(growth, 1)
        report["rss_trend_mib_per_hour"] = round(slope * 3600, 1)
        if growth > 10:
            findings.append("RSS grew %.1f MiB after warm-up (median of the last %d samples "
                            "against the first %d)" % (growth, window, window))
        if samples[-1]["fds"] > warm[0]["fds"]:
            findings.append("fds: %d after the load, %d after warm-up under load"
                            % (samples[-1]["fds"], warm[0]["fds"]))
    for (kind, name), n in stats.errors.items():
        if name not in EXPECTED.get(kind, set()):
            findings.append("%d x %s on %s" % (n, name, kind))
    report["findings"] = findings
    text = json.dumps(report, indent=1)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
    print(text)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
