"""A blockscoped process for the fault tools (tools/crash-campaign, tools/disk-full-test), and
an inotify watch that sees the temporary file of an atomic save the moment it is created.
"""
import contextlib
import ctypes
import os
import select
import signal
import struct
import subprocess
import time

from store_verify import TEMPORARY


class DaemonProcess:
    """`blockscoped --socket SOCKET --store STORE` in the foreground (so that its pid is ours to
    kill), its log appended to `log_path`, with XDG directories of its own (the user's config
    file and datasets stay out)."""

    def __init__(self, binary, socket_path, store, log_path, arguments=(), home=None):
        self.binary, self.socket_path, self.store = binary, socket_path, store
        self.log_path, self.arguments = log_path, list(arguments)
        self.home = home or os.path.dirname(os.path.abspath(log_path))
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid

    def start(self, timeout=60):
        """Starts it and waits for its "listening" line; returns the seconds that took. Raises
        RuntimeError (with the log's tail) when it exits or stays silent."""
        t0 = time.monotonic()
        self.spawn()
        line = b""
        deadline = t0 + timeout
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0, deadline - time.monotonic()))
            chunk = os.read(self.proc.stdout.fileno(), 1) if ready else b""
            if not chunk:
                self.kill()
                raise RuntimeError("blockscoped did not start (exit %s, first line %r); log:\n%s"
                                   % (self.proc.returncode, line, self.log_tail()))
            line += chunk
        if b"listening on" not in line:
            self.kill()
            raise RuntimeError("blockscoped said %r; log:\n%s" % (line, self.log_tail()))
        # Its later stdout (nothing expected) must not fill a pipe nobody reads.
        self.proc.stdout.close()
        return time.monotonic() - t0

    def spawn(self):
        """Starts it without waiting for anything."""
        env = dict(os.environ, XDG_CONFIG_HOME=os.path.join(self.home, "xdg-config"),
                   XDG_DATA_HOME=os.path.join(self.home, "xdg-data"))
        env.pop("BLOCKSCOPE_DATA", None)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "--socket", self.socket_path, "--store", self.store, "--cache-mb", "64"]
            + self.arguments, stdout=subprocess.PIPE, stderr=log, env=env)
        log.close()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """kill -9 and reap; returns the exit status (-9 when the signal did it)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        status = self.proc.wait()
        if not self.proc.stdout.closed:
            self.proc.stdout.close()
        return status

    def terminate(self, timeout=60):
        """SIGTERM (the graceful stop), then kill -9 after `timeout`; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        return self.kill()

    def log_tail(self, lines=20):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode("utf-8", "replace")
        except OSError:
            return ""


# --- inotify (Linux), through libc: the standard library has no binding -------------------

IN_CLOSE_WRITE, IN_CREATE, IN_ISDIR, IN_Q_OVERFLOW = 0x8, 0x100, 0x40000000, 0x4000
IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000
_EVENT = struct.Struct("iIII")


class TempFileWatch:
    """Reports the creation of temporary files (`.NAME.tmp-PID-HEX`) anywhere a store writes:
    models/, jobs/, studies/NAME/ and studies/NAME/results/KIND/ (directories created later are
    watched as they appear). `next(kinds, timeout)` returns (kind, relative path) of the first
    new temporary whose kind ("models", "jobs", "study", "results") is in `kinds`."""

    def __init__(self, store):
        self.store = store
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.dirs = {}     # watch descriptor -> relative directory
        for rel in ("models", "jobs", "studies"):
            self._add(rel)
        for study in self._list("studies"):
            self._add_study_tree("studies/" + study)

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _list(self, rel):
        try:
            return [n for n in os.listdir(os.path.join(self.store, rel)) if not n.startswith(".")]
        except OSError:
            return []

    def _add(self, rel):
        wd = self.libc.inotify_add_watch(self.fd, os.path.join(self.store, rel).encode(),
                                         IN_CREATE)
        if wd >= 0:
            self.dirs[wd] = rel

    def _add_study_tree(self, rel):
        self._add(rel)
        self._add(rel + "/results")
        for kind in self._list(rel + "/results"):
            self._add(rel + "/results/" + kind)

    @staticmethod
    def kind(rel_dir):
        parts = rel_dir.split("/")
        if parts[0] in ("models", "jobs"):
            return parts[0]
        return "results" if len(parts) == 4 else "study"

    def next(self, kinds, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return None
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            pos = 0
            while pos + _EVENT.size <= len(data):
                wd, mask, _, length = _EVENT.unpack_from(data, pos)
                name = data[pos + _EVENT.size:pos + _EVENT.size + length].rstrip(b"\0").decode()
                pos += _EVENT.size + length
                rel_dir = self.dirs.get(wd)
                if rel_dir is None or mask & IN_Q_OVERFLOW:
                    continue
                if mask & IN_ISDIR:
                    if not name.startswith("."):
                        child = rel_dir + "/" + name
                        self._add_study_tree(child) if rel_dir == "studies" else self._add(child)
                    continue
                if TEMPORARY.match(name) and self.kind(rel_dir) in kinds:
                    return self.kind(rel_dir), rel_dir + "/" + name


@contextlib.contextmanager
def realtime_priority():
    """Runs the calling thread at real-time priority (SCHED_FIFO; root only, else unchanged):
    on a loaded machine a woken watcher can otherwise wait several milliseconds for a CPU,
    longer than a small file's whole write. Children started inside would inherit it: start
    none."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        raised = True
    except (PermissionError, OSError):
        raised = False
    try:
        yield raised
    finally:
        if raised:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
