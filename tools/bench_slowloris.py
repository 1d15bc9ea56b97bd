#!/usr/bin/env python3
"""Slow clients against the daemon's owner (tools/bench-slowloris builds and starts the daemon).

TRICKLERS connections (default 300, above the 256-connection limit) each send a HELLO and then
a frame one byte at a time, one byte every INTERVAL seconds, forever; a trickler the daemon
closes (TIMEOUT, or SERVER_BUSY when it made room) reconnects at once. Meanwhile the owner, one
connection, sends STATUS requests back to back for SECONDS and measures each round trip, and
a fresh connection is opened every second to see whether a newcomer is refused.

Prints one JSON object: the owner's STATUS p50/p99/max in ms, how many newcomers were refused,
and the tricklers' closes by error name. Exit status 1 when the owner's p99 is 10 ms or more or
a newcomer was refused.
"""
import json
import os
import selectors
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blockscope_client as bs  # noqa: E402


def hello_bytes():
    return bs.encode_frame(bs.REQUEST_TYPES["HELLO"], 1,
                           {"min_version": 1, "max_version": 1, "client": "slowloris"})


def status_bytes(request_id):
    return bs.encode_frame(bs.REQUEST_TYPES["STATUS"], request_id, {})


def tricklers(sock_path, count, interval, stop, closes):
    sel = selectors.DefaultSelector()
    conns = {}   # socket -> [bytes to send, next index]

    def open_one():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(sock_path)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            s.close()
            return
        # HELLO whole, then a STATUS frame a byte at a time (never finished in time).
        try:
            s.send(hello_bytes())
        except OSError:
            s.close()
            return
        conns[s] = [status_bytes(2) * 1000, 0]
        sel.register(s, selectors.EVENT_READ)

    for _ in range(count):
        open_one()
    next_tick = time.monotonic()
    while not stop.is_set():
        timeout = max(0, next_tick - time.monotonic())
        for key, _ in sel.select(timeout):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data or b"TIMEOUT" in data or b"SERVER_BUSY" in data:
                name = "TIMEOUT" if b"TIMEOUT" in data else "SERVER_BUSY" if b"SERVER_BUSY" in data else "closed"
                closes[name] = closes.get(name, 0) + 1
                sel.unregister(s)
                s.close()
                conns.pop(s, None)
                open_one()
        if time.monotonic() >= next_tick:
            next_tick += interval
            for s, state in list(conns.items()):
                data, i = state
                try:
                    s.send(data[i:i + 1])
                    state[1] = i + 1
                except OSError:
                    pass
    for s in list(conns):
        s.close()


def main():
    sock_path = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 60
    interval = float(sys.argv[4]) if len(sys.argv) > 4 else 0.5
    owner = bs.Client(sock_path, timeout=30)   # connected before the flood, as a user's tool is
    stop, closes = threading.Event(), {}
    flood = threading.Thread(target=tricklers, args=(sock_path, count, interval, stop, closes))
    flood.start()
    time.sleep(3)   # every trickler connected (or refused) before the measurement
    latencies, refused, newcomers, reasons = [], 0, 0, {}
    start = time.monotonic()
    next_newcomer = start
    while time.monotonic() - start < seconds:
        t0 = time.monotonic()
        owner.status()
        latencies.append(time.monotonic() - t0)
        if time.monotonic() >= next_newcomer:
            next_newcomer += 1
            newcomers += 1
            try:
                c = bs.Client(sock_path, timeout=10)
                c.status()
                c.close()
            except (bs.BlockscopeError, bs.ConnectionClosed, OSError) as e:
                refused += 1
                reasons[type(e).__name__ + ": " + str(e)[:80]] = reasons.get(type(e).__name__ + ": " + str(e)[:80], 0) + 1
    stop.set()
    flood.join()
    latencies.sort()
    n = len(latencies)
    report = {
        "tricklers": count, "interval_s": interval, "seconds": seconds, "owner_status_requests": n,
        "owner_p50_ms": round(1000 * latencies[n // 2], 3),
        "owner_p99_ms": round(1000 * latencies[min(n - 1, int(n * 0.99))], 3),
        "owner_max_ms": round(1000 * latencies[-1], 3),
        "newcomers": newcomers, "newcomers_refused": refused, "refusals": reasons,
        "trickler_closes": closes,
    }
    print(json.dumps(report))
    return 0 if report["owner_p99_ms"] < 10 and refused == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
