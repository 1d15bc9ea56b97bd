#!/usr/bin/env python3
"""Writes the golden frames of Protocol/SPEC.md (protocol version 1) and their manifest.

Written from SPEC.md alone, with the standard library only, so that the Swift codec
(Sources/Wire) and any other implementation are checked against a second reading of the
spec rather than against themselves.

    python3 Protocol/vectors/make_vectors.py      # rewrites Protocol/vectors/*.bin, manifest.json

Two kinds of entries are not a reading of the spec alone, and say so: `answer_to` marks a
response that is the daemon's actual answer to request vectors (its numbers are blockscoped's
Double results, written here as literals and checked against a standard-library recomputation),
and `daemon` lists what blockscoped answers when a new connection sends the file's bytes
(SPEC sections 2 and 4). Tests/DaemonTests/TransportVectorTests.swift and the Python client's
LiveDaemonTests send the files to the daemon and hold it to both.

The output is deterministic: running the script again gives byte-identical files. Docs are
serialised with sorted keys and no spaces, and every number that is a whole number is written
as a JSON integer (JSON numbers have no separate float kind), which is also what Swift's
JSONEncoder writes, so an implementation can re-encode a decoded doc to the same bytes.
"""

import json
import math
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# Section 2: length (u32), magic, version (u8), flags (u8), type (u16), reserved (u16),
# request_id (u64), all little-endian. The length counts the 16 header bytes after it.
PREFIX_AND_HEADER = struct.Struct("<I2sBBHHQ")
assert PREFIX_AND_HEADER.size == 20
HEADER_SIZE = 16
MAGIC = b"BS"
VERSION = 1
FLAG_QUIET = 0x01
MAX_LENGTH = 1 << 30
MiB = 1 << 20

# Section 4.
REQUEST_TYPES = {
    "HELLO": 0x0001, "STATUS": 0x0002, "DATASETS": 0x0003, "TRAIN": 0x0004, "JOBS": 0x0005,
    "WATCH": 0x0006, "CANCEL": 0x0007, "RESUME": 0x0008, "MODELS": 0x0009,
    "DESCRIBE": 0x000A, "DELETE_MODEL": 0x000B, "HEATMAP": 0x000C, "PC": 0x000D,
    "PROBE": 0x000E, "DELETE_BLOCKS": 0x000F, "COMPARE_OUTPUTS": 0x0010, "CKA": 0x0011,
    "EXPORT": 0x0012, "SHUTDOWN": 0x0013, "STUDY_CREATE": 0x0014, "STUDY_STATUS": 0x0015,
    "STUDY_LIST": 0x0016, "STUDY_CANCEL": 0x0017, "STUDY_RESUME": 0x0018, "STUDY_DELETE": 0x0019,
    "STUDY_RESULTS": 0x001A, "STUDY_RESULT": 0x001B, "SESSION_OPEN": 0x001C,
    "SESSION_BATCH": 0x001D, "SESSION_CLOSE": 0x001E, "FOREIGN_MODELS": 0x001F,
    "STUDY_RUN": 0x0020,
}
TYPES = dict(REQUEST_TYPES)
for _name, _code in REQUEST_TYPES.items():
    TYPES[_name + "_OK"] = _code | 0x8000
TYPES["PROGRESS"] = 0x4001
TYPES["ERROR"] = 0xFFFF
TYPE_NAMES = {code: name for name, code in TYPES.items()}

# Section 5: the largest `length` of each type.
def limit(type_code):
    if type_code == TYPES["CKA"]:
        return 512 * MiB
    if type_code == TYPES["SESSION_BATCH"]:
        return 64 * MiB
    if type_code in REQUEST_TYPES.values():
        return 4 * MiB + HEADER_SIZE
    if type_code in (TYPES["HEATMAP_OK"], TYPES["PC_OK"], TYPES["STUDY_RESULT_OK"]):
        return 256 * MiB
    if type_code == TYPES["EXPORT_OK"]:
        return MAX_LENGTH
    return 16 * MiB

# Section 6.
ERRORS = {
    "BAD_MAGIC": 1, "UNSUPPORTED_VERSION": 2, "FRAME_TOO_SHORT": 3, "FRAME_TOO_LARGE": 4,
    "UNKNOWN_TYPE": 5, "MALFORMED_HEADER": 6, "HELLO_REQUIRED": 7, "VERSION_MISMATCH": 8,
    "NOT_A_REQUEST": 9, "PERMISSION_DENIED": 10, "SERVER_BUSY": 11, "SHUTTING_DOWN_CLOSE": 12, "DUPLICATE_REQUEST_ID": 13, "TIMEOUT": 14,
    "MALFORMED_PAYLOAD": 100, "INVALID_ARGUMENT": 101, "NOT_FOUND": 102, "ALREADY_EXISTS": 103,
    "CONFLICT": 104, "CANCELLED": 105, "SHUTTING_DOWN": 106, "TOO_MANY_REQUESTS": 107,
    "CORRUPT": 108, "IO_ERROR": 109, "NO_SPACE": 110, "DATA_UNAVAILABLE": 111,
    "RESULT_TOO_LARGE": 112, "INTERNAL": 113, "EXECUTOR_FAILED": 114,
}

# Section 3: tensor element types (struct format character, byte size). bf16 has no struct
# format: it is the high half of an f32 (packed by tensor_bytes).
DTYPES = {"f32": ("f", 4), "f64": ("d", 8), "i32": ("i", 4), "u8": ("B", 1), "f16": ("e", 2),
          "bf16": (None, 2)}


def doc_json(doc):
    """The doc's bytes: compact, sorted keys, ASCII (deterministic across runs)."""
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode("utf-8")


def tensor(name, dtype, shape, data):
    count = 1
    for d in shape:
        count *= d
    assert len(data) == count, (name, shape, len(data))
    if dtype == "f32":
        # The manifest lists the values a receiver decodes, so they must be exact in f32.
        for v in data:
            assert struct.unpack("<f", struct.pack("<f", v))[0] == v, (name, v)
    if dtype == "f16":
        for v in data:
            assert struct.unpack("<e", struct.pack("<e", v))[0] == v, (name, v)
    if dtype == "bf16":
        # Exact: the low 16 bits of the f32 are zero.
        for v in data:
            assert struct.unpack("<I", struct.pack("<f", v))[0] & 0xFFFF == 0, (name, v)
    return {"name": name, "dtype": dtype, "shape": list(shape), "data": list(data)}


def tensor_bytes(t):
    fmt, _ = DTYPES[t["dtype"]]
    if t["dtype"] == "bf16":
        return b"".join(struct.pack("<H", struct.unpack("<I", struct.pack("<f", v))[0] >> 16)
                        for v in t["data"])
    return struct.pack("<%d%s" % (len(t["data"]), fmt), *t["data"])


def wire_doc(doc, tensors):
    """The doc as sent: the message's keys plus, when there are tensors, their descriptors."""
    full = dict(doc)
    if tensors:
        full["tensors"] = [{"name": t["name"], "dtype": t["dtype"], "shape": t["shape"]}
                           for t in tensors]
    return full


def payload(doc, tensors=()):
    """Section 3: u32 doc_length, the doc, then every tensor's data in descriptor order."""
    body = doc_json(wire_doc(doc, tensors))
    return struct.pack("<I", len(body)) + body + b"".join(tensor_bytes(t) for t in tensors)


def frame_bytes(type_code, request_id, body, version=VERSION, flags=0, reserved=0,
                magic=MAGIC, length=None):
    """One frame; `length` overrides the length field (for malformed vectors)."""
    if length is None:
        length = HEADER_SIZE + len(body)
    return PREFIX_AND_HEADER.pack(length, magic, version, flags, type_code, reserved,
                                  request_id) + body


class Frame:
    """A valid frame: its bytes and its manifest entry."""

    def __init__(self, type_name, request_id, doc, tensors=(), flags=0):
        self.type_name = type_name
        self.type_code = TYPES[type_name]
        self.request_id = request_id
        self.flags = flags
        self.doc = wire_doc(doc, tensors)
        self.tensors = list(tensors)
        body = payload(doc, tensors)
        self.bytes = frame_bytes(self.type_code, request_id, body, flags=flags)
        assert HEADER_SIZE + len(body) <= limit(self.type_code)

    def header_entry(self):
        return {"version": VERSION, "flags": self.flags, "type": self.type_code,
                "type_name": self.type_name, "request_id": self.request_id,
                "length": len(self.bytes) - 4}

    def entry(self):
        e = self.header_entry()
        e["doc"] = self.doc
        e["tensors"] = self.tensors
        return e


VECTORS = []


# What blockscoped answers a new connection that sends a vector's bytes (section 4): frames
# named by type and request id (an ERROR also by code), then whether the daemon closes.

def answer(type_name, request_id):
    return {"type": TYPES[type_name], "type_name": type_name, "request_id": request_id}


def error_answer(error, request_id=0):
    """An ERROR: connection errors (code < 100) carry request id 0 and close (section 4)."""
    code = ERRORS[error]
    entry = answer("ERROR", request_id)
    entry["error"] = {"code": code, "name": error, "close": code < 100}
    return entry


def daemon(answers, closes):
    return {"answers": answers, "closes": closes}


def hello_answers(frames):
    """HELLO_OK for every HELLO among frames the daemon accepts before a failure."""
    return [answer("HELLO_OK", f.request_id) for f in frames if f.type_name == "HELLO"]


def valid(file, description, direction, frames, expected=None, answer_to=None):
    entry = {"file": file, "description": description, "direction": direction,
             "expect": "frames", "frames": [f.entry() for f in frames]}
    if expected is not None:
        entry["daemon"] = expected
    if answer_to is not None:
        entry["answer_to"] = answer_to
    VECTORS.append((entry, b"".join(f.bytes for f in frames)))


def frame_error(file, description, direction, error, before, bad_bytes):
    """A frame-level error: decoding fails after the `before` frames, before any payload. The
    daemon answers the frames before it, then the error on request id 0, and closes."""
    VECTORS.append(({"file": file, "description": description, "direction": direction,
                     "expect": "error", "level": "frame",
                     "error": {"code": ERRORS[error], "name": error},
                     "after_frames": len(before), "frames": [f.entry() for f in before],
                     "daemon": daemon(hello_answers(before) + [error_answer(error)], True)},
                    b"".join(f.bytes for f in before) + bad_bytes))


def payload_error(file, description, type_name, request_id, body, before=()):
    """The frame decodes; parsing its payload (section 3) gives MALFORMED_PAYLOAD. After a
    HELLO the daemon answers it on the request's id and keeps the connection."""
    type_code = TYPES[type_name]
    bad = frame_bytes(type_code, request_id, body)
    entry = {"file": file, "description": description, "direction": "request",
             "expect": "error", "level": "payload",
             "error": {"code": ERRORS["MALFORMED_PAYLOAD"], "name": "MALFORMED_PAYLOAD"},
             "after_frames": len(before), "frames": [f.entry() for f in before],
             "bad_frame": {"version": VERSION, "flags": 0, "type": type_code,
                           "type_name": type_name, "request_id": request_id,
                           "length": len(bad) - 4}}
    if before and before[0].type_name == "HELLO":
        entry["daemon"] = daemon(hello_answers(before)
                                 + [error_answer("MALFORMED_PAYLOAD", request_id)], False)
    VECTORS.append((entry, b"".join(f.bytes for f in before) + bad))


# ---------------------------------------------------------------------------------------------
# Valid frames.

HELLO = Frame("HELLO", 1, {"min_version": 1, "max_version": 1, "client": "blockscope 0.1.0"})
HELLO_OK = Frame("HELLO_OK", 1, {
    "version": 1, "server": "blockscoped", "server_version": "0.1.0", "pid": 4242,
    "limits": {"max_request": 4 * MiB + HEADER_SIZE, "max_cka_request": 512 * MiB,
               "max_doc": 4 * MiB}})
# A request id above 2^53 and with every byte distinct: the u64 is little-endian.
STATUS = Frame("STATUS", 0x0123456789ABCDEF, {})
STATUS_OK = Frame("STATUS_OK", 0x0123456789ABCDEF, {
    "uptime_seconds": 3725.5, "pid": 4242, "rss_bytes": 734003200,
    "peak_rss_bytes": 1073741824, "store": "/home/ada/.local/share/blockscope", "models": 3,
    "cache": {"bytes": 268435456, "budget_bytes": 2147483648, "entries": 42, "hits": 1234,
              "misses": 56, "evictions": 7},
    "jobs": {"running": 1, "queued": 2, "interrupted": 0},
    "connections": 2, "workers": 2})
TRAIN = Frame("TRAIN", 3, {
    "model": "r32-k2-cifar10-f0.5-s7", "depth": 32, "width": 2, "plain": False,
    "dataset": "cifar10", "fraction": 0.5, "stratified": True, "epochs": 40,
    "batch_size": 64, "lr": 0.1, "weight_decay": 0.0005, "warmup_epochs": 1,
    "augment": False, "seed": 7, "test_examples": 1000, "threads": 2})
PROGRESS = Frame("PROGRESS", 3, {
    "phase": "step", "done": 120, "total": 391, "job": 17, "epoch": 4, "epochs": 40,
    "metrics": {"loss": 0.53125, "accuracy": 0.8125, "images_per_second": 1523.25},
    "message": "epoch 5 of 40"})
ERROR = Frame("ERROR", 12, {
    "code": 102, "name": "NOT_FOUND", "message": "no model named \"r20-k9\" in the store",
    "close": False})

HEATMAP_NAMES = ["s1.b0.out", "s1.b1.out", "s1.b2.out"]
HEATMAP_OK = Frame("HEATMAP_OK", 21, {
    "row_names": HEATMAP_NAMES, "column_names": HEATMAP_NAMES, "estimator": "unbiased",
    "remove_pc1": False,
    "diagnostics": [{"kind": "constant", "message": "s1.b2.out is constant on every batch",
                     "representations": ["s1.b2.out"]}],
    "provenance": {"model": "r20-k1-fashion-mnist-f0.1-s0",
                   "model_fingerprint": "0123456789abcdef", "split": "test", "batch_size": 4,
                   "passes": 1, "seed": 0, "bootstrap": 0, "bootstrap_seed": 0,
                   "dropped_examples": 0},
    "stats": {"batches": 2, "forward_passes": 2, "grams_computed": 6, "forms_derived": 0,
              "cache_hits": 0, "seconds": 0.25},
    "block_structure": {"threshold": 0.9, "min_blocks": 2, "block_score": 0.5,
                        "has_block_structure": True,
                        "ranges": [{"first": 0, "last": 1, "blocks_spanned": 2,
                                    "mean_cka": 0.8734, "min_cka": 0.8734}]}},
    tensors=[
        tensor("cka", "f64", [3, 3], [1.0, 0.8734, 0.0, 0.8734, 1.0, 0.0, 0.0, 0.0, 0.0]),
        tensor("defined", "u8", [3, 3], [1, 1, 0, 1, 1, 0, 0, 0, 0]),
        # keep_incomplete: the short last batch is padded with -1.
        tensor("batch_example_ids", "i32", [2, 4], [3, 1, 4, 0, 6, 2, 5, -1]),
    ])
CKA = Frame("CKA", 22, {"estimators": ["linear", "debiased"], "rbf_threshold": 0.5},
            tensors=[
                tensor("x", "f32", [5, 3], [0.5 * i - 3.25 for i in range(15)]),
                tensor("y", "f64", [5, 2], [0.1 * i * i - 1.0 for i in range(10)]),
            ],
            flags=FLAG_QUIET)


def linear_and_debiased_cka(x, y):
    """Linear CKA and debiased linear CKA (the unbiased HSIC of Song et al. 2012) of two
    matrices with examples in rows, in plain Python floats."""
    n = len(x)

    def centred_gram(m):
        means = [sum(row[j] for row in m) / n for j in range(len(m[0]))]
        c = [[row[j] - means[j] for j in range(len(row))] for row in m]
        return [[sum(a * b for a, b in zip(r, s)) for s in c] for r in c]

    def hsic0(k, l):
        return sum(k[i][j] * l[i][j] for i in range(n) for j in range(n))

    def hsic1(k, l):
        k = [[0.0 if i == j else k[i][j] for j in range(n)] for i in range(n)]
        l = [[0.0 if i == j else l[i][j] for j in range(n)] for i in range(n)]
        kl = [[sum(k[i][m] * l[m][j] for m in range(n)) for j in range(n)] for i in range(n)]
        trace = sum(kl[i][i] for i in range(n))
        ones = sum(map(sum, k)) * sum(map(sum, l)) / ((n - 1) * (n - 2))
        return (trace + ones - 2 * sum(map(sum, kl)) / (n - 2)) / (n * (n - 3))

    k, l = centred_gram(x), centred_gram(y)
    linear = hsic0(k, l) / math.sqrt(hsic0(k, k) * hsic0(l, l))
    debiased = hsic1(k, l) / math.sqrt(hsic1(k, k) * hsic1(l, l))
    return linear, debiased


def rows(t):
    width = t["shape"][1]
    return [t["data"][i:i + width] for i in range(0, len(t["data"]), width)]


# blockscoped's answer to HELLO + CKA above, byte for byte (TransportVectorTests and
# LiveDaemonTests send the two request files and compare): its Double results as literals,
# since the last bits depend on the order of its sums. They must agree with the recomputation.
CKA_OK = Frame("CKA_OK", 22, {"n": 5, "linear": 0.9367569163265614,
                              "debiased": 0.9718529812515155})
_linear, _debiased = linear_and_debiased_cka(rows(CKA.tensors[0]), rows(CKA.tensors[1]))
assert abs(_linear - CKA_OK.doc["linear"]) < 1e-12, _linear
assert abs(_debiased - CKA_OK.doc["debiased"]) < 1e-12, _debiased
# Every key of a declaration, so that the Swift encoder (which writes them all) reproduces it.
STUDY_CREATE = Frame("STUDY_CREATE", 30, {"study": "depth-vs-data", "declaration": {
    "dataset": "cifar10", "depths": [14, 56], "widths": [1, 2], "fractions": [1, 0.06],
    "seeds": [0, 1, 2], "plain_widths": [1], "epochs": 30, "batch_size": 128, "lr": 0.05,
    "weight_decay": 0.0005, "warmup_epochs": 2, "augment": True, "stratified": False,
    "test_examples": 5000, "snapshot_epochs": [1, 5], "analyses": ["heatmap", "pc", "cross_seed"],
    "heatmap_examples": 2560, "heatmap_batch": 256, "heatmap_passes": 1, "bootstrap": 0,
    "pc_examples": 1024, "probe_epochs": 10, "probe_train_examples": 5000,
    "probe_test_examples": 2000, "deletion_test_examples": 2000,
    "population_test_examples": 10000, "near_chance_margin": 0.05, "similar_accuracy": 0.02}})
STUDY_STATUS_OK = Frame("STUDY_STATUS_OK", 31, {
    "study": "depth-vs-data", "state": "running", "created": "2026-12-07T06:45:38Z",
    "dataset": "cifar10",
    "models": [
        {"model": "r14-k1-cifar10-f0.06-s0-e30-98abc3a6", "depth": 14, "width": 1,
         "fraction": 0.06, "seed": 0, "plain": False, "state": "done", "job": 1, "epoch": 30,
         "epochs": 30, "test_accuracy": 0.5525, "near_chance": False, "reused": True,
         "analyses_done": 7, "analyses_total": 7},
        {"model": "r56-k1-cifar10-f0.06-s0-e30-0a1b2c3d", "depth": 56, "width": 1,
         "fraction": 0.06, "seed": 0, "plain": False, "state": "training", "job": 2,
         "epoch": 12, "epochs": 30, "near_chance": False, "reused": False,
         "analyses_done": 0, "analyses_total": 7}],
    "analyses_done": 7, "analyses_total": 15, "analysing": "heatmap/r14-k1-cifar10-f0.06-s0-e30-98abc3a6",
    "progress": 0.375, "eta_seconds": 1834.5,
    "errors": [{"key": "probe/r14-k1-cifar10-f0.06-s0-e30-98abc3a6",
                "message": "NO_SPACE: write(/store/studies/x) failed"}],
    "executor": "local"})
# The slurm executor: STUDY_RUN with every key, and a status with a task that failed.
STUDY_RUN = Frame("STUDY_RUN", 32, {"study": "depth-vs-data", "executor": {
    "kind": "slurm", "partition": "cpu", "time": "4:00:00", "account": "lab", "mem": "8G",
    "cpus_per_task": 8, "max_parallel": 50}})
STUDY_RUN_OK = Frame("STUDY_RUN_OK", 32, {
    "study": "depth-vs-data", "state": "running", "created": "2026-12-07T06:45:38Z",
    "dataset": "cifar10",
    "models": [
        {"model": "r14-k1-cifar10-f0.06-s0-e30-98abc3a6", "depth": 14, "width": 1,
         "fraction": 0.06, "seed": 0, "plain": False, "state": "training", "epoch": 3,
         "epochs": 30, "near_chance": False, "reused": False, "analyses_done": 0,
         "analyses_total": 7,
         "slurm": {"array_job": "4711", "task": 0, "state": "RUNNING"}},
        {"model": "r56-k1-cifar10-f0.06-s0-e30-0a1b2c3d", "depth": 56, "width": 1,
         "fraction": 0.06, "seed": 0, "plain": False, "state": "failed", "epoch": 0,
         "epochs": 30, "near_chance": False, "reused": False, "analyses_done": 0,
         "analyses_total": 7, "error": "its array task ended FAILED (NonZeroExitCode); STUDY_RESUME submits it again",
         "slurm": {"array_job": "4711", "task": 1, "state": "FAILED", "reason": "NonZeroExitCode",
                   "log_tail": "error: out of memory"}}],
    "analyses_done": 0, "analyses_total": 15, "progress": 0.08, "errors": [],
    "executor": "slurm", "slurm_script": "/store/studies/depth-vs-data/slurm/train.sbatch"})
# Foreign models (section 7): a session declaring three representations, and one batch of 4
# examples of a dataset reference carrying them in the three float dtypes (f16 and bf16 are
# widened to f32 by the daemon).
SESSION_OPEN = Frame("SESSION_OPEN", 40, {
    "model": "torch-resnet8", "fingerprint": "sha256:9f86d081884c7d65",
    "representations": [{"name": "layer1.0", "shape": [2, 2, 2], "block": 0},
                        {"name": "avgpool", "shape": [2]}, {"name": "fc", "shape": [3]}]})
SESSION_OPEN_DERIVED = Frame("SESSION_OPEN", 42, {
    "model": "torch-resnet8-bn", "fingerprint": "sha256:2c26b46b68ffc68f",
    "representations": [{"name": "conv1", "shape": [2, 2, 2]},
                        {"name": "bn1", "shape": [2, 2, 2],
                         "channel_affine": {"of": "conv1", "scale": [0.5, 2], "shift": [0.25, -1]}}]})
SESSION_OPEN_OK = Frame("SESSION_OPEN_OK", 40, {
    "session": 7, "model": "torch-resnet8", "fingerprint": "sha256:9f86d081884c7d65",
    "key": "5be1f2a0c3d4e5f6", "reopened": False, "replaced": "sha256:0123"})
SESSION_BATCH = Frame("SESSION_BATCH", 41, {"session": 7, "batch": "cifar10:test[0:4]"},
                      tensors=[
                          tensor("layer1.0", "f32", [4, 2, 2, 2], [0.25 * i - 4 for i in range(32)]),
                          tensor("avgpool", "bf16", [4, 2], [1.5, -2.0, 0.375, 3.0, -0.5, 96.0, 0.0, 1.0]),
                          tensor("fc", "f16", [4, 3], [0.5 * i - 2.5 for i in range(12)]),
                      ])
SESSION_BATCH_OK = Frame("SESSION_BATCH_OK", 41, {
    "batch": "cifar10:test[0:4]", "representations": ["layer1.0", "avgpool", "fc"], "examples": 4,
    "pending": []})
MODELS = Frame("MODELS", 4, {})
DATASETS = Frame("DATASETS", 5, {})

valid("hello_request.bin", "HELLO from a client speaking version 1 only", "request", [HELLO],
      daemon([answer("HELLO_OK", 1)], False))
valid("hello_ok_response.bin", "HELLO_OK choosing version 1, with the daemon's limits",
      "response", [HELLO_OK])
valid("status_request.bin",
      "STATUS with doc {} and a request id above 2^53 (0x0123456789ABCDEF, little-endian); "
      "sent as a connection's first frame, HELLO_REQUIRED",
      "request", [STATUS], daemon([error_answer("HELLO_REQUIRED")], True))
valid("status_ok_response.bin", "STATUS_OK with every key (a path: '/' is not escaped)",
      "response", [STATUS_OK])
valid("train_request.bin",
      "TRAIN with every key given; width 2 is the JSON integer 2 for a float key",
      "request", [TRAIN])
valid("progress_event.bin", "PROGRESS of a training job: a step of epoch 5 with metrics",
      "response", [PROGRESS])
valid("error_frame.bin",
      "ERROR NOT_FOUND answering request 12 (the connection stays open); an ERROR is "
      "accepted in both directions (a client may send one before closing: the daemon closes "
      "without answering, whatever its request id, before HELLO too)",
      "any", [ERROR], daemon([], True))
valid("heatmap_ok_response.bin",
      "HEATMAP_OK with tensors cka f64[3,3], defined u8[3,3], batch_example_ids i32[2,4]",
      "response", [HEATMAP_OK])
valid("cka_request.bin", "CKA with QUIET set and tensors x f32[5,3], y f64[5,2]",
      "request", [CKA])
valid("cka_ok_response.bin",
      "CKA_OK: blockscoped's answer, byte for byte, to hello_request.bin then cka_request.bin",
      "response", [CKA_OK], answer_to=["hello_request.bin", "cka_request.bin"])
valid("study_create_request.bin",
      "STUDY_CREATE with every key of a study declaration", "request", [STUDY_CREATE])
valid("study_status_ok_response.bin",
      "STUDY_STATUS_OK: a trained (reused) model and one training, an error, an ETA",
      "response", [STUDY_STATUS_OK])
valid("study_run_request.bin",
      "STUDY_RUN to the slurm executor with every Slurm option", "request", [STUDY_RUN])
valid("study_run_ok_response.bin",
      "STUDY_RUN_OK: a study on Slurm, one task running and one failed with its log tail",
      "response", [STUDY_RUN_OK])
valid("session_open_request.bin",
      "SESSION_OPEN: a foreign model with three representations, one in block 0",
      "request", [SESSION_OPEN])
valid("session_open_derived_request.bin",
      "SESSION_OPEN: a BatchNorm declared a channel_affine map of its convolution (never sent)",
      "request", [SESSION_OPEN_DERIVED])
valid("session_open_ok_response.bin",
      "SESSION_OPEN_OK: session 7, the name rebound from another fingerprint", "response",
      [SESSION_OPEN_OK])
valid("session_batch_request.bin",
      "SESSION_BATCH: a dataset-reference batch of 4 examples with tensors layer1.0 f32[4,2,2,2], "
      "avgpool bf16[4,2] and fc f16[4,3]", "request", [SESSION_BATCH])
valid("session_batch_ok_response.bin",
      "SESSION_BATCH_OK: all three representations received, none pending", "response",
      [SESSION_BATCH_OK])
valid("pipelined_requests.bin",
      "HELLO, STATUS and MODELS back to back in one write (pipelining)",
      "request", [HELLO, STATUS, MODELS],
      daemon([answer("HELLO_OK", 1), answer("STATUS_OK", STATUS.request_id),
              answer("MODELS_OK", 4)], False))
valid("empty_doc_request.bin", "DATASETS with the 2-byte doc {} and no tensors",
      "request", [DATASETS])

# The conversation rules of section 4, in the order the daemon checks them.
HELLO_ID_0 = Frame("HELLO", 0, {"min_version": 1, "max_version": 1, "client": "id zero"})
STATUS_ID_0 = Frame("STATUS", 0, {})
SECOND_HELLO = Frame("HELLO", 2, {"min_version": 1, "max_version": 1, "client": "again"})
# A client giving up before HELLO (the code is the client's reason; the daemon reads no doc).
CLIENT_ERROR = Frame("ERROR", 0, {
    "code": 2, "name": "UNSUPPORTED_VERSION", "message": "this client needs protocol version 2",
    "close": True})
HELLO_MISSING_KEY = Frame("HELLO", 2, {"max_version": 1, "client": "no min_version"})
HELLO_AFTER_BAD = Frame("HELLO", 3, {"min_version": 1, "max_version": 1, "client": "fixed"})
HELLO_FUTURE = Frame("HELLO", 1, {"min_version": 2, "max_version": 3, "client": "future"})

valid("hello_request_id_0.bin",
      "HELLO with request id 0: MALFORMED_HEADER and close (HELLO is a request; id 0 is the "
      "connection's)", "request", [HELLO_ID_0],
      daemon([error_answer("MALFORMED_HEADER")], True))
valid("status_request_id_0_first.bin",
      "STATUS with request id 0 as the first frame: HELLO_REQUIRED (the type is checked "
      "before the request id)", "request", [STATUS_ID_0],
      daemon([error_answer("HELLO_REQUIRED")], True))
valid("client_error_first.bin",
      "a client's ERROR (request id 0) as its first frame: the daemon closes without answering",
      "request", [CLIENT_ERROR], daemon([], True))
valid("hello_no_common_version.bin",
      "HELLO from a client speaking versions 2 to 3 only: UNSUPPORTED_VERSION and close",
      "request", [HELLO_FUTURE], daemon([error_answer("UNSUPPORTED_VERSION")], True))
valid("second_hello.bin", "HELLO, then a second HELLO: HELLO_REQUIRED and close", "request",
      [HELLO, SECOND_HELLO], daemon([answer("HELLO_OK", 1), error_answer("HELLO_REQUIRED")], True))
valid("request_id_0.bin", "HELLO, then STATUS with request id 0: MALFORMED_HEADER and close",
      "request", [HELLO, STATUS_ID_0],
      daemon([answer("HELLO_OK", 1), error_answer("MALFORMED_HEADER")], True))
valid("hello_missing_key_then_hello.bin",
      "a HELLO without min_version (INVALID_ARGUMENT on its id; the connection still waits for "
      "HELLO), then a good HELLO", "request", [HELLO_MISSING_KEY, HELLO_AFTER_BAD],
      daemon([error_answer("INVALID_ARGUMENT", 2), answer("HELLO_OK", 3)], False))

# ---------------------------------------------------------------------------------------------
# Malformed frames. The header after a bad length is a plausible STATUS header so that only the
# length is wrong.

def status_header(length, **kw):
    fields = dict(version=VERSION, flags=0, reserved=0, magic=MAGIC)
    fields.update(kw)
    return frame_bytes(TYPES["STATUS"], 9, b"", length=length, **fields)

STATUS_BODY = payload({})
STATUS_LENGTH = HEADER_SIZE + len(STATUS_BODY)

frame_error("bad_length_zero.bin",
            "length 0: FRAME_TOO_SHORT from the four length bytes alone", "any",
            "FRAME_TOO_SHORT", [], struct.pack("<I", 0))
frame_error("bad_length_15.bin", "length 15, one byte shorter than the header", "any",
            "FRAME_TOO_SHORT", [], struct.pack("<I", 15) + status_header(20)[4:19])
frame_error("bad_length_max.bin",
            "length 2^32-1: FRAME_TOO_LARGE from the length bytes alone, nothing allocated",
            "any", "FRAME_TOO_LARGE", [], status_header(0xFFFFFFFF))
frame_error("bad_length_over_request_limit.bin",
            "after HELLO, a STATUS header with length 4 MiB + 17 (one over the request "
            "limit) and no payload: FRAME_TOO_LARGE as soon as the header is in",
            "request", "FRAME_TOO_LARGE", [HELLO], status_header(4 * MiB + HEADER_SIZE + 1))
frame_error("bad_magic.bin", "magic 'SB' instead of 'BS'", "any", "BAD_MAGIC", [],
            status_header(STATUS_LENGTH, magic=b"SB") + STATUS_BODY)
frame_error("bad_version_2.bin", "header version 2, which a version-1 receiver does not speak",
            "any", "UNSUPPORTED_VERSION", [],
            status_header(STATUS_LENGTH, version=2) + STATUS_BODY)
frame_error("bad_reserved.bin", "reserved field 0x0100", "any", "MALFORMED_HEADER", [],
            status_header(STATUS_LENGTH, reserved=0x0100) + STATUS_BODY)
frame_error("bad_flags.bin", "flags 0x03: QUIET plus the undefined bit 1", "any",
            "MALFORMED_HEADER", [], status_header(STATUS_LENGTH, flags=0x03) + STATUS_BODY)
frame_error("bad_unknown_type.bin", "type 0x0077 is not in section 4", "any", "UNKNOWN_TYPE",
            [], frame_bytes(0x0077, 9, STATUS_BODY))
frame_error("bad_several_faults.bin",
            "magic 'SB', version 2, flags 0x80, reserved 1, type 0x0077 and request id 0 at "
            "once: BAD_MAGIC, the first check", "any", "BAD_MAGIC", [],
            frame_bytes(0x0077, 0, STATUS_BODY, magic=b"SB", version=2, flags=0x80,
                        reserved=1))
frame_error("bad_flags_and_type.bin",
            "flags 0x02, type 0x0077 and request id 0: MALFORMED_HEADER (flags are checked "
            "before the type, the type before the request id)", "any", "MALFORMED_HEADER", [],
            frame_bytes(0x0077, 0, STATUS_BODY, flags=0x02))
frame_error("bad_response_type_over_limit.bin",
            "after HELLO, a STATUS_OK header with length 16 MiB + 17 (above every limit but "
            "2^30): NOT_A_REQUEST, since the type is checked before its limit", "request",
            "NOT_A_REQUEST", [HELLO],
            frame_bytes(TYPES["STATUS_OK"], 2, b"", length=16 * MiB + HEADER_SIZE + 1))
frame_error("bad_response_to_daemon.bin",
            "after HELLO, a client sends a STATUS_OK (a response type) to the daemon",
            "request", "NOT_A_REQUEST", [HELLO],
            frame_bytes(TYPES["STATUS_OK"], 2, STATUS_BODY))

# The stream ends in the middle of a TRAIN frame's payload: the decoder yields the HELLO, then
# nothing, and reports no error (section 2: a connection closed mid-frame ends that frame).
_cut = TRAIN.bytes[:20 + 30]
VECTORS.append(({"file": "truncated_mid_payload.bin",
                 "description": "HELLO, then a TRAIN frame cut 30 bytes into its payload",
                 "direction": "request", "expect": "incomplete", "level": "frame",
                 "after_frames": 1, "frames": [HELLO.entry()], "trailing_bytes": len(_cut)},
                HELLO.bytes + _cut))

# Payload errors (section 3): the frame itself is well formed.
def raw_payload(doc_bytes, tail=b"", doc_length=None):
    if doc_length is None:
        doc_length = len(doc_bytes)
    return struct.pack("<I", doc_length) + doc_bytes + tail

X_BYTES = tensor_bytes(tensor("x", "f32", [5, 3], [0.5 * i for i in range(15)]))
Y_BYTES = tensor_bytes(tensor("y", "f32", [5, 2], [0.25 * i for i in range(10)]))
XY_DOC = {"tensors": [{"name": "x", "dtype": "f32", "shape": [5, 3]},
                      {"name": "y", "dtype": "f32", "shape": [5, 2]}]}

# Payload errors (section 3), each after a HELLO: the daemon answers MALFORMED_PAYLOAD on the
# request's id and the connection stays open.
payload_error("bad_payload_empty.bin",
              "a STATUS frame of length 16: no room for the 4-byte doc_length",
              "STATUS", 9, b"", before=[HELLO])
payload_error("bad_payload_doc_length.bin",
              "doc_length 100 but only the 2-byte doc {} follows", "STATUS", 9,
              raw_payload(b"{}", doc_length=100), before=[HELLO])
payload_error("bad_payload_doc_empty.bin",
              "doc_length 0: an empty doc is not JSON, not even for a request without keys",
              "DATASETS", 9, raw_payload(b""), before=[HELLO])
payload_error("bad_payload_not_json.bin", "the doc is not JSON", "STATUS", 9,
              raw_payload(b"{\"model\": r20}"), before=[HELLO])
payload_error("bad_payload_doc_array.bin", "the doc is a JSON array, not an object",
              "STATUS", 9, raw_payload(b"[1,2]"), before=[HELLO])
payload_error("bad_payload_invalid_utf8.bin", "the doc's string holds the byte 0xFF",
              "STATUS", 9, raw_payload(b"{\"client\":\"\xff\"}"), before=[HELLO])
payload_error("bad_payload_tensors_null.bin",
              "\"tensors\": null (absent means no tensors; null is not absent here)",
              "STATUS", 9, raw_payload(b"{\"tensors\":null}"), before=[HELLO])
payload_error("bad_payload_shutdown_not_object.bin",
              "SHUTDOWN whose doc is []: refused like any request; the daemon does not stop",
              "SHUTDOWN", 9, raw_payload(b"[]"), before=[HELLO])
payload_error("bad_payload_tensor_bytes_missing.bin",
              "a CKA request whose y f32[5,2] lacks its last 4 bytes", "CKA", 10,
              raw_payload(doc_json(XY_DOC), X_BYTES + Y_BYTES[:-4]), before=[HELLO])
payload_error("bad_payload_trailing_bytes.bin",
              "a CKA request with 3 bytes after its last tensor", "CKA", 10,
              raw_payload(doc_json(XY_DOC), X_BYTES + Y_BYTES + b"\x00\x00\x00"),
              before=[HELLO])
payload_error("bad_payload_dtype.bin", "a tensor descriptor with dtype \"f8\" (not a dtype)",
              "CKA", 10,
              raw_payload(doc_json({"tensors": [{"name": "x", "dtype": "f8", "shape": [2]}]}),
                          b"\x00" * 2), before=[HELLO])
payload_error("bad_payload_shape.bin", "a tensor descriptor with a negative dimension",
              "CKA", 10,
              raw_payload(doc_json({"tensors": [{"name": "x", "dtype": "u8", "shape": [-1]}]})),
              before=[HELLO])

NOTES = [
    "Integers are little-endian. 'length' is the frame's length field (bytes after it).",
    "direction: 'request' vectors are decoded as the daemon decodes (only request types and "
    "ERROR accepted), 'response' ones as a client decodes (responses, PROGRESS, ERROR); 'any' "
    "vectors give the same result in both roles.",
    "frames[].doc is the doc exactly as sent, including its 'tensors' descriptor array; "
    "frames[].tensors repeats the descriptors with the decoded values in 'data' (row-major).",
    "expect 'frames': the file is exactly these frames. expect 'error', level 'frame': the "
    "decoder yields after_frames frames, then fails with 'error' (and keeps failing). "
    "expect 'error', level 'payload': every frame decodes (bad_frame is the last one's "
    "header) and parsing bad_frame's payload fails with 'error'. expect 'incomplete': the "
    "decoder yields after_frames frames, then needs more bytes; trailing_bytes stay buffered.",
    "daemon (on some request vectors): what blockscoped does when a new connection sends "
    "exactly the file's bytes: 'answers' are the frames it sends, by type and request id (an "
    "ERROR also by code, name and close), in this order except that final frames of different "
    "requests may come in any order (SPEC section 4); then it closes the connection when "
    "'closes' is true, else the connection stays open (a STATUS sent next is answered). Docs "
    "other than ERROR's are not compared.",
    "answer_to (on a response vector): the file is, byte for byte, the last frame blockscoped "
    "sends when a new connection sends these request files in order.",
]


def main():
    manifest = {"spec_version": VERSION, "notes": NOTES, "vectors": []}
    names = set()
    for entry, data in VECTORS:
        assert entry["file"] not in names, entry["file"]
        names.add(entry["file"])
        with open(os.path.join(HERE, entry["file"]), "wb") as f:
            f.write(data)
        manifest["vectors"].append(entry)
    with open(os.path.join(HERE, "manifest.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print("wrote %d vectors to %s" % (len(VECTORS), HERE), file=sys.stderr)


if __name__ == "__main__":
    main()
