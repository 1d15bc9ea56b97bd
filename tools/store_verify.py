#!/usr/bin/env python3
"""Offline check of a blockscoped store, with the daemon stopped (or killed): every file a
reader would take for a stored object must be whole (used by tools/crash-campaign and
tools/disk-full-test).

    python3 tools/store_verify.py STORE        # prints the scan as JSON; exit 1 on a torn file

What is checked, per the formats in docs/CHECKPOINT.md and Protocol/SPEC.md section 8:
  models/NAME.bsckpt                    the checkpoint reader's checks: magic, version, length,
                                        CRC-64/XZ, flags, header JSON, tensor table, zero padding
  jobs/ID.json                          JSON with the record's keys, its id matching the name
  studies/NAME/study.json               JSON naming the study
  studies/NAME/results/KIND/REST.bsr    BSRESULT, u32 length, the index entry (JSON, its key
                                        KIND/REST), then exactly one response frame whose payload
                                        decodes
Temporary files of atomic saves (`.NAME.tmp-PID-HEX`) are listed, never checked: a reader
skips names starting with '.'. A `.corrupt-*` result (the daemon moved a bad one aside) is
reported as torn.
"""
import json
import os
import re
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blockscope_client as bs  # noqa: E402

TEMPORARY = re.compile(r"^\..+\.tmp-(\d+)-[0-9a-f]+$")
CHECKPOINT_MAGIC = b"BSCKPT\r\n"
RESULT_MAGIC = b"BSRESULT"


def _crc64_table():
    poly = 0xC96C5795D7870F42          # ECMA-182, reflected
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc64_table()


def crc64_xz(data):
    """CRC-64/XZ (check value of b"123456789": 0x995DC9BBDF1939FA)."""
    crc, table = 0xFFFFFFFFFFFFFFFF, _CRC_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


class Torn(Exception):
    """A file a reader would take for a stored object fails its checks."""


def check_checkpoint(data):
    """The checkpoint's header (dict) if `data` is a valid checkpoint; raises Torn otherwise."""
    if data[:8] != CHECKPOINT_MAGIC:
        raise Torn("bad magic (%d bytes)" % len(data))
    if len(data) < 36:
        raise Torn("truncated: %d bytes" % len(data))
    version, flags, length, hlen = struct.unpack_from("<IIQI", data, 8)
    if version != 1:
        raise Torn("version %d" % version)
    if length != len(data):
        raise Torn("truncated: file has %d bytes, header says %d" % (len(data), length))
    stored = struct.unpack_from("<Q", data, length - 8)[0]
    computed = crc64_xz(memoryview(data)[:length - 8])
    if stored != computed:
        raise Torn("checksum mismatch: stored %016x, computed %016x" % (stored, computed))
    if flags:
        raise Torn("flags 0x%x" % flags)
    if 28 + hlen > length - 8:
        raise Torn("header length %d beyond the file" % hlen)
    try:
        header = json.loads(bytes(data[28:28 + hlen]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise Torn("header JSON: %s" % e)
    for key in ("model", "training", "data", "history", "epochsCompleted", "metadata", "tensors"):
        if key not in header:
            raise Torn("header has no %r" % key)
    start = (28 + hlen + 63) // 64 * 64
    spans, names = [], set()
    for t in header["tensors"]:
        name, shape, offset, count = t["name"], t["shape"], t["offset"], t["count"]
        product = 1
        for d in shape:
            product *= d
        if not name or name in names or product != count or offset % 64 or offset < start \
                or offset + 4 * count > length - 8 or min(shape, default=0) < 0:
            raise Torn("tensor %r: bad table entry" % name)
        names.add(name)
        spans.append((offset, offset + 4 * count))
    spans.sort()
    pos = 28 + hlen
    for lo, hi in spans:       # every offset is at or after start >= pos, the header's end
        if lo < pos:
            raise Torn("tensors overlap at %d" % lo)
        if any(data[pos:lo]):
            raise Torn("non-zero padding before %d" % lo)
        pos = max(pos, hi)
    if any(data[pos:length - 8]):
        raise Torn("non-zero padding at the end")
    return header


def check_job(data, name):
    """The job record (dict); raises Torn unless it parses and matches its file name."""
    try:
        record = json.loads(data.decode("utf-8"))
        entry = record["entry"]
        ok = str(entry["job"]) + ".json" == name and "state" in entry and "model" in entry \
            and "recipe" in record
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise Torn("job record: %s" % e)
    if not ok:
        raise Torn("job record: keys missing or its id is not its name")
    return record


def check_study(data, name):
    try:
        record = json.loads(data.decode("utf-8"))
        ok = record["study"] == name and "declaration" in record
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise Torn("study record: %s" % e)
    if not ok:
        raise Torn("study record: does not name study %r" % name)
    return record


def check_result(data, key):
    """The result's index entry (dict); raises Torn unless the file is whole."""
    if data[:8] != RESULT_MAGIC or len(data) < 12:
        raise Torn("not a result file (%d bytes)" % len(data))
    (n,) = struct.unpack_from("<I", data, 8)
    try:
        entry = json.loads(data[12:12 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise Torn("index entry: %s" % e)
    if entry.get("key") != key:
        raise Torn("index entry names %r, the file is %r" % (entry.get("key"), key))
    decoder = bs.FrameDecoder(role="client")
    decoder.feed(data[12 + n:])
    try:
        frame = decoder.next()
    except bs.ProtocolError as e:
        raise Torn("frame: %s" % e)
    if frame is None or decoder.buffered:
        raise Torn("frame: %s" % ("incomplete" if frame is None else "bytes after it"))
    return entry


class StoreScan:
    """One pass over a store. Whole files seen before with the same (inode, size, mtime) are not
    read again (`cache` is shared between scans)."""

    def __init__(self, store, cache=None):
        self.store = store
        self.cache = {} if cache is None else cache
        self.files = {}          # relative path -> summary (checkpoint: epochs, job; job: state)
        self.temporaries = []    # relative paths
        self.torn = []           # (relative path, problem)
        self._walk()

    def _read(self, rel, check):
        full = os.path.join(self.store, rel)
        try:
            st = os.stat(full)
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
            if self.cache.get(rel, (None,))[0] == stamp:
                self.files[rel] = self.cache[rel][1]
                return
            with open(full, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return
        try:
            summary = check(data)
        except Torn as e:
            self.torn.append((rel, str(e)))
            return
        self.files[rel] = summary
        self.cache[rel] = (stamp, summary)

    def _entries(self, rel):
        try:
            return sorted(os.listdir(os.path.join(self.store, rel)))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def _sort(self, rel_dir, name):
        """True for a file to check; temporaries and aside files are recorded here."""
        rel = os.path.join(rel_dir, name)
        if TEMPORARY.match(name):
            self.temporaries.append(rel)
            return False
        if name.startswith(".corrupt-"):
            self.torn.append((rel, "the daemon moved it aside as unreadable"))
            return False
        return not name.startswith(".")

    def _walk(self):
        for name in self._entries("models"):
            if self._sort("models", name) and name.endswith(".bsckpt"):
                self._read("models/" + name, lambda d: _checkpoint_summary(check_checkpoint(d)))
        for name in self._entries("jobs"):
            if self._sort("jobs", name) and name.endswith(".json"):
                self._read("jobs/" + name, lambda d, n=name: _job_summary(check_job(d, n)))
        for study in self._entries("studies"):
            if not self._sort("studies", study):
                continue
            base = "studies/" + study
            for name in self._entries(base):
                if self._sort(base, name) and name == "study.json":
                    self._read(base + "/study.json", lambda d, s=study: {"study": check_study(d, s)["study"]})
            for kind in self._entries(base + "/results"):
                if not self._sort(base + "/results", kind):
                    continue
                for name in self._entries(base + "/results/" + kind):
                    if self._sort(base + "/results/" + kind, name) and name.endswith(".bsr"):
                        key = kind + "/" + name[:-4]
                        self._read("%s/results/%s/%s" % (base, kind, name),
                                   lambda d, k=key: {"key": check_result(d, k)["key"]})

    def report(self):
        return {"files": len(self.files), "temporaries": self.temporaries,
                "torn": [{"file": f, "problem": p} for f, p in self.torn]}


def _checkpoint_summary(header):
    return {"epochs": header["epochsCompleted"], "job": header["metadata"].get("job")}


def _job_summary(record):
    return {"state": record["entry"]["state"], "epoch": record["entry"]["epoch"],
            "model": record["entry"]["model"]}


def main():
    if len(sys.argv) != 2:
        print("usage: store_verify.py STORE", file=sys.stderr)
        return 2
    scan = StoreScan(sys.argv[1])
    print(json.dumps(scan.report(), indent=1))
    return 1 if scan.torn else 0


if __name__ == "__main__":
    sys.exit(main())
