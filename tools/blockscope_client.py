#!/usr/bin/env python3
"""A standard-library-only Python client of the blockscoped protocol (Protocol/SPEC.md, v1).

Why it exists: notebooks and scripts should be able to talk to the daemon without numpy,
without building the Swift code, and with a second, independent implementation of the wire
format that checks the Swift one against the same golden vectors (Protocol/vectors/).

Sections of this file, one concern each:
  1. Constants        message types, error codes, limits (SPEC sections 4-6)
  2. Errors           ProtocolError (this side detected it), BlockscopeError (the daemon said it)
  3. Tensors          Tensor(name, dtype, shape, data): little-endian row-major data
  4. Payloads         u32 doc length, deterministic JSON doc, tensor data (SPEC section 3)
  5. Frames           20-byte header + payload, FrameDecoder for incremental input (SPEC 2)
  6. .npy files       load_npy / save_npy without numpy
  7. Client           the socket conversation and one method per request (SPEC 1, 4, 7)
  8. Command line     status, models, jobs, cka, heatmap, export

Usage from Python:

    from blockscope_client import Client
    with Client() as c:                       # default socket path of SPEC section 1
        print(c.status()["uptime_seconds"])
        print(c.cka([[1, 2], [3, 4], [5, 7], [0, 1]], [[1], [2], [3], [5]]))

Command line: `python3 tools/blockscope_client.py --help`.
"""

import argparse
import array
import ast
import itertools
import json
import math
import os
import socket
import struct
import sys

__all__ = [
    "PROTOCOL_VERSION", "REQUEST_TYPES", "TYPE_NAMES", "ERROR_NAMES", "FLAG_QUIET",
    "ProtocolError", "BlockscopeError", "NoDaemonError", "ConnectionClosed",
    "Tensor", "Frame", "FrameDecoder",
    "encode_doc", "encode_payload", "decode_payload", "encode_frame", "frame_limit",
    "type_code", "type_name", "load_npy", "save_npy", "default_socket_path", "Client", "main",
]


# =============================================================================================
# 1. Constants (SPEC sections 2, 4, 5, 6)
# =============================================================================================

PROTOCOL_VERSION = 1
#: The header versions this implementation reads and writes.
SUPPORTED_VERSIONS = (1,)

MAGIC = b"BS"
HEADER_SIZE = 16          # magic .. request_id: the part of `length` that is not payload
PREFIX_SIZE = 4           # the u32 `length` itself
FLAG_QUIET = 0x01         # bit 0: no PROGRESS events for this request

_HEADER = struct.Struct("<I2sBBHHQ")   # length, magic, version, flags, type, reserved, id

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
RESPONSE_BIT = 0x8000
PROGRESS = 0x4001
ERROR = 0xFFFF

#: Every known type code -> its name. Responses are named after their request + "_OK"
#: (the SPEC names HELLO_OK, HEATMAP_OK, PC_OK and EXPORT_OK that way).
TYPE_NAMES = {}
for _name, _code in REQUEST_TYPES.items():
    TYPE_NAMES[_code] = _name
    TYPE_NAMES[_code | RESPONSE_BIT] = _name + "_OK"
TYPE_NAMES[PROGRESS] = "PROGRESS"
TYPE_NAMES[ERROR] = "ERROR"
_CODES_BY_NAME = {name: code for code, name in TYPE_NAMES.items()}
del _name, _code

ERROR_NAMES = {
    1: "BAD_MAGIC", 2: "UNSUPPORTED_VERSION", 3: "FRAME_TOO_SHORT", 4: "FRAME_TOO_LARGE",
    5: "UNKNOWN_TYPE", 6: "MALFORMED_HEADER", 7: "HELLO_REQUIRED", 8: "VERSION_MISMATCH",
    9: "NOT_A_REQUEST", 10: "PERMISSION_DENIED", 11: "SERVER_BUSY", 12: "SHUTTING_DOWN_CLOSE", 13: "DUPLICATE_REQUEST_ID", 14: "TIMEOUT",
    15: "TOO_MANY_DESCRIPTORS",
    100: "MALFORMED_PAYLOAD", 101: "INVALID_ARGUMENT", 102: "NOT_FOUND", 103: "ALREADY_EXISTS",
    104: "CONFLICT", 105: "CANCELLED", 106: "SHUTTING_DOWN", 107: "TOO_MANY_REQUESTS",
    108: "CORRUPT", 109: "IO_ERROR", 110: "NO_SPACE", 111: "DATA_UNAVAILABLE",
    112: "RESULT_TOO_LARGE", 113: "INTERNAL", 114: "EXECUTOR_FAILED",
}
ERROR_CODES = {name: code for code, name in ERROR_NAMES.items()}
#: Codes below this close the connection (SPEC section 4).
FIRST_REQUEST_ERROR = 100

MiB = 1 << 20
MAX_LENGTH = 1 << 30      # no frame's `length` may exceed this, whatever its type
MAX_DOC = 4 * MiB         # doc_length limit for every type


def frame_limit(type_code_):
    """The largest allowed `length` of a frame of this type (SPEC section 5)."""
    if type_code_ == REQUEST_TYPES["CKA"]:
        return 512 * MiB
    if type_code_ == REQUEST_TYPES["SESSION_BATCH"]:
        return 64 * MiB + MAX_DOC + HEADER_SIZE
    if type_code_ in TYPE_NAMES and type_code_ < RESPONSE_BIT and type_code_ != PROGRESS:
        return 4 * MiB + HEADER_SIZE
    if type_code_ in (REQUEST_TYPES["HEATMAP"] | RESPONSE_BIT, REQUEST_TYPES["PC"] | RESPONSE_BIT,
                      REQUEST_TYPES["STUDY_RESULT"] | RESPONSE_BIT):
        return 256 * MiB
    if type_code_ == REQUEST_TYPES["EXPORT"] | RESPONSE_BIT:
        return MAX_LENGTH
    return 16 * MiB


def type_code(type_):
    """Accepts a type code or a name ("STATUS", "status", "HEATMAP_OK") and returns the code."""
    if isinstance(type_, int) and not isinstance(type_, bool):
        if not 0 <= type_ <= 0xFFFF:
            raise ValueError("message type %r is not a u16" % (type_,))
        return type_
    if isinstance(type_, str):
        code = _CODES_BY_NAME.get(type_.upper())
        if code is not None:
            return code
    raise ValueError("unknown message type %r (known: %s)"
                     % (type_, ", ".join(sorted(_CODES_BY_NAME))))


def type_name(code):
    """The name of a type code, or "0x...." for codes this version does not know."""
    return TYPE_NAMES.get(code, "0x%04X" % code)


def is_request_type(code):
    return code in TYPE_NAMES and code < RESPONSE_BIT and code != PROGRESS


# =============================================================================================
# 2. Errors
# =============================================================================================

class ProtocolError(Exception):
    """A violation of the protocol detected by *this* side (decoding or encoding a frame).

    `code` and `name` are those of SPEC section 6 (what a receiver answers with), so tests and
    callers can compare them with the daemon's behaviour. `code` is None for client-side
    conditions the SPEC has no code for (e.g. an unexpected response type).
    `request_id` and `frame` are set for payload errors (the frame boundary was intact).
    """

    def __init__(self, code, name, message, request_id=None, frame=None):
        super().__init__(code, name, message)
        self.code = code
        self.name = name
        self.message = message
        self.request_id = request_id
        self.frame = frame

    @property
    def closes_connection(self):
        """True for errors below 100: the receiver answers and closes (SPEC section 4)."""
        return self.code is None or self.code < FIRST_REQUEST_ERROR

    def __str__(self):
        return "%s (%s): %s" % (self.name, self.code, self.message)


def _perror(name, message, **kw):
    return ProtocolError(ERROR_CODES[name], name, message, **kw)


class BlockscopeError(Exception):
    """An ERROR frame received from the daemon (SPEC section 6)."""

    def __init__(self, code, name, message, close=False, request_id=0, doc=None):
        super().__init__(code, name, message)
        self.code = code
        self.name = name
        self.message = message
        self.close = close
        self.request_id = request_id
        self.doc = doc if doc is not None else {}

    @property
    def closes_connection(self):
        """SPEC section 6: an unknown code below 100 is still a connection error."""
        return bool(self.close) or (isinstance(self.code, int) and self.code < FIRST_REQUEST_ERROR)

    @classmethod
    def from_doc(cls, doc, request_id=0):
        code = doc.get("code")
        name = doc.get("name") or ERROR_NAMES.get(code, "UNKNOWN_ERROR")
        return cls(code, name, str(doc.get("message", "")), bool(doc.get("close", False)),
                   request_id, doc)

    def __str__(self):
        return "%s (%s): %s" % (self.name, self.code, self.message)


class NoDaemonError(ConnectionError):
    """Nothing listens at the socket path; the message says how to start the daemon."""

    def __init__(self, path, reason=None):
        self.path = path
        msg = ("no daemon at %s; start it with: blockscoped --socket %s --store DIR"
               % (path, path))
        if reason:
            msg += " (%s)" % reason
        super().__init__(msg)


class ConnectionClosed(ConnectionError):
    """The daemon closed the connection before answering."""


# =============================================================================================
# 3. Tensors (SPEC section 3: little-endian, row-major)
# =============================================================================================

#: dtype -> (item size, array.array typecode). "i" is 4 bytes on every CPython platform we
#: know, but it is checked below rather than assumed.
#: f16 (IEEE binary16) and bf16 (the high half of an f32) are held as their 16-bit patterns
#: ("H"); to_array() and tolist() widen them to floats.
DTYPES = {"f32": (4, "f"), "f64": (8, "d"), "i32": (4, "i"), "u8": (1, "B"), "f16": (2, "H"),
          "bf16": (2, "H")}
if array.array("i").itemsize != 4:                                  # pragma: no cover
    DTYPES["i32"] = (4, "l")
_ACCEPTED_TYPECODES = {"f32": "f", "f64": "d", "i32": "il", "u8": "B", "f16": "H", "bf16": "H"}
_BIG_ENDIAN = sys.byteorder == "big"


def _product(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def values_array(dtype, values):
    """An array.array holding `values` as `dtype` stores them: f16 rounded to binary16 by
    struct, bf16 rounded to nearest even from f32 (NaN stays NaN); the others as they are."""
    if dtype == "f16":
        return array.array("H", struct.unpack("<%dH" % len(values),
                                              struct.pack("<%de" % len(values), *values)))
    if dtype == "bf16":
        bits = struct.unpack("<%dI" % len(values), struct.pack("<%df" % len(values), *values))
        return array.array("H", [(b >> 16) | 0x40 if (b & 0x7FFFFFFF) > 0x7F800000
                                 else ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) & 0xFFFF
                                 for b in bits])
    return array.array(DTYPES[dtype][1], values)


class Tensor:
    """A named n-dimensional array as carried in a payload.

    `data` is either `bytes` (little-endian, as on the wire; what the decoder produces, so a
    large activation tensor is not converted until asked) or an `array.array` in native byte
    order of the dtype's typecode. `shape` is a tuple of non-negative ints; `()` is a scalar.
    """

    __slots__ = ("name", "dtype", "shape", "data")

    def __init__(self, name, dtype, shape, data):
        if dtype not in DTYPES:
            raise ValueError("tensor %r: dtype %r is not one of %s"
                             % (name, dtype, ", ".join(DTYPES)))
        shape = tuple(shape)
        for d in shape:
            if not isinstance(d, int) or isinstance(d, bool) or d < 0:
                raise ValueError("tensor %r: shape %r must be non-negative ints" % (name, shape))
        size = DTYPES[dtype][0]
        if isinstance(data, array.array):
            if data.typecode not in _ACCEPTED_TYPECODES[dtype] or data.itemsize != size:
                raise TypeError("tensor %r: array typecode %r does not hold %s"
                                % (name, data.typecode, dtype))
            nbytes = len(data) * data.itemsize
        elif isinstance(data, memoryview) and not _BIG_ENDIAN:
            # A view of the caller's buffer (a numpy array's memory): sent without a copy.
            if not data.c_contiguous:
                raise ValueError("tensor %r: the buffer is not C-contiguous" % name)
            data = data.cast("B") if data.format != "B" or data.ndim != 1 else data
            nbytes = data.nbytes
        else:
            data = bytes(data)
            nbytes = len(data)
        if nbytes != _product(shape) * size:
            raise ValueError("tensor %r: %d bytes of data for %s%s (%d bytes expected)"
                             % (name, nbytes, dtype, list(shape), _product(shape) * size))
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.data = data

    @classmethod
    def from_nested(cls, name, values, dtype="f64"):
        """Builds a tensor from nested lists (rows of a matrix, ...); all rows equally long."""
        shape = []
        probe = values
        while isinstance(probe, (list, tuple)):
            shape.append(len(probe))
            if not probe:
                break
            probe = probe[0]
        flat = []

        def walk(v, depth):
            if depth == len(shape):
                if isinstance(v, (list, tuple)):
                    raise ValueError("tensor %r: ragged nested lists" % name)
                flat.append(v)
                return
            if not isinstance(v, (list, tuple)) or len(v) != shape[depth]:
                raise ValueError("tensor %r: ragged nested lists" % name)
            for item in v:
                walk(item, depth + 1)

        walk(values, 0)
        return cls(name, dtype, shape, values_array(dtype, flat))

    @property
    def count(self):
        """The number of elements."""
        return _product(self.shape)

    @property
    def nbytes(self):
        return self.count * DTYPES[self.dtype][0]

    def to_bytes(self):
        """The wire form: little-endian bytes (a memoryview when the tensor views a buffer)."""
        if isinstance(self.data, array.array):
            if _BIG_ENDIAN and self.data.itemsize > 1:                  # pragma: no cover
                a = array.array(self.data.typecode, self.data)
                a.byteswap()
                return a.tobytes()
            return self.data.tobytes()
        return self.data

    def to_array(self):
        """A native-order `array.array` copy of the values (flat, row-major); f16 and bf16
        widened to an array of f32 ("f")."""
        if isinstance(self.data, array.array):
            a = array.array(self.data.typecode, self.data)
        else:
            a = array.array(DTYPES[self.dtype][1])
            a.frombytes(self.data)
            if _BIG_ENDIAN and a.itemsize > 1:                          # pragma: no cover
                a.byteswap()
        if self.dtype == "f16":
            return array.array("f", struct.unpack("<%de" % len(a), struct.pack("<%dH" % len(a), *a)))
        if self.dtype == "bf16":
            return array.array("f", struct.unpack("<%df" % len(a),
                                                  struct.pack("<%dI" % len(a), *(b << 16 for b in a))))
        return a

    def tolist(self):
        """Nested lists following the shape (a scalar for shape ())."""
        return _nest(self.to_array().tolist(), self.shape)

    def descriptor(self):
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    def __eq__(self, other):
        if not isinstance(other, Tensor):
            return NotImplemented
        return (self.name, self.dtype, self.shape, self.to_bytes()) == \
               (other.name, other.dtype, other.shape, other.to_bytes())

    __hash__ = None

    def __repr__(self):
        return "Tensor(%r, %r, %r, <%d bytes>)" % (self.name, self.dtype, list(self.shape),
                                                    self.nbytes)


def _nest(flat, shape):
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return list(flat)
    inner = _product(shape[1:])
    return [_nest(flat[i * inner:(i + 1) * inner], shape[1:]) for i in range(shape[0])]


# =============================================================================================
# 4. Payloads (SPEC section 3)
# =============================================================================================

def encode_doc(doc):
    """Deterministic JSON: sorted keys, no spaces, ASCII escapes; NaN/Infinity are refused
    because RFC 8259 has no such numbers (the daemon would answer MALFORMED_PAYLOAD)."""
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, allow_nan=False).encode("ascii")


def encode_payload(doc=None, tensors=()):
    """u32 doc_length, doc, tensor data. With tensors, `doc["tensors"]` is (re)written from
    their descriptors so the two can never disagree; the caller's dict is not modified."""
    return b"".join(encode_payload_parts(doc, tensors))


def encode_payload_parts(doc=None, tensors=(), align=0):
    """encode_payload as a list of buffers (the tensors' own, not copied): for sending with
    one write per part. align > 0 pads the doc with spaces so the tensor data starts at a
    multiple of `align` bytes into the payload (SPEC section 3: the daemon then reads f32
    activations in place)."""
    doc = dict(doc or {})
    tensors = list(tensors)
    if tensors:
        doc["tensors"] = [t.descriptor() for t in tensors]
    elif doc.get("tensors"):
        raise ValueError("doc lists tensors but no tensor data was given")
    body = encode_doc(doc)
    if len(body) > MAX_DOC:
        raise _perror("MALFORMED_PAYLOAD", "doc is %d bytes, above the %d-byte limit"
                      % (len(body), MAX_DOC))
    if align and tensors and (4 + len(body)) % align:
        padded = len(body) + align - (4 + len(body)) % align
        if padded <= MAX_DOC:
            body += b" " * (padded - len(body))
    parts = [struct.pack("<I", len(body)) + body]
    parts.extend(t.to_bytes() for t in tensors)
    return parts


def _reject_constant(name):
    raise ValueError("%s is not a JSON number (RFC 8259)" % name)


def _no_duplicate_keys(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise ValueError("duplicate key %r" % k)
        obj[k] = v
    return obj


def decode_payload(payload):
    """Parses a payload into (doc, [Tensor, ...]). Any violation of SPEC section 3 raises
    ProtocolError MALFORMED_PAYLOAD (code 100); the returned doc still holds its "tensors"
    descriptors so that re-encoding reproduces the bytes."""
    payload = bytes(payload)
    if len(payload) < 4:
        raise _perror("MALFORMED_PAYLOAD", "payload is %d bytes, shorter than its u32 doc_length"
                      % len(payload))
    (doc_length,) = struct.unpack_from("<I", payload, 0)
    if doc_length > MAX_DOC:
        raise _perror("MALFORMED_PAYLOAD", "doc_length %d is above the %d-byte limit"
                      % (doc_length, MAX_DOC))
    if 4 + doc_length > len(payload):
        raise _perror("MALFORMED_PAYLOAD", "doc_length %d exceeds the %d payload bytes after it"
                      % (doc_length, len(payload) - 4))
    raw = payload[4:4 + doc_length]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _perror("MALFORMED_PAYLOAD", "doc is not valid UTF-8 (%s)" % e) from None
    try:
        doc = json.loads(text, parse_constant=_reject_constant,
                         object_pairs_hook=_no_duplicate_keys)
    except (ValueError, RecursionError) as e:
        raise _perror("MALFORMED_PAYLOAD", "doc is not valid JSON: %s" % e) from None
    if not isinstance(doc, dict):
        raise _perror("MALFORMED_PAYLOAD", "doc is a JSON %s, not an object"
                      % type(doc).__name__)
    descriptors = doc.get("tensors", [])
    if not isinstance(descriptors, list):
        raise _perror("MALFORMED_PAYLOAD", "doc.tensors is not an array")
    offset = 4 + doc_length
    tensors = []
    for i, d in enumerate(descriptors):
        where = "doc.tensors[%d]" % i
        if not isinstance(d, dict):
            raise _perror("MALFORMED_PAYLOAD", "%s is not an object" % where)
        name, dtype, shape = d.get("name"), d.get("dtype"), d.get("shape")
        if not isinstance(name, str):
            raise _perror("MALFORMED_PAYLOAD", "%s.name is missing or not a string" % where)
        if dtype not in DTYPES:
            raise _perror("MALFORMED_PAYLOAD", "%s.dtype %r is not one of %s"
                          % (where, dtype, ", ".join(DTYPES)))
        if not isinstance(shape, list) or not all(
                isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in shape):
            raise _perror("MALFORMED_PAYLOAD", "%s.shape %r is not an array of non-negative "
                          "integers" % (where, shape))
        size = _product(shape) * DTYPES[dtype][0]
        if size > len(payload) - offset:
            raise _perror("MALFORMED_PAYLOAD", "tensor %r (%s%s) needs %d bytes, %d remain"
                          % (name, dtype, shape, size, len(payload) - offset))
        tensors.append(Tensor(name, dtype, shape, payload[offset:offset + size]))
        offset += size
    if offset != len(payload):
        raise _perror("MALFORMED_PAYLOAD", "%d bytes after the doc and tensors"
                      % (len(payload) - offset))
    return doc, tensors


# =============================================================================================
# 5. Frames (SPEC section 2)
# =============================================================================================

class Frame:
    """One decoded frame. `doc`/`tensors` are None/[] when the decoder does not parse
    payloads; `payload` always holds the raw payload bytes."""

    __slots__ = ("type", "request_id", "flags", "version", "doc", "tensors", "payload")

    def __init__(self, type, request_id, doc=None, tensors=(), flags=0, version=PROTOCOL_VERSION,
                 payload=None):
        self.type = type
        self.request_id = request_id
        self.flags = flags
        self.version = version
        self.doc = doc
        self.tensors = list(tensors)
        self.payload = payload

    @property
    def type_name(self):
        return type_name(self.type)

    @property
    def quiet(self):
        return bool(self.flags & FLAG_QUIET)

    def tensor(self, name):
        """The first tensor of that name (KeyError if absent)."""
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    def encode(self):
        """The frame's bytes (from doc/tensors, or the raw payload if there is no doc)."""
        if self.doc is None and self.payload is not None:
            return _frame_bytes(self.type, self.request_id, self.payload, self.flags,
                                self.version)
        return encode_frame(self.type, self.request_id, self.doc, self.tensors, self.flags,
                            self.version, check_limit=False)

    def __repr__(self):
        return "Frame(%s, id=%d, flags=%d, version=%d, doc=%r, tensors=%r)" % (
            self.type_name, self.request_id, self.flags, self.version, self.doc, self.tensors)


def _frame_bytes(code, request_id, payload, flags, version):
    return _HEADER.pack(HEADER_SIZE + len(payload), MAGIC, version, flags, code, 0,
                        request_id) + payload


def encode_frame(type_, request_id, doc=None, tensors=(), flags=0, version=PROTOCOL_VERSION,
                 check_limit=True):
    """The bytes of one frame. With `check_limit`, a frame above limit(type) raises
    ProtocolError FRAME_TOO_LARGE here rather than being refused by the daemon."""
    return b"".join(encode_frame_parts(type_, request_id, doc, tensors, flags, version,
                                       check_limit))


def encode_frame_parts(type_, request_id, doc=None, tensors=(), flags=0,
                       version=PROTOCOL_VERSION, check_limit=True, align=0):
    """encode_frame as a list of buffers: header and doc, then each tensor's own buffer (a
    numpy array's memory is not copied). align: see encode_payload_parts."""
    code = type_code(type_)
    if not 0 <= request_id < 1 << 64:
        raise ValueError("request id %r is not a u64" % (request_id,))
    parts = encode_payload_parts(doc, tensors, align)
    length = HEADER_SIZE + sum(memoryview(p).nbytes for p in parts)
    if check_limit and length > frame_limit(code):
        raise _perror("FRAME_TOO_LARGE", "a %s frame of length %d is above its limit %d"
                      % (type_name(code), length, frame_limit(code)))
    parts[0] = _HEADER.pack(length, MAGIC, version, flags, code, 0, request_id) + parts[0]
    return parts


class FrameDecoder:
    """Incremental frame decoder: `feed(bytes)` what arrived, then call `next()` until None.

    Checks happen in the SPEC's order (section 2): the length alone as soon as its 4 bytes are
    in, then the header fields once all 16 header bytes are in, then the payload once complete.
    The buffer only ever holds bytes actually received; a claimed length is never allocated.

    A header-level error (codes < 100) leaves the stream unusable: `next()` raises it again on
    every call, as the connection is to be closed. A payload error (MALFORMED_PAYLOAD) consumes
    its frame, carries its `request_id` and `frame`, and decoding continues after it.

    role: "server" (receiving requests: response/event types are NOT_A_REQUEST; a peer's ERROR
    frame is accepted, SPEC section 4), "client" (responses, PROGRESS and ERROR; a request
    type is UNKNOWN_TYPE, as in Sources/Wire) or None (any known type, for tools and tests).
    version: the negotiated version once known (frames in another one: VERSION_MISMATCH).
    """

    def __init__(self, role=None, version=None, supported_versions=SUPPORTED_VERSIONS,
                 parse_payload=True):
        if role not in (None, "client", "server"):
            raise ValueError("role must be None, 'client' or 'server'")
        self.role = role
        self.version = version
        self.supported_versions = tuple(supported_versions)
        self.parse_payload = parse_payload
        self._buf = bytearray()
        self._header = None          # (length, version, flags, type, request_id) once checked
        self._error = None

    def feed(self, data):
        """Appends received bytes (ignored once the stream has failed)."""
        if self._error is None:
            self._buf += data

    @property
    def buffered(self):
        """Bytes received but not yet returned as frames: nonzero at end of input means the
        connection closed in the middle of a frame (which ends it, nothing is answered)."""
        return len(self._buf)

    @property
    def failed(self):
        return self._error

    def _fail(self, name, message):
        self._error = _perror(name, message)
        self._buf = bytearray()
        raise self._error

    def next(self):
        """The next complete frame, or None if more bytes are needed."""
        if self._error is not None:
            raise self._error
        buf = self._buf
        if self._header is None:
            if len(buf) < PREFIX_SIZE:
                return None
            (length,) = struct.unpack_from("<I", buf, 0)
            if length < HEADER_SIZE:
                self._fail("FRAME_TOO_SHORT", "frame length %d is below the 16 header bytes"
                           % length)
            if length > MAX_LENGTH:
                self._fail("FRAME_TOO_LARGE", "frame length %d is above 2^30" % length)
            if len(buf) < PREFIX_SIZE + HEADER_SIZE:
                return None
            self._header = self._check_header(length)
        length, version, flags, code, request_id = self._header
        end = PREFIX_SIZE + length
        if len(buf) < end:
            return None
        payload = bytes(buf[PREFIX_SIZE + HEADER_SIZE:end])
        del buf[:end]
        self._header = None
        frame = Frame(code, request_id, flags=flags, version=version, payload=payload)
        if self.parse_payload:
            try:
                frame.doc, frame.tensors = decode_payload(payload)
            except ProtocolError as e:
                e.request_id, e.frame = request_id, frame
                raise
        return frame

    def __iter__(self):
        """Iterates over the frames complete so far."""
        return iter(self.next, None)

    def _check_header(self, length):
        _, magic, version, flags, code, reserved, request_id = _HEADER.unpack_from(self._buf, 0)
        if magic != MAGIC:
            self._fail("BAD_MAGIC", "magic is %r, not b'BS'" % magic)
        if version not in self.supported_versions:
            self._fail("UNSUPPORTED_VERSION", "frame version %d is not spoken here (%s)"
                       % (version, ", ".join(map(str, self.supported_versions))))
        if self.version is not None and version != self.version:
            self._fail("VERSION_MISMATCH", "frame version %d differs from the negotiated %d"
                       % (version, self.version))
        if flags & ~FLAG_QUIET:
            self._fail("MALFORMED_HEADER", "flags 0x%02X has bits other than QUIET" % flags)
        if reserved:
            self._fail("MALFORMED_HEADER", "reserved field is 0x%04X, not 0" % reserved)
        if code not in TYPE_NAMES:
            self._fail("UNKNOWN_TYPE", "message type 0x%04X is unknown" % code)
        if self.role == "server" and not is_request_type(code) and code != ERROR:
            self._fail("NOT_A_REQUEST", "a client sent %s, which is not a request"
                       % type_name(code))
        if self.role == "client" and is_request_type(code):
            # The SPEC names no code for this; like Sources/Wire, a type a client cannot receive.
            self._fail("UNKNOWN_TYPE", "%s is a request; a client receives none" % type_name(code))
        limit = frame_limit(code)
        if length > limit:
            self._fail("FRAME_TOO_LARGE", "a %s frame of length %d is above its limit %d"
                       % (type_name(code), length, limit))
        return length, version, flags, code, request_id


# =============================================================================================
# 6. .npy files (NumPy format 1.0/2.0/3.0 read, 1.0 written), without numpy
# =============================================================================================

_NPY_MAGIC = b"\x93NUMPY"
_NPY_DESCRS = {"<f4": "f32", "<f8": "f64", "<i4": "i32", "|u1": "u8", "<u1": "u8", "u1": "u8"}
_NPY_WRITE_DESCR = {"f32": "<f4", "f64": "<f8", "i32": "<i4", "u8": "|u1"}
_NPY_MAX_HEADER = 10000         # numpy's own safety limit on header size


def _npy_dtype(descr):
    dtype = _NPY_DESCRS.get(descr) if isinstance(descr, str) else None
    if dtype is None:
        raise ValueError("unsupported .npy dtype %r: only little-endian float32 ('<f4'), "
                         "float64 ('<f8'), int32 ('<i4') and uint8 ('|u1') are read; convert "
                         "with arr.astype(...) before np.save" % (descr,))
    return dtype


def _npy_parse_header(f, name):
    magic = f.read(8)
    if len(magic) < 8 or magic[:6] != _NPY_MAGIC:
        raise ValueError("%s: not a .npy file (bad magic)" % name)
    major, minor = magic[6], magic[7]
    if (major, minor) == (1, 0):
        raw = f.read(2)
        size_fmt, encoding = "<H", "latin1"
    elif (major, minor) in ((2, 0), (3, 0)):
        raw = f.read(4)
        size_fmt, encoding = "<I", "latin1" if major == 2 else "utf8"
    else:
        raise ValueError("%s: .npy format version %d.%d is not supported (1.0, 2.0, 3.0)"
                         % (name, major, minor))
    if len(raw) != struct.calcsize(size_fmt):
        raise ValueError("%s: truncated .npy header" % name)
    (hlen,) = struct.unpack(size_fmt, raw)
    if hlen > _NPY_MAX_HEADER:
        raise ValueError("%s: .npy header of %d bytes is implausibly large" % (name, hlen))
    header = f.read(hlen)
    if len(header) != hlen:
        raise ValueError("%s: truncated .npy header" % name)
    try:
        d = ast.literal_eval(header.decode(encoding))
    except (ValueError, SyntaxError, UnicodeDecodeError) as e:
        raise ValueError("%s: unreadable .npy header (%s)" % (name, e)) from None
    if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
        raise ValueError("%s: .npy header %r lacks descr/fortran_order/shape" % (name, d))
    shape = d["shape"]
    if not isinstance(shape, tuple) or not all(
            isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in shape):
        raise ValueError("%s: invalid .npy shape %r" % (name, shape))
    if d["fortran_order"] is not False:
        raise ValueError("%s: the array is stored in Fortran (column-major) order; only C order "
                         "is read: save np.ascontiguousarray(arr) instead" % name)
    dtype = _npy_dtype(d["descr"])
    return dtype, shape


def load_npy(path):
    """Reads a .npy file (path or binary file object) -> (dtype, shape, array.array).

    dtype is the protocol's name ("f32", "f64", "i32", "u8"), shape a tuple, the array flat in
    C order and native byte order. Anything else (other dtypes, big-endian, Fortran order,
    object arrays, truncated or trailing data) raises ValueError with the reason."""
    if hasattr(path, "read"):
        return _load_npy_file(path, getattr(path, "name", "<file>"))
    with open(path, "rb") as f:
        return _load_npy_file(f, str(path))


def _load_npy_file(f, name):
    dtype, shape = _npy_parse_header(f, name)
    size, typecode = DTYPES[dtype]
    expected = _product(shape) * size
    data = f.read(expected)             # read() returns at most what the file holds
    if len(data) != expected:
        raise ValueError("%s: truncated .npy data: %d bytes for %s%s, %d expected"
                         % (name, len(data), dtype, list(shape), expected))
    if f.read(1):
        raise ValueError("%s: unexpected bytes after the .npy data" % name)
    a = array.array(typecode)
    a.frombytes(data)
    if _BIG_ENDIAN and size > 1:                                        # pragma: no cover
        a.byteswap()
    return dtype, tuple(shape), a


def _npy_header_bytes(descr, shape):
    """The 1.0 header exactly as numpy (>= 1.24) writes it, so files are byte-identical."""
    header = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (descr, tuple(shape))
    if shape:
        header += " " * (21 - len(repr(shape[0])))   # numpy's GROWTH_AXIS_MAX_DIGITS spare room
    raw = header.encode("latin1")
    hlen = len(raw) + 1
    pad = 64 - ((len(_NPY_MAGIC) + 2 + 2 + hlen) % 64)
    if hlen + pad > 0xFFFF:
        version, size_fmt = b"\x02\x00", "<I"
        pad = 64 - ((len(_NPY_MAGIC) + 2 + 4 + hlen) % 64)
    else:
        version, size_fmt = b"\x01\x00", "<H"
    return _NPY_MAGIC + version + struct.pack(size_fmt, hlen + pad) + raw + b" " * pad + b"\n"


def save_npy(path, data, dtype, shape):
    """Writes a C-order .npy file (format 1.0) that numpy.load reads.

    data: an array.array of the dtype's typecode, bytes (little-endian), a Tensor, or a flat
    list of numbers; dtype: "f32"/"f64"/"i32"/"u8" or the numpy descr ("<f4", ...)."""
    if dtype not in DTYPES:
        dtype = _npy_dtype(dtype)
    if dtype not in _NPY_WRITE_DESCR:
        raise ValueError("save_npy: %s is not written to .npy files (widen it: Tensor.to_array())"
                         % dtype)
    shape = tuple(shape)
    if isinstance(data, Tensor):
        data = data.data
    elif isinstance(data, (list, tuple)):
        data = array.array(DTYPES[dtype][1], data)
    tensor = Tensor("npy", dtype, shape, data)       # checks the size against the shape
    blob = _npy_header_bytes(_NPY_WRITE_DESCR[dtype], shape) + tensor.to_bytes()
    if hasattr(path, "write"):
        path.write(blob)
    else:
        with open(path, "wb") as f:
            f.write(blob)


# =============================================================================================
# 7. Client (SPEC sections 1, 4, 7)
# =============================================================================================

def default_socket_path():
    """SPEC section 1: $XDG_RUNTIME_DIR/blockscope/blockscoped.sock, else
    /tmp/blockscope-UID/blockscoped.sock."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "blockscope", "blockscoped.sock")
    return "/tmp/blockscope-%d/blockscoped.sock" % os.getuid()


def _matrix_tensor(name, x):
    """A 2-D float tensor [n, features] from: nested lists (-> f64), a Tensor, a (dtype,
    shape, array) tuple as load_npy returns, or anything numpy-like (dtype.str, shape,
    tobytes()). More axes are flattened per example in C order ([n, c, h, w] as EXPORT
    gives -> [n, c*h*w]); a 1-D array is one feature per example."""
    if isinstance(x, Tensor):
        t = Tensor(name, x.dtype, x.shape, x.data)
    elif isinstance(x, tuple) and len(x) == 3 and isinstance(x[0], str):
        dtype, shape, data = x
        t = Tensor(name, dtype, shape, data)
    elif hasattr(x, "dtype") and hasattr(x, "shape") and hasattr(x, "tobytes"):
        descr = getattr(x.dtype, "str", str(x.dtype))
        if descr in ("<f4", "<f8"):
            t = Tensor(name, _NPY_DESCRS[descr], tuple(int(d) for d in x.shape),
                       x.tobytes(order="C"))
        else:
            t = Tensor.from_nested(name, x.tolist(), "f64")
    else:
        t = Tensor.from_nested(name, x, "f64")
    if not t.shape:
        raise ValueError("%s must hold examples along its first axis, got a scalar" % name)
    if len(t.shape) != 2:
        t = Tensor(name, t.dtype, (t.shape[0], _product(t.shape[1:])), t.data)
    if t.dtype not in ("f32", "f64"):
        t = Tensor(name, "f64", t.shape, array.array("d", t.to_array()))
    return t


def _activation_tensor(name, x):
    """An activation tensor [n, ...] for SESSION_BATCH from: a Tensor (f32/f16/bf16), a
    (dtype, shape, data) tuple, anything numpy-like (float32 and float16 sent as they are,
    other dtypes converted to float32, on the CPU: call .detach().cpu().numpy() on a torch
    tensor), or nested lists (-> f32)."""
    if isinstance(x, Tensor):
        return Tensor(name, x.dtype, x.shape, x.data)
    if isinstance(x, tuple) and len(x) == 3 and isinstance(x[0], str):
        return Tensor(name, *x)
    if hasattr(x, "dtype") and hasattr(x, "shape") and hasattr(x, "tobytes"):
        descr = getattr(x.dtype, "str", str(x.dtype))
        shape = tuple(int(d) for d in x.shape)
        if descr == "<f2":
            return Tensor(name, "f16", shape, x.tobytes(order="C"))
        if descr != "<f4" and hasattr(x, "astype"):
            x = x.astype("<f4")
            descr = "<f4"
        if descr == "<f4":
            try:
                view = memoryview(x)
            except TypeError:
                view = None
            if view is not None and view.c_contiguous and not _BIG_ENDIAN:
                return Tensor(name, "f32", shape, view)      # the array's memory, not a copy
            return Tensor(name, "f32", shape, x.tobytes(order="C"))
        return Tensor.from_nested(name, x.tolist(), "f32")
    return Tensor.from_nested(name, x, "f32")


def _options(**kw):
    """The keyword arguments that were given (None means: leave it to the daemon's default)."""
    extra = kw.pop("extra", None) or {}
    doc = {k: v for k, v in kw.items() if v is not None}
    doc.update(extra)
    return doc


def _examples(examples, count, ids, split):
    if examples is not None:
        return examples
    if ids is not None:
        return {"split": split or "test", "ids": list(ids)}
    if count is not None:
        return {"split": split or "test", "count": count}
    if split is not None:
        return {"split": split}
    return None


class MemfdBuffer:
    """A memfd for shared-memory SESSION_BATCH frames (SPEC section 7, "Shared-memory
    batches"): the activations are written into it and only a small frame and the descriptor
    go through the socket. Created with MFD_ALLOW_SEALING and sealed against shrinking (the
    daemon refuses an unsealed one, since a file that shrinks under its mapping would crash
    it); grown as needed, and reused: write into it again only after the frame that used it
    has been answered. Linux only."""

    ALIGN = 64

    def __init__(self, capacity=64 * MiB, name="blockscope-batch"):
        import fcntl
        import mmap
        self._mmap = mmap
        self.fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        self.capacity = 0
        self._map = None
        self._grow(max(int(capacity), 4096))
        fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)

    def _grow(self, size):
        if self._map is not None:
            self._map.close()
        os.ftruncate(self.fd, size)
        self.capacity = size
        self._map = self._mmap.mmap(self.fd, size)

    def write(self, tensors):
        """Lays the tensors out at 64-byte aligned offsets (growing the file if needed) and
        returns their `memfd` entries for the SESSION_BATCH doc."""
        entries, offset = [], 0
        for t in tensors:
            entries.append({"name": t.name, "dtype": t.dtype, "shape": list(t.shape), "offset": offset})
            offset += -(-t.nbytes // self.ALIGN) * self.ALIGN
        if offset > self.capacity:
            self._grow(max(offset, 2 * self.capacity))
        for t, e in zip(tensors, entries):
            data = memoryview(t.to_bytes()).cast("B")
            self._map[e["offset"]:e["offset"] + data.nbytes] = data
        return entries

    def close(self):
        if self._map is not None:
            self._map.close()
            self._map = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class Client:
    """A connection to blockscoped. Synchronous: `request` sends one request and reads until
    its final frame; events or answers for other ids (when `submit` was used to pipeline) are
    kept for their own `wait`.

    Errors: BlockscopeError for ERROR frames, NoDaemonError when nothing listens at the path,
    ConnectionClosed when the daemon hangs up, ProtocolError when the daemon's bytes break
    the SPEC: a bad header closes the connection (after sending an ERROR frame, as a receiver
    must), a malformed payload fails only the request it answers."""

    def __init__(self, socket_path=None, timeout=None, client_name=None, connect=True):
        self.socket_path = socket_path or default_socket_path()
        self.timeout = timeout
        self.client_name = client_name or "blockscope_client.py (Python %d.%d)" % sys.version_info[:2]
        self.server = None        # the HELLO_OK doc
        self.version = None       # the negotiated version
        self._sock = None
        self._decoder = None
        self._ids = itertools.count(1)
        self._pending = {}        # unanswered request id -> (type, [frames not yet consumed])
        self._memfd = None        # session_batch(memfd=True)'s MemfdBuffer, made on first use
        if connect:
            self.connect()

    # --- connection ----------------------------------------------------------------------

    def connect(self):
        """Connects and negotiates the version with HELLO (SPEC section 7)."""
        if self._sock is not None:
            return self
        path = self.socket_path
        if not os.path.exists(path):
            raise NoDaemonError(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(path)
        except (ConnectionRefusedError, FileNotFoundError) as e:
            sock.close()
            raise NoDaemonError(path, e.strerror or str(e)) from None
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._decoder = FrameDecoder(role="client")
        try:
            doc, _ = self.request("HELLO", {"min_version": 1, "max_version": PROTOCOL_VERSION,
                                            "client": self.client_name}, quiet=True)
        except BaseException:
            self.close()
            raise
        version = doc.get("version")
        if version not in SUPPORTED_VERSIONS:
            self._abort(_perror("UNSUPPORTED_VERSION", "the daemon chose version %r" % version))
        self.version = version
        self._decoder.version = version
        self.server = doc
        return self

    def close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
                self._pending.clear()

    @property
    def connected(self):
        return self._sock is not None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _abort(self, error):
        """This side found the daemon's bytes invalid: say so with an ERROR frame, close, raise."""
        try:
            if self._sock is not None and error.code is not None:
                self._sock.sendall(encode_frame(ERROR, 0, {
                    "code": error.code, "name": error.name, "message": error.message,
                    "close": True}, version=self.version or PROTOCOL_VERSION))
        except OSError:
            pass
        self.close()
        raise error

    # --- requests ------------------------------------------------------------------------

    def submit(self, type_name_, doc=None, tensors=(), quiet=False, descriptor=None):
        """Sends a request without waiting; returns its id for `wait`. `descriptor`: a file
        descriptor sent with the frame (SCM_RIGHTS, in the sendmsg of its first bytes)."""
        if self._sock is None:
            raise ConnectionClosed("not connected to %s" % self.socket_path)
        code = type_code(type_name_)
        if not is_request_type(code):
            raise ValueError("%s is not a request type" % type_name(code))
        request_id = next(self._ids)
        version = PROTOCOL_VERSION if code == REQUEST_TYPES["HELLO"] else (
            self.version or PROTOCOL_VERSION)
        # Large tensors go out from their own buffers, 64-byte aligned after the doc.
        parts = encode_frame_parts(code, request_id, doc or {}, tensors,
                                   FLAG_QUIET if quiet else 0, version,
                                   align=64 if code == REQUEST_TYPES["SESSION_BATCH"] else 0)
        try:
            if descriptor is not None:
                first = memoryview(parts.pop(0))
                sent = self._sock.sendmsg([first], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                     array.array("i", [descriptor]))])
                if sent < first.nbytes:
                    self._sock.sendall(first[sent:])
            for part in parts:
                self._sock.sendall(part)
        except OSError as e:
            # SPEC section 1: a write after the daemon closed fails (EPIPE, ECONNRESET), but
            # what it sent before closing, usually an ERROR saying why, is still readable.
            closed = isinstance(e, (BrokenPipeError, ConnectionResetError))
            reason = self._closing_error() if closed else None
            self.close()
            if reason is not None:
                raise reason from None
            raise ConnectionClosed("sending %s to %s failed: %s"
                                   % (type_name(code), self.socket_path, e)) from None
        self._pending[request_id] = (code, [])
        return request_id

    def _closing_error(self):
        """After a failed send: the connection ERROR the daemon sent before it closed, read
        from what is left on the socket, or None."""
        try:
            # The daemon has closed, so reads do not block; the timeout is a safeguard.
            self._sock.settimeout(5)
            while self._sock is not None:
                self._receive()
        except BlockscopeError as e:
            return e if e.closes_connection else None
        except (OSError, ProtocolError):
            pass
        return None

    def wait(self, request_id, on_progress=None):
        """Reads until the final frame of `request_id`; returns (doc, {name: Tensor}).
        The doc is returned without its "tensors" descriptors."""
        if request_id not in self._pending:
            raise ValueError("request %r was not submitted or was already answered" % request_id)
        code, queue = self._pending[request_id]
        while True:
            while queue:
                frame = queue.pop(0)
                if isinstance(frame, ProtocolError):
                    self._pending.pop(request_id, None)
                    raise frame
                if frame.type == PROGRESS:
                    if on_progress is not None:
                        on_progress(frame.doc)
                    continue
                self._pending.pop(request_id, None)
                if frame.type == ERROR:
                    raise BlockscopeError.from_doc(frame.doc, request_id)
                if frame.type != code | RESPONSE_BIT:
                    self._abort(ProtocolError(None, "UNEXPECTED_FRAME", "%s answered %s"
                                              % (type_name(code), frame.type_name)))
                doc = dict(frame.doc)
                doc.pop("tensors", None)
                return doc, {t.name: t for t in frame.tensors}
            try:
                self._receive()
            except (BlockscopeError, ConnectionError):
                # The daemon may answer and then close in one read (SHUTDOWN_OK, then
                # SHUTTING_DOWN_CLOSE): an answer that arrived first is still returned.
                if not any(isinstance(f, Frame) and f.type != PROGRESS for f in queue):
                    raise

    def request(self, type_name_, doc=None, tensors=(), on_progress=None, quiet=False):
        """Sends one request and returns (doc, {name: Tensor}) of its response, calling
        on_progress(doc) for each PROGRESS event; an ERROR frame raises BlockscopeError."""
        return self.wait(self.submit(type_name_, doc, tensors, quiet), on_progress)

    def _receive(self):
        """Reads once from the socket and files the frames under their request ids."""
        if self._sock is None:
            raise ConnectionClosed("the connection to %s is closed" % self.socket_path)
        try:
            data = self._sock.recv(1 << 20)
        except socket.timeout:
            raise                       # the connection is still consistent: retry or close
        except OSError as e:
            self.close()
            raise ConnectionClosed("reading from %s failed: %s" % (self.socket_path, e)) from None
        if not data:
            partial = self._decoder.buffered
            self.close()
            raise ConnectionClosed("the daemon closed the connection%s"
                                   % (" in the middle of a frame" if partial else ""))
        self._decoder.feed(data)
        while True:
            try:
                frame = self._decoder.next()
            except ProtocolError as e:
                if e.closes_connection or e.request_id not in self._pending:
                    self._abort(e)
                # A malformed payload spoils one answer; the stream itself is intact.
                self._pending[e.request_id][1].append(e)
                continue
            if frame is None:
                return
            if frame.type == ERROR and (frame.request_id == 0 or frame.request_id not in
                                        self._pending):
                err = BlockscopeError.from_doc(frame.doc, frame.request_id)
                self.close()
                raise err
            if frame.request_id not in self._pending:
                self._abort(ProtocolError(None, "UNEXPECTED_FRAME", "%s for unknown request "
                                          "id %d" % (frame.type_name, frame.request_id)))
            self._pending[frame.request_id][1].append(frame)
            if frame.type == ERROR:
                err = BlockscopeError.from_doc(frame.doc, frame.request_id)
                if err.closes_connection:
                    self.close()
                    raise err

    # --- one method per request (SPEC section 7) -----------------------------------------
    # Events are asked for (QUIET clear) only when an on_progress callback is given.

    def _call(self, name, doc=None, tensors=(), on_progress=None):
        return self.request(name, doc, tensors, on_progress, quiet=on_progress is None)

    def status(self):
        """Uptime, memory, cache and job counts (the STATUS response doc)."""
        return self._call("STATUS")[0]

    def datasets(self):
        """The list of dataset entries."""
        return self._call("DATASETS")[0]["datasets"]

    def train(self, model=None, depth=None, width=None, plain=None, dataset=None, fraction=None,
              stratified=None, epochs=None, batch_size=None, lr=None, weight_decay=None,
              warmup_epochs=None, augment=None, seed=None, test_examples=None, threads=None,
              extra=None):
        """Starts a training job; returns at once with {"job", "model", "state"}.
        None leaves an option at the daemon's default; `extra` adds keys verbatim."""
        doc = _options(model=model, depth=depth, width=width, plain=plain, dataset=dataset,
                       fraction=fraction, stratified=stratified, epochs=epochs,
                       batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                       warmup_epochs=warmup_epochs, augment=augment, seed=seed,
                       test_examples=test_examples, threads=threads, extra=extra)
        return self._call("TRAIN", doc)[0]

    def jobs(self):
        """The list of job entries (also unfinished ones from before a restart)."""
        return self._call("JOBS")[0]["jobs"]

    def watch(self, job, on_progress=None):
        """Waits for a job to end (on_progress gets its events); returns its final entry."""
        return self._call("WATCH", {"job": job}, on_progress=on_progress)[0]

    def cancel(self, job):
        return self._call("CANCEL", {"job": job})[0]

    def resume(self, job, epochs=None):
        return self._call("RESUME", _options(job=job, epochs=epochs))[0]

    def models(self):
        """The list of stored-model entries (corrupt ones included, with their error)."""
        return self._call("MODELS")[0]["models"]

    def describe(self, model):
        return self._call("DESCRIBE", {"model": model})[0]

    def delete_model(self, model):
        return self._call("DELETE_MODEL", {"model": model})[0]

    def heatmap(self, model, other=None, layers=None, other_layers=None, estimator=None,
                remove_pc1=None, examples=None, batch_size=None, passes=None, seed=None,
                bootstrap=None, bootstrap_seed=None, keep_incomplete=None,
                block_threshold=None, block_min_blocks=None, block_min_contrast=None,
                batches=None, foreign=None, other_foreign=None, on_progress=None, extra=None):
        """Minibatch-CKA heatmap. Returns the response doc plus, as nested lists:
        "cka" (R x C floats, None where the cell is undefined: see "diagnostics"),
        "defined" (R x C bools), "standard_errors" (only with bootstrap > 0) and
        "batch_example_ids" (B x batch_size ints). `model`/`other` may name foreign models
        (session_open); `batches` (client keys or "DATASET:SPLIT[a:b]" references) computes it
        from cached batches instead of a plan over `examples`; `foreign`/`other_foreign` say
        which namespace a name is in when a stored and a foreign model share it."""
        doc = _options(model=model, other=other, layers=layers, other_layers=other_layers,
                       estimator=estimator, remove_pc1=remove_pc1, examples=examples,
                       batch_size=batch_size, passes=passes, seed=seed, bootstrap=bootstrap,
                       bootstrap_seed=bootstrap_seed, keep_incomplete=keep_incomplete,
                       block_threshold=block_threshold, block_min_blocks=block_min_blocks,
                       block_min_contrast=block_min_contrast, extra=extra,
                       batches=list(batches) if batches is not None else None, foreign=foreign,
                       other_foreign=other_foreign)
        result, tensors = self._call("HEATMAP", doc, on_progress=on_progress)
        cka = tensors["cka"].tolist()
        defined = [[bool(v) for v in row] for row in tensors["defined"].tolist()]
        result["cka"] = [[v if ok else None for v, ok in zip(r, d)] for r, d in zip(cka, defined)]
        result["defined"] = defined
        for name in ("standard_errors", "batch_example_ids"):
            if name in tensors:
                result[name] = tensors[name].tolist()
        return result

    def pc(self, model, layers=None, examples=None, method=None, directions=None,
           on_progress=None, extra=None):
        """First principal components. Returns the doc plus "cosine" (L x L), "example_ids"
        and, with directions=True, "directions" (L x n), as nested lists."""
        doc = _options(model=model, layers=layers, examples=examples, method=method,
                       directions=directions, extra=extra)
        result, tensors = self._call("PC", doc, on_progress=on_progress)
        for name, t in tensors.items():
            result[name] = t.tolist()
        return result

    def probe(self, model, layers=None, epochs=None, batch_size=None, lr=None, pool2x2=None,
              seed=None, train_examples=None, test_examples=None, on_progress=None, extra=None):
        doc = _options(model=model, layers=layers, epochs=epochs, batch_size=batch_size, lr=lr,
                       pool2x2=pool2x2, seed=seed, train_examples=train_examples,
                       test_examples=test_examples, extra=extra)
        return self._call("PROBE", doc, on_progress=on_progress)[0]

    def delete_blocks(self, model, blocks=None, test_examples=None, on_progress=None,
                      extra=None):
        doc = _options(model=model, blocks=blocks, test_examples=test_examples, extra=extra)
        return self._call("DELETE_BLOCKS", doc, on_progress=on_progress)[0]

    def compare_outputs(self, groups, pairs=None, examples=None, test=None, alpha=None,
                        per_example=None, null_seed=None, on_progress=None, extra=None):
        """groups: [{"name", "models"}, ...] or a dict {name: [model, ...]}."""
        if isinstance(groups, dict):
            groups = [{"name": k, "models": list(v)} for k, v in groups.items()]
        doc = _options(groups=groups, pairs=pairs, examples=examples, test=test, alpha=alpha,
                       per_example=per_example, null_seed=null_seed, extra=extra)
        return self._call("COMPARE_OUTPUTS", doc, on_progress=on_progress)[0]

    def cka(self, x, y, estimators=None, rbf_threshold=None):
        """CKA of two matrices with examples in rows (the same n >= 4 rows).
        x, y: nested lists, Tensors, load_npy results or numpy arrays (f32/f64 sent as they
        are; anything else as f64). Returns {"n", "linear", "debiased", "rbf", "reasons"?}."""
        tensors = [_matrix_tensor("x", x), _matrix_tensor("y", y)]
        doc = _options(estimators=estimators, rbf_threshold=rbf_threshold)
        return self._call("CKA", doc, tensors)[0]

    def export(self, model, representation, examples=None, count=None, ids=None, split=None):
        """Activations of some examples at one representation. Give `examples` as in the SPEC
        or count= / ids= (split "test" unless given). Returns the doc plus "activations"
        (a Tensor f32[n, c, h, w]; .tolist() or save_npy it), "example_ids" and "labels"."""
        ex = _examples(examples, count, ids, split)
        if ex is None:
            raise ValueError("export needs examples: count=N, ids=[...] or examples={...}")
        result, tensors = self._call("EXPORT", {"model": model, "representation": representation,
                                                "examples": ex})
        result["activations"] = tensors["activations"]
        for name in ("example_ids", "labels"):
            if name in tensors:
                result[name] = tensors[name].tolist()
        return result

    # Foreign models (SPEC section 7, "Foreign models").

    def session_open(self, model, fingerprint, representations):
        """Declares a foreign model and opens a session on it. representations: a list of
        {"name", "shape" (per-example dimensions), "block"?, "channel_affine"? ({"of", "scale",
        "shift"}: SPEC.md, "Derived representations": never sent)} or of (name, shape) pairs.
        Returns {"session", "model", "fingerprint", "key", "reopened", "replaced"?}."""
        reps = []
        for r in representations:
            if isinstance(r, dict):
                reps.append(dict(r, shape=[int(d) for d in r["shape"]]))
            else:
                name, shape = r
                reps.append({"name": name, "shape": [int(d) for d in shape]})
        return self._call("SESSION_OPEN", {"model": model, "fingerprint": fingerprint,
                                           "representations": reps})[0]

    def session_batch(self, session, batch, activations, memfd=None):
        """Sends representations of one batch: activations maps representation names to
        arrays [n, ...declared shape] (numpy float32/float16, Tensors, nested lists; see
        _activation_tensor). batch: a client key or "DATASET:SPLIT[a:b]". Several calls may
        carry different representations of one batch. Returns {"batch", "representations",
        "examples", "pending"}."""
        return self.wait(self.submit_session_batch(session, batch, activations, memfd))[0]

    def submit_session_batch(self, session, batch, activations, memfd=None):
        """session_batch without waiting; returns the request id for `wait`. With `memfd` (a
        MemfdBuffer, or True for the client's own), the tensors go through shared memory; a
        buffer must not be written again before its frame is answered."""
        items = activations.items() if hasattr(activations, "items") else activations
        tensors = [_activation_tensor(name, x) for name, x in items]
        doc = {"session": session, "batch": batch}
        if not memfd:
            return self.submit("SESSION_BATCH", doc, tensors, quiet=True)
        if memfd is True:
            if self._memfd is None:
                self._memfd = MemfdBuffer()
            memfd = self._memfd
        doc["memfd"] = memfd.write(tensors)
        return self.submit("SESSION_BATCH", doc, quiet=True, descriptor=memfd.fd)

    def session_close(self, session):
        """Ends a session (the foreign model and its Grams stay). Returns {"session",
        "model", "batches", "incomplete"}."""
        return self._call("SESSION_CLOSE", {"session": session})[0]

    def foreign_models(self):
        return self._call("FOREIGN_MODELS", {})[0]["models"]

    def study_create(self, study, declaration, executor=None):
        """Declares a study (SPEC 'Study declaration') and starts it; returns its status.
        `executor`: as study_run's (default: the daemon's own queue)."""
        return self._call("STUDY_CREATE", _options(study=study, declaration=declaration, executor=executor))[0]

    def study_run(self, study, executor):
        """Moves a study's training to another executor: {"kind": "local"} or {"kind": "slurm",
        "partition"?, "time"?, "account"?, "mem"?, "cpus_per_task"?, "max_parallel"?}
        (SPEC STUDY_RUN); returns its status."""
        return self._call("STUDY_RUN", {"study": study, "executor": executor})[0]

    def study_status(self, study):
        return self._call("STUDY_STATUS", {"study": study})[0]

    def study_list(self):
        return self._call("STUDY_LIST")[0]["studies"]

    def study_cancel(self, study):
        return self._call("STUDY_CANCEL", {"study": study})[0]

    def study_resume(self, study):
        return self._call("STUDY_RESUME", {"study": study})[0]

    def study_delete(self, study, keep_models=None):
        return self._call("STUDY_DELETE", _options(study=study, keep_models=keep_models))[0]

    def study_results(self, study, offset=None, limit=None):
        """The study's status, declaration and the index of its stored results. Without
        offset/limit, every page is fetched and the results joined; with them, one page
        (its "next_offset" says where the next starts; absent on the last)."""
        if offset is not None or limit is not None:
            return self._call("STUDY_RESULTS", _options(study=study, offset=offset, limit=limit))[0]
        index = self._call("STUDY_RESULTS", {"study": study})[0]
        while index.get("next_offset") is not None:
            page = self._call("STUDY_RESULTS", {"study": study, "offset": index["next_offset"]})[0]
            index["results"] += page["results"]
            index["next_offset"] = page.get("next_offset")
        index.pop("next_offset", None)
        return index

    def study_result(self, study, key):
        """One stored result: (doc, tensors) of the analysis response as it was answered."""
        return self._call("STUDY_RESULT", {"study": study, "key": key})

    def shutdown(self):
        """Asks the daemon to stop; returns {"jobs_checkpointed": n}."""
        return self._call("SHUTDOWN")[0]


# =============================================================================================
# 8. Command line
# =============================================================================================

def torch_heatmap(model, loader, layers="all", **options):
    """A PyTorch model's minibatch-CKA heatmap through the daemon: forward hooks stream its
    activations as a foreign model (tools/blockscope_torch.py, which needs torch; its
    torch_heatmap documents the options: client, dataset, other, estimator, ...)."""
    import blockscope_torch
    return blockscope_torch.torch_heatmap(model, loader, layers=layers, **options)


class UsageError(Exception):
    """Bad command-line input (including unreadable input files): exit code 2."""


def _print_json(obj):
    print(json.dumps(obj, indent=2, sort_keys=True))


def _progress_printer():
    if not sys.stderr.isatty():
        return None

    def show(doc):
        sys.stderr.write("\r%s %s/%s   " % (doc.get("phase", "?"), doc.get("done", "?"),
                                            doc.get("total", "?")))
        sys.stderr.flush()
    return show


def _read_matrix(path):
    try:
        dtype, shape, data = load_npy(path)
    except (OSError, ValueError) as e:
        raise UsageError(str(e)) from None
    if len(shape) != 2:
        raise UsageError("%s: a %d-D array; cka needs 2-D matrices with examples in rows"
                         % (path, len(shape)))
    return dtype, shape, data


def _cmd_status(client, args):
    _print_json(client.status())


def _cmd_models(client, args):
    _print_json(client.models())


def _cmd_jobs(client, args):
    _print_json(client.jobs())


def _prepare_cka(args):
    args.matrices = _read_matrix(args.x), _read_matrix(args.y)


def _cmd_cka(client, args):
    _print_json(client.cka(*args.matrices))


def _cmd_heatmap(client, args):
    result = client.heatmap(args.model, other=args.other, layers=args.layers,
                            estimator=args.estimator, on_progress=_progress_printer())
    if args.out:
        rows = result["cka"]
        flat = [math.nan if v is None else v for row in rows for v in row]
        shape = (len(result["row_names"]), len(result["column_names"]))
        save_npy(args.out, flat, "f64", shape)
    result.pop("batch_example_ids", None)
    _print_json(result)


def _cmd_export(client, args):
    result = client.export(args.model, args.representation, count=args.count, split=args.split)
    t = result.pop("activations")
    save_npy(args.out, t.data, t.dtype, t.shape)
    result["activations"] = {"dtype": t.dtype, "shape": list(t.shape), "file": args.out}
    _print_json(result)


def _positive_int(text):
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not an integer" % text) from None
    if n <= 0:
        raise argparse.ArgumentTypeError("%d is not positive" % n)
    return n


def build_parser():
    p = argparse.ArgumentParser(
        prog="blockscope_client.py",
        description="Talk to a running blockscoped (Protocol/SPEC.md).",
        epilog="Exit status: 0 success, 1 the daemon answered an error or could not be reached "
               "(message on stderr), 2 usage errors (including unreadable .npy input).")
    p.add_argument("--socket", metavar="PATH",
                   help="the daemon's socket (default: %s)" % default_socket_path())
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    sub.add_parser("status", help="daemon status as JSON").set_defaults(run=_cmd_status)
    sub.add_parser("models", help="stored models as JSON").set_defaults(run=_cmd_models)
    sub.add_parser("jobs", help="training jobs as JSON").set_defaults(run=_cmd_jobs)
    c = sub.add_parser("cka", help="CKA of two .npy matrices (examples in rows)")
    c.add_argument("x", metavar="X.npy")
    c.add_argument("y", metavar="Y.npy")
    c.set_defaults(run=_cmd_cka, prepare=_prepare_cka)
    h = sub.add_parser("heatmap", help="minibatch-CKA heatmap of a model (or two)")
    h.add_argument("model")
    h.add_argument("--other", metavar="M", help="second model: cross-model heatmap")
    h.add_argument("--layers", metavar="SEL", help='representation selector (default "all")')
    h.add_argument("--estimator", choices=("unbiased", "biased", "rbf"))
    h.add_argument("--out", metavar="FILE.npy",
                   help="also write the matrix as float64 .npy (undefined cells are NaN)")
    h.set_defaults(run=_cmd_heatmap)
    e = sub.add_parser("export", help="activations of the first N examples at one representation")
    e.add_argument("model")
    e.add_argument("representation", metavar="REP")
    e.add_argument("--count", metavar="N", type=_positive_int, required=True)
    e.add_argument("--split", choices=("test", "train"), default="test")
    e.add_argument("--out", metavar="FILE.npy", required=True,
                   help="where to write activations f32[n, c, h, w]")
    e.set_defaults(run=_cmd_export)
    return p


def main(argv=None):
    """Runs the command line; returns the exit code (argparse exits 2 itself on bad usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "prepare", None):      # local input first: usage errors need no daemon
            args.prepare(args)
        with Client(args.socket) as client:
            args.run(client, args)
    except UsageError as e:
        parser.print_usage(sys.stderr)
        print("%s: error: %s" % (parser.prog, e), file=sys.stderr)
        return 2
    except (BlockscopeError, ProtocolError, OSError) as e:
        print("%s: %s" % (parser.prog, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
