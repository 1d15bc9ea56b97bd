"""Tests of tools/blockscope_client.py: the Python reference client of Protocol/SPEC.md.

Run from the repository root (no daemon needed; standard library only):

    python3 -m unittest discover -s tools -p 'test_*.py'

What is covered, and why:
  * GoldenVectorTests: every frame of Protocol/vectors/manifest.json decoded whole, byte by
    byte and in seeded random chunks, every field checked; malformed vectors fail with the
    right code after the right number of frames; valid frames re-encode to the golden bytes.
    This is what keeps the Python and Swift codecs byte-compatible.
  * Framing/Payload/Tensor tests: each check of SPEC sections 2-3 in isolation and in the
    SPEC's order, and that a claimed length is never allocated.
  * Npy tests: round trips for every dtype and shape, and files written by real numpy
    (embedded as hex, generated once with numpy 2.4.6), including byte-identical output.
  * Client/CLI tests against an in-process fake daemon (a thread on a Unix socket): the
    conversation logic, error mapping, result conversion, exit codes and usage errors.
  * LiveDaemonTests: a real blockscoped when BLOCKSCOPED names the binary (skipped otherwise),
    including every golden vector with a `daemon` expectation sent to it byte for byte.
"""

import array
import contextlib
import io
import json
import math
import os
import random
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import blockscope_client as bc  # noqa: E402

REPO = os.path.dirname(HERE)
VECTORS = os.path.join(REPO, "Protocol", "vectors")
MANIFEST = os.path.join(VECTORS, "manifest.json")
CLIENT_SCRIPT = os.path.join(HERE, "blockscope_client.py")


def frame_bytes(length, magic=b"BS", version=1, flags=0, type_=0x0002, reserved=0, request_id=1,
                payload=b""):
    """A frame with every header field under the test's control."""
    return struct.pack("<I2sBBHHQ", length, magic, version, flags, type_, reserved,
                       request_id) + payload


def empty_payload():
    return bc.encode_payload({})


def decode_all(data, chunks=None, **kw):
    """Feeds `data` (in the given chunk sizes, or whole) and collects frames until an error.
    Returns (frames, error or None, decoder)."""
    dec = bc.FrameDecoder(**kw)
    frames = []
    pieces = [data] if chunks is None else chunks
    for piece in pieces:
        dec.feed(piece)
        while True:
            try:
                f = dec.next()
            except bc.ProtocolError as e:
                if e.closes_connection:
                    return frames, e, dec
                frames.append(e)
                continue
            if f is None:
                break
            frames.append(f)
    return frames, None, dec


def split_bytes(data, sizes):
    out, i = [], 0
    for n in sizes:
        out.append(data[i:i + n])
        i += n
    if i < len(data):
        out.append(data[i:])
    return out


def random_chunks(data, rng):
    sizes, total = [], 0
    while total < len(data):
        n = rng.choice((1, 2, 3, 5, 7, 16, 19, 20, 21, 64, 1000, 65536))
        sizes.append(n)
        total += n
    return split_bytes(data, sizes)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def byte_chunks(data):
    return [data[i:i + 1] for i in range(len(data))]


# =============================================================================================
# Golden vectors (Protocol/vectors/manifest.json)
# =============================================================================================

def load_vectors():
    """[(entry, file bytes)] of the manifest, or None when the vectors are not there."""
    if not os.path.exists(MANIFEST):
        return None
    with open(MANIFEST, encoding="utf-8") as f:
        manifest = json.load(f)
    return [(entry, read_bytes(os.path.join(VECTORS, entry["file"])))
            for entry in manifest["vectors"]]


def manifest_tensor(t):
    """A Tensor from a manifest tensor entry (descriptor plus decoded values in 'data')."""
    return bc.Tensor(t["name"], t["dtype"], t["shape"], bc.values_array(t["dtype"], t["data"]))


ROLES = {"request": ["server"], "response": ["client"], "any": ["server", "client", None]}


@unittest.skipUnless(os.path.exists(MANIFEST), "Protocol/vectors/manifest.json is missing")
class GoldenVectorTests(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.vectors = load_vectors()

    def chunkings(self, data, file):
        """Whole, byte by byte, and five seeded random splits."""
        yield "whole", None
        yield "bytes", byte_chunks(data)
        for seed in range(5):
            rng = random.Random("%s/%d" % (file, seed))
            yield "random%d" % seed, random_chunks(data, rng)

    def check_header(self, frame, entry):
        self.assertEqual(frame.type, entry["type"])
        self.assertEqual(frame.type_name, entry["type_name"])
        self.assertEqual(frame.request_id, entry["request_id"])
        self.assertEqual(frame.flags, entry["flags"])
        self.assertEqual(frame.version, entry["version"])
        self.assertEqual(16 + len(frame.payload), entry["length"])

    def check_frame(self, frame, entry):
        self.assertIsInstance(frame, bc.Frame)
        self.check_header(frame, entry)
        self.assertEqual(frame.doc, entry["doc"])
        # Integer vs float kind and key order matter for re-encoding: compare the bytes too.
        self.assertEqual(bc.encode_doc(frame.doc), bc.encode_doc(entry["doc"]))
        self.assertEqual(len(frame.tensors), len(entry["tensors"]))
        for got, want in zip(frame.tensors, entry["tensors"]):
            self.assertEqual((got.name, got.dtype, list(got.shape)),
                             (want["name"], want["dtype"], want["shape"]))
            self.assertEqual(got.to_array().tolist(), want["data"], got.name)
            self.assertEqual(got, manifest_tensor(want))

    def test_manifest_is_complete(self):
        expects = {e["expect"] + "/" + e.get("level", "") for e, _ in self.vectors}
        self.assertEqual(expects, {"frames/", "error/frame", "error/payload",
                                   "incomplete/frame"})
        for entry, _ in self.vectors:
            self.assertIn(entry["direction"], ROLES, entry["file"])

    def test_decode(self):
        for entry, data in self.vectors:
            for role in ROLES[entry["direction"]]:
                for how, chunks in self.chunkings(data, entry["file"]):
                    with self.subTest(file=entry["file"], role=role, chunks=how):
                        self.decode_one(entry, data, chunks, role)

    def decode_one(self, entry, data, chunks, role):
        frames, err, dec = decode_all(data, chunks, role=role)
        expect, level = entry["expect"], entry.get("level")
        n = entry.get("after_frames", len(entry["frames"]))
        if expect == "frames":
            self.assertIsNone(err)
            self.assertEqual(len(frames), len(entry["frames"]))
            self.assertEqual(dec.buffered, 0)
        elif expect == "incomplete":
            self.assertIsNone(err)
            self.assertEqual(len(frames), n)
            self.assertEqual(dec.buffered, entry["trailing_bytes"])
        elif level == "frame":
            self.assertEqual(len(frames), n)
            self.assertIsNotNone(err, "no error after %d frames" % len(frames))
            self.assertEqual((err.code, err.name), (entry["error"]["code"],
                                                    entry["error"]["name"]))
            self.assertTrue(err.closes_connection)
            for _ in range(2):                       # and keeps failing
                with self.assertRaises(bc.ProtocolError) as cm:
                    dec.next()
                self.assertEqual(cm.exception.code, entry["error"]["code"])
        elif level == "payload":
            self.assertIsNone(err)
            self.assertEqual(len(frames), n + 1)
            bad = frames[-1]
            self.assertIsInstance(bad, bc.ProtocolError)
            self.assertEqual((bad.code, bad.name), (entry["error"]["code"],
                                                    entry["error"]["name"]))
            self.assertFalse(bad.closes_connection)
            self.assertEqual(bad.request_id, entry["bad_frame"]["request_id"])
            self.check_header(bad.frame, entry["bad_frame"])
            self.assertEqual(dec.buffered, 0)
            frames = frames[:-1]
        else:
            self.fail("unknown expectation %r/%r" % (expect, level))
        for frame, want in zip(frames, entry["frames"]):
            self.check_frame(frame, want)

    def test_payload_errors_surface_in_payload_parsing(self):
        """With payload parsing left to the caller, every frame of a payload-level vector
        decodes; decode_payload of the last one fails."""
        for entry, data in self.vectors:
            if entry.get("level") != "payload":
                continue
            with self.subTest(entry["file"]):
                frames, err, _ = decode_all(data, role="server", parse_payload=False)
                self.assertIsNone(err)
                self.assertEqual(len(frames), entry["after_frames"] + 1)
                self.check_header(frames[-1], entry["bad_frame"])
                with self.assertRaises(bc.ProtocolError) as cm:
                    bc.decode_payload(frames[-1].payload)
                self.assertEqual(cm.exception.code, entry["error"]["code"])
                for frame in frames[:-1]:
                    bc.decode_payload(frame.payload)

    def test_reencode(self):
        """Every valid frame, decoded or built from the manifest, encodes to the golden bytes."""
        for entry, data in self.vectors:
            with self.subTest(entry["file"]):
                frames, _, _ = decode_all(data, role=ROLES[entry["direction"]][0])
                offset = 0
                for got, want in zip(frames, entry["frames"]):
                    golden = data[offset:offset + 4 + want["length"]]
                    offset += len(golden)
                    self.assertEqual(got.encode(), golden)
                    doc = {k: v for k, v in want["doc"].items() if k != "tensors"}
                    built = bc.encode_frame(want["type_name"], want["request_id"], doc,
                                            [manifest_tensor(t) for t in want["tensors"]],
                                            flags=want["flags"], version=want["version"])
                    self.assertEqual(built, golden)
                if entry["expect"] == "frames":
                    self.assertEqual(offset, len(data))


# =============================================================================================
# Framing (SPEC section 2)
# =============================================================================================

class FramingTests(unittest.TestCase):

    def assertFails(self, data, name, **kw):
        frames, err, _ = decode_all(data, **kw)
        self.assertIsNotNone(err, "expected %s, decoded %r" % (name, frames))
        self.assertEqual((err.name, err.code), (name, bc.ERROR_CODES[name]), str(err))
        return frames, err

    def test_round_trip_of_every_type(self):
        for code, name in sorted(bc.TYPE_NAMES.items()):
            data = bc.encode_frame(code, 2 ** 53 + code, {"k": name}, flags=bc.FLAG_QUIET)
            frames, err, dec = decode_all(data)
            self.assertIsNone(err)
            (f,) = frames
            self.assertEqual((f.type, f.type_name, f.request_id, f.flags, f.version, f.doc),
                             (code, name, 2 ** 53 + code, 1, 1, {"k": name}))
            self.assertTrue(f.quiet)
            self.assertEqual(f.encode(), data)
            self.assertEqual(dec.buffered, 0)

    def test_header_layout(self):
        data = bc.encode_frame("STATUS", 0x0102030405060708, {})
        self.assertEqual(data.hex(), "16000000" "4253" "01" "00" "0200" "0000"
                                     "0807060504030201" "02000000" "7b7d")

    def test_length_checks_need_only_the_four_length_bytes(self):
        dec = bc.FrameDecoder()
        dec.feed(struct.pack("<I", 15))
        with self.assertRaises(bc.ProtocolError) as cm:
            dec.next()
        self.assertEqual(cm.exception.name, "FRAME_TOO_SHORT")
        dec = bc.FrameDecoder()
        dec.feed(struct.pack("<I", 2 ** 30 + 1))
        with self.assertRaises(bc.ProtocolError) as cm:
            dec.next()
        self.assertEqual(cm.exception.name, "FRAME_TOO_LARGE")
        dec = bc.FrameDecoder()
        dec.feed(struct.pack("<I", 2 ** 30) + b"B")       # 2^30 itself passes step 1
        self.assertIsNone(dec.next())

    def test_every_header_error(self):
        ok = dict(length=16 + 6, payload=empty_payload())
        self.assertFails(frame_bytes(**dict(ok, length=0)), "FRAME_TOO_SHORT")
        self.assertFails(frame_bytes(**dict(ok, length=15)), "FRAME_TOO_SHORT")
        self.assertFails(frame_bytes(**dict(ok, length=0xFFFFFFFF)), "FRAME_TOO_LARGE")
        self.assertFails(frame_bytes(**dict(ok, magic=b"SB")), "BAD_MAGIC")
        self.assertFails(frame_bytes(**dict(ok, version=2)), "UNSUPPORTED_VERSION")
        self.assertFails(frame_bytes(**dict(ok, version=0)), "UNSUPPORTED_VERSION")
        self.assertFails(frame_bytes(**dict(ok, version=2)), "VERSION_MISMATCH",
                         supported_versions=(1, 2), version=1)
        self.assertFails(frame_bytes(**dict(ok, flags=2)), "MALFORMED_HEADER")
        self.assertFails(frame_bytes(**dict(ok, flags=0x80)), "MALFORMED_HEADER")
        self.assertFails(frame_bytes(**dict(ok, reserved=1)), "MALFORMED_HEADER")
        self.assertFails(frame_bytes(**dict(ok, type_=0x0021)), "UNKNOWN_TYPE")
        self.assertFails(frame_bytes(**dict(ok, type_=0x0000)), "UNKNOWN_TYPE")
        self.assertFails(frame_bytes(**dict(ok, type_=0x8021)), "UNKNOWN_TYPE")
        self.assertFails(frame_bytes(**dict(ok, type_=0x8002)), "NOT_A_REQUEST", role="server")
        self.assertFails(frame_bytes(**dict(ok, type_=0x4001)), "NOT_A_REQUEST", role="server")
        # The SPEC names no code for a request type arriving at a client (Sources/Wire agrees).
        self.assertFails(frame_bytes(**dict(ok, type_=0x0002)), "UNKNOWN_TYPE", role="client")
        # A client may send ERROR before closing; a client decoder takes responses and events.
        for kw, t in (({"role": "server"}, 0xFFFF), ({"role": "client"}, 0x8002),
                      ({"role": "client"}, 0x4001), ({"role": "client"}, 0xFFFF),
                      ({"role": None}, 0x0002), ({"role": None}, 0x8002)):
            frames, err, _ = decode_all(frame_bytes(**dict(ok, type_=t)), **kw)
            self.assertIsNone(err)
            self.assertEqual(frames[0].type, t)

    def test_per_type_limits(self):
        limits = {
            0x0001: 4 * 2 ** 20 + 16, 0x0002: 4 * 2 ** 20 + 16, 0x0012: 4 * 2 ** 20 + 16,
            0x0011: 512 * 2 ** 20, 0x800C: 256 * 2 ** 20, 0x800D: 256 * 2 ** 20,
            0x8012: 2 ** 30, 0x8011: 16 * 2 ** 20, 0x8001: 16 * 2 ** 20, 0x4001: 16 * 2 ** 20,
            0xFFFF: 16 * 2 ** 20, 0x001D: 68 * 2 ** 20 + 16, 0x001C: 4 * 2 ** 20 + 16,
            0x801D: 16 * 2 ** 20,
        }
        for t, limit in limits.items():
            self.assertEqual(bc.frame_limit(t), limit, hex(t))
            # At the limit: accepted, waits for the payload (which is never allocated).
            dec = bc.FrameDecoder()
            dec.feed(frame_bytes(limit, type_=t))
            self.assertIsNone(dec.next())
            if limit < 2 ** 30:
                self.assertFails(frame_bytes(limit + 1, type_=t), "FRAME_TOO_LARGE")

    def test_check_order(self):
        # Each case breaks two fields; the earlier check in SPEC order must win.
        p = empty_payload()
        cases = [
            (frame_bytes(15, magic=b"XX"), "FRAME_TOO_SHORT"),
            (frame_bytes(2 ** 31, magic=b"XX"), "FRAME_TOO_LARGE"),
            (frame_bytes(22, magic=b"XX", version=9, payload=p), "BAD_MAGIC"),
            (frame_bytes(22, version=9, flags=4, payload=p), "UNSUPPORTED_VERSION"),
            (frame_bytes(22, flags=4, type_=0x7777, payload=p), "MALFORMED_HEADER"),
            (frame_bytes(22, reserved=4, type_=0x7777, payload=p), "MALFORMED_HEADER"),
            (frame_bytes(2 ** 30, type_=0x7777), "UNKNOWN_TYPE"),
            (frame_bytes(2 ** 30, type_=0x8002), "FRAME_TOO_LARGE"),
            (frame_bytes(16 * 2 ** 20 + 1, type_=0x8002), "FRAME_TOO_LARGE"),
        ]
        for data, name in cases:
            self.assertFails(data, name)
        frames, err = self.assertFails(frame_bytes(2 ** 30, type_=0x8002), "NOT_A_REQUEST",
                                       role="server")

    def test_header_checks_wait_for_all_sixteen_header_bytes(self):
        data = frame_bytes(22, magic=b"XX", payload=empty_payload())
        dec = bc.FrameDecoder()
        dec.feed(data[:19])
        self.assertIsNone(dec.next())             # closed here: nothing would be answered
        dec.feed(data[19:20])
        with self.assertRaises(bc.ProtocolError) as cm:
            dec.next()
        self.assertEqual(cm.exception.name, "BAD_MAGIC")

    def test_header_error_poisons_the_stream(self):
        good = bc.encode_frame("STATUS", 1, {})
        frames, err, dec = decode_all(good + frame_bytes(22, magic=b"XX") + good)
        self.assertEqual(len(frames), 1)
        self.assertEqual(err.name, "BAD_MAGIC")
        self.assertIsNone(err.request_id)
        with self.assertRaises(bc.ProtocolError):
            dec.next()
        dec.feed(good)
        with self.assertRaises(bc.ProtocolError):
            dec.next()

    def test_payload_error_keeps_the_stream(self):
        bad = frame_bytes(16 + 3, request_id=42, payload=b"\x00\x00\x00")
        good = bc.encode_frame("STATUS", 43, {})
        frames, err, dec = decode_all(good + bad + good)
        self.assertIsNone(err)
        self.assertEqual([type(f).__name__ for f in frames], ["Frame", "ProtocolError", "Frame"])
        e = frames[1]
        self.assertEqual((e.code, e.name, e.request_id, e.frame.type), (100, "MALFORMED_PAYLOAD",
                                                                        42, 2))
        self.assertFalse(e.closes_connection)

    def test_several_frames_in_one_read_and_one_frame_in_many(self):
        data = b"".join(bc.encode_frame("STATUS", i, {"i": i}) for i in range(1, 30))
        rng = random.Random(7)
        for chunks in (None, byte_chunks(data), random_chunks(data, rng)):
            frames, err, dec = decode_all(data, chunks)
            self.assertIsNone(err)
            self.assertEqual([f.doc["i"] for f in frames], list(range(1, 30)))
            self.assertEqual(dec.buffered, 0)

    def test_incomplete_frame_yields_nothing(self):
        data = bc.encode_frame("STATUS", 1, {"x": 1})
        for cut in range(len(data)):
            frames, err, dec = decode_all(data[:cut], byte_chunks(data[:cut]))
            self.assertEqual((frames, err, dec.buffered), ([], None, cut))

    def test_claimed_length_is_not_allocated(self):
        dec = bc.FrameDecoder()
        tracemalloc.start()
        try:
            dec.feed(frame_bytes(512 * 2 ** 20, type_=0x0011))
            for _ in range(1000):
                dec.feed(b"\x00" * 64)
                self.assertIsNone(dec.next())
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        self.assertLess(peak, 4 * 2 ** 20)
        self.assertEqual(dec.buffered, 20 + 64000)

    def test_encoder_refuses_frames_above_the_limit(self):
        big = bc.Tensor("x", "u8", [4 * 2 ** 20], bytes(4 * 2 ** 20))
        with self.assertRaises(bc.ProtocolError) as cm:
            bc.encode_frame("STATUS", 1, {}, [big])
        self.assertEqual(cm.exception.name, "FRAME_TOO_LARGE")
        self.assertGreater(len(bc.encode_frame("CKA", 1, {}, [big])), 4 * 2 ** 20)
        with self.assertRaises(bc.ProtocolError) as cm:
            bc.encode_payload({"s": "a" * (4 * 2 ** 20)})
        self.assertEqual(cm.exception.name, "MALFORMED_PAYLOAD")

    def test_type_names(self):
        self.assertEqual(bc.type_code("heatmap"), 0x000C)
        self.assertEqual(bc.type_code("EXPORT_OK"), 0x8012)
        self.assertEqual(bc.type_code(0x4001), 0x4001)
        self.assertEqual(bc.type_name(0x800C), "HEATMAP_OK")
        self.assertEqual(bc.type_name(0x1234), "0x1234")
        with self.assertRaises(ValueError):
            bc.type_code("NOPE")
        self.assertEqual(len(bc.REQUEST_TYPES), 32)
        self.assertEqual(len(bc.ERROR_NAMES), 30)


# =============================================================================================
# Payloads (SPEC section 3)
# =============================================================================================

def raw_payload(doc_bytes, tail=b"", doc_length=None):
    n = len(doc_bytes) if doc_length is None else doc_length
    return struct.pack("<I", n) + doc_bytes + tail


class PayloadTests(unittest.TestCase):

    def assertMalformed(self, payload, fragment=None):
        with self.assertRaises(bc.ProtocolError) as cm:
            bc.decode_payload(payload)
        self.assertEqual((cm.exception.code, cm.exception.name), (100, "MALFORMED_PAYLOAD"))
        if fragment:
            self.assertIn(fragment, cm.exception.message)

    def test_deterministic_json(self):
        doc = {"b": [1, 2.5, None, True], "a": {"z": "é", "y": {}}}
        self.assertEqual(bc.encode_doc(doc),
                         b'{"a":{"y":{},"z":"\\u00e9"},"b":[1,2.5,null,true]}')
        self.assertEqual(bc.encode_doc(doc),
                         json.dumps(doc, separators=(",", ":"), sort_keys=True).encode())
        with self.assertRaises(ValueError):
            bc.encode_doc({"x": math.nan})

    def test_tensors_in_order_without_padding(self):
        a = bc.Tensor("a", "u8", [3], b"\x01\x02\x03")
        b = bc.Tensor("b", "f64", [1, 2], array.array("d", [1.0, -2.0]))
        c = bc.Tensor("c", "i32", [2], array.array("i", [-1, 7]))
        d = bc.Tensor("d", "f32", [], array.array("f", [0.5]))
        e = bc.Tensor("e", "f32", [0, 5], b"")
        payload = bc.encode_payload({"k": 1}, [a, b, c, d, e])
        doc_json = bc.encode_doc({"k": 1, "tensors": [t.descriptor() for t in (a, b, c, d, e)]})
        self.assertEqual(payload, struct.pack("<I", len(doc_json)) + doc_json + b"\x01\x02\x03"
                         + struct.pack("<2d2if", 1.0, -2.0, -1, 7, 0.5))
        doc, tensors = bc.decode_payload(payload)
        self.assertEqual(tensors, [a, b, c, d, e])
        self.assertEqual(doc["k"], 1)
        self.assertEqual([t.tolist() for t in tensors], [[1, 2, 3], [[1.0, -2.0]], [-1, 7], 0.5,
                                                         []])
        self.assertEqual(bc.encode_payload(doc, tensors), payload)

    def test_absent_or_empty_tensors(self):
        self.assertEqual(bc.decode_payload(raw_payload(b"{}")), ({}, []))
        self.assertEqual(bc.decode_payload(raw_payload(b' {"tensors":[]} '))[1], [])
        with self.assertRaises(ValueError):
            bc.encode_payload({"tensors": [{"name": "x", "dtype": "u8", "shape": [1]}]})

    def test_malformed_payloads(self):
        desc = lambda **kw: json.dumps({"tensors": [dict({"name": "x", "dtype": "u8",
                                                          "shape": [2]}, **kw)]}).encode()
        self.assertMalformed(b"", "shorter")
        self.assertMalformed(b"\x02\x00\x00", "shorter")
        self.assertMalformed(raw_payload(b"{}", doc_length=3), "exceeds")
        self.assertMalformed(raw_payload(b"{}", doc_length=4 * 2 ** 20 + 1), "limit")
        self.assertMalformed(raw_payload(b"{}", b"\x00"), "after")
        self.assertMalformed(raw_payload(b'{"a":"\xff"}'), "UTF-8")
        self.assertMalformed(raw_payload(b'{"a":"\xed\xa0\x80"}'), "UTF-8")     # surrogate
        self.assertMalformed(raw_payload(b"\xef\xbb\xbf{}"), "JSON")            # BOM
        self.assertMalformed(raw_payload(b""), "JSON")
        self.assertMalformed(raw_payload(b"{"), "JSON")
        self.assertMalformed(raw_payload(b"[]"), "not an object")
        self.assertMalformed(raw_payload(b"null"), "not an object")
        self.assertMalformed(raw_payload(b'"x"'), "not an object")
        self.assertMalformed(raw_payload(b'{"a":NaN}'), "JSON")
        self.assertMalformed(raw_payload(b'{"a":-Infinity}'), "JSON")
        self.assertMalformed(raw_payload(b'{"a":1,"a":2}'), "duplicate")
        self.assertMalformed(raw_payload(b"[" * 100000 + b"]" * 100000), "JSON")
        self.assertMalformed(raw_payload(b'{"tensors":{}}'), "not an array")
        self.assertMalformed(raw_payload(b'{"tensors":null}'), "not an array")
        self.assertMalformed(raw_payload(b'{"tensors":[1]}'), "not an object")
        self.assertMalformed(raw_payload(desc(name=1), b"ab"), "name")
        self.assertMalformed(raw_payload(desc(dtype="f8"), b"ab"), "dtype")
        self.assertMalformed(raw_payload(desc(dtype="F32"), b"ab"), "dtype")
        self.assertMalformed(raw_payload(desc(shape=2), b"ab"), "shape")
        self.assertMalformed(raw_payload(desc(shape=[-2]), b"ab"), "shape")
        self.assertMalformed(raw_payload(desc(shape=[2.0]), b"ab"), "shape")
        self.assertMalformed(raw_payload(desc(shape=[True, 2]), b"ab"), "shape")
        self.assertMalformed(raw_payload(desc(), b"a"), "needs 2 bytes")
        self.assertMalformed(raw_payload(desc(), b"abc"), "after")
        self.assertMalformed(raw_payload(desc(shape=[2 ** 40, 2 ** 40]), b"ab"), "needs")
        # Well-formed counterparts.
        self.assertEqual(bc.decode_payload(raw_payload(desc(), b"ab"))[1][0].data, b"ab")
        self.assertEqual(bc.decode_payload(raw_payload(desc(extra=1), b"ab"))[1][0].data, b"ab")

    def test_unknown_keys_and_big_ids_survive(self):
        doc, _ = bc.decode_payload(bc.encode_payload({"job": 2 ** 53 - 1, "future_key": [1]}))
        self.assertEqual(doc, {"job": 2 ** 53 - 1, "future_key": [1]})


# =============================================================================================
# Tensors
# =============================================================================================

class TensorTests(unittest.TestCase):

    def test_cka_matrices_flatten_every_example_in_c_order(self):
        """What EXPORT gives ([n, c, h, w]) goes to cka as [n, c*h*w]; [n] is one feature."""
        t = bc.Tensor.from_nested("a", [[[[1, 2], [3, 4]]], [[[5, 6], [7, 8]]]], "f32")   # [2, 1, 2, 2]
        m = bc._matrix_tensor("x", t)
        self.assertEqual((m.name, m.dtype, m.shape), ("x", "f32", (2, 4)))
        self.assertEqual(m.tolist(), [[1, 2, 3, 4], [5, 6, 7, 8]])
        self.assertEqual(bc._matrix_tensor("y", [1.0, 2.0, 3.0]).shape, (3, 1))
        with self.assertRaises(ValueError):
            bc._matrix_tensor("z", bc.Tensor("s", "f64", (), b"\x00" * 8))

    def test_a_contiguous_buffer_is_sent_without_a_copy(self):
        """A tensor over a buffer views it; the frame's parts are the header and doc, padded so
        the tensor data is 64-byte aligned in the payload, then the buffer itself."""
        buf = array.array("f", [1.0, 2.0, 3.0, 4.0])
        t = bc.Tensor("x", "f32", (2, 2), memoryview(buf))
        buf[0] = 9.0
        self.assertEqual(t.tolist(), [[9.0, 2.0], [3.0, 4.0]])
        parts = bc.encode_frame_parts("SESSION_BATCH", 7, {"session": 1, "batch": "b"}, [t], align=64)
        self.assertEqual(len(parts), 2)
        self.assertIs(parts[1].obj, buf)
        self.assertEqual((len(parts[0]) - 4 - bc.HEADER_SIZE) % 64, 0)
        frames, error, _ = decode_all(b"".join(bytes(p) for p in parts))
        self.assertIsNone(error)
        self.assertEqual(len(frames), 1)
        self.assertEqual(frames[0].doc["batch"], "b")
        self.assertEqual(frames[0].tensors[0].tolist(), [[9.0, 2.0], [3.0, 4.0]])

    def test_checks(self):
        with self.assertRaises(ValueError):
            bc.Tensor("x", "f8", [1], b"\x00")
        with self.assertRaises(ValueError):
            bc.Tensor("x", "f32", [2], b"\x00" * 7)
        with self.assertRaises(ValueError):
            bc.Tensor("x", "f32", [-1], b"")
        with self.assertRaises(TypeError):
            bc.Tensor("x", "f32", [1], array.array("d", [1.0]))
        with self.assertRaises(ValueError):
            bc.Tensor.from_nested("x", [[1, 2], [3]])

    def test_half_precision_widens(self):
        # f16: 1, -2, 65504, 2^-24, inf; bf16: the high halves of f32 values.
        half = bc.Tensor("h", "f16", [5], struct.pack("<5H", 0x3C00, 0xC000, 0x7BFF, 0x0001, 0x7C00))
        self.assertEqual(half.tolist(), [1.0, -2.0, 65504.0, 2.0 ** -24, math.inf])
        values = [1.5, -3.25, 1e30]
        bits = [struct.unpack("<I", struct.pack("<f", v))[0] >> 16 for v in values]
        brain = bc.Tensor("b", "bf16", [3], struct.pack("<3H", *bits))
        self.assertEqual(brain.tolist(), [struct.unpack("<f", struct.pack("<I", b << 16))[0]
                                          for b in bits])
        self.assertEqual(brain.tolist()[:2], [1.5, -3.25])
        doc, tensors = bc.decode_payload(bc.encode_payload({}, [half, brain]))
        self.assertEqual(tensors, [half, brain])
        with self.assertRaises(ValueError):
            bc.save_npy(io.BytesIO(), half, "f16", [5])

    def test_activation_tensors(self):
        t = bc._activation_tensor("x", [[1, 2], [3, 4]])
        self.assertEqual((t.dtype, t.shape), ("f32", (2, 2)))
        same = bc._activation_tensor("y", t)
        self.assertEqual((same.name, same.dtype, same.to_bytes()), ("y", "f32", t.to_bytes()))
        raw = bc._activation_tensor("z", ("f16", [1], b"\x00\x3c"))
        self.assertEqual(raw.tolist(), [1.0])

    def test_views(self):
        t = bc.Tensor.from_nested("m", [[1, 2, 3], [4, 5, 6]], "i32")
        self.assertEqual((t.shape, t.count, t.nbytes), ((2, 3), 6, 24))
        self.assertEqual(t.to_bytes(), struct.pack("<6i", 1, 2, 3, 4, 5, 6))
        w = bc.Tensor("m", "i32", (2, 3), t.to_bytes())
        self.assertEqual(w, t)
        self.assertEqual(w.to_array(), array.array("i", [1, 2, 3, 4, 5, 6]))
        self.assertEqual(w.tolist(), [[1, 2, 3], [4, 5, 6]])
        self.assertNotEqual(w, bc.Tensor("n", "i32", (2, 3), t.to_bytes()))
        self.assertEqual(bc.Tensor.from_nested("z", [[[1.5]]], "f32").tolist(), [[[1.5]]])
        self.assertIn("<24 bytes>", repr(w))


# =============================================================================================
# .npy files
# =============================================================================================

# Written by numpy 2.4.6 (np.save, or np.lib.format.write_array for versions 2.0 and 3.0).
# name: (kind, numpy descr, shape, values in C order, file bytes as hex). kind "valid" files
# must load; "fortran" and "dtype" files must be refused with a clear message.
NUMPY_FIXTURES = {
    'f4_2x3': ('valid', '<f4', (2, 3), [0.0, 0.25, 0.5, 0.75, 1.0, 1.25],
        "934e554d5059010076007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a20"
        "46616c73652c20277368617065273a2028322c2033292c207d20202020202020202020202020202020202020"
        "2020202020202020202020202020202020202020202020202020202020202020202020202020200a00000000"
        "0000803e0000003f0000403f0000803f0000a03f"),
    'f8_4': ('valid', '<f8', (4,), [1.5, -0.0, math.inf, -2.25e-300],
        "934e554d5059010076007b276465736372273a20273c6638272c2027666f727472616e5f6f72646572273a20"
        "46616c73652c20277368617065273a2028342c292c207d202020202020202020202020202020202020202020"
        "2020202020202020202020202020202020202020202020202020202020202020202020202020200a00000000"
        "0000f83f0000000000000080000000000000f07fc41158bbe31bb881"),
    'i4_2x2x2': ('valid', '<i4', (2, 2, 2), [0, -1, 2, -2147483648, 2147483647, 5, 6, -7],
        "934e554d5059010076007b276465736372273a20273c6934272c2027666f727472616e5f6f72646572273a20"
        "46616c73652c20277368617065273a2028322c20322c2032292c207d20202020202020202020202020202020"
        "2020202020202020202020202020202020202020202020202020202020202020202020202020200a00000000"
        "ffffffff0200000000000080ffffff7f0500000006000000f9ffffff"),
    'u1_5': ('valid', '|u1', (5,), [0, 1, 127, 128, 255],
        "934e554d5059010076007b276465736372273a20277c7531272c2027666f727472616e5f6f72646572273a20"
        "46616c73652c20277368617065273a2028352c292c207d202020202020202020202020202020202020202020"
        "2020202020202020202020202020202020202020202020202020202020202020202020202020200a00017f80"
        "ff"),
    'f8_scalar': ('valid', '<f8', (), [3.25],
        "934e554d5059010076007b276465736372273a20273c6638272c2027666f727472616e5f6f72646572273a20"
        "46616c73652c20277368617065273a2028292c207d2020202020202020202020202020202020202020202020"
        "2020202020202020202020202020202020202020202020202020202020202020202020202020200a00000000"
        "00000a40"),
    'f4_0x3': ('valid', '<f4', (0, 3), [],
        "934e554d5059010076007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a20"
        "46616c73652c20277368617065273a2028302c2033292c207d20202020202020202020202020202020202020"
        "2020202020202020202020202020202020202020202020202020202020202020202020202020200a"),
    'f4_2x2_v2': ('valid', '<f4', (2, 2), [1.0, 2.0, 3.0, 4.0],
        "934e554d50590200740000007b276465736372273a20273c6634272c2027666f727472616e5f6f7264657227"
        "3a2046616c73652c20277368617065273a2028322c2032292c207d2020202020202020202020202020202020"
        "2020202020202020202020202020202020202020202020202020202020202020202020202020200a0000803f"
        "000000400000404000008040"),
    'i4_3_v3': ('valid', '<i4', (3,), [7, 8, -9],
        "934e554d50590300740000007b276465736372273a20273c6934272c2027666f727472616e5f6f7264657227"
        "3a2046616c73652c20277368617065273a2028332c292c207d20202020202020202020202020202020202020"
        "2020202020202020202020202020202020202020202020202020202020202020202020202020200a07000000"
        "08000000f7ffffff"),
    'f8_fortran': ('fortran', '<f8', (2, 3), None,
        "934e554d5059010076007b276465736372273a20273c6638272c2027666f727472616e5f6f72646572273a20"
        "547275652c20277368617065273a2028322c2033292c207d2020202020202020202020202020202020202020"
        "2020202020202020202020202020202020202020202020202020202020202020202020202020200a00000000"
        "000000000000000000000840000000000000f03f000000000000104000000000000000400000000000001440"),
    'f4_bigendian': ('dtype', '>f4', (2,), None,
        "934e554d5059010076007b276465736372273a20273e6634272c2027666f727472616e5f6f72646572273a20"
        "46616c73652c20277368617065273a2028322c292c207d202020202020202020202020202020202020202020"
        "2020202020202020202020202020202020202020202020202020202020202020202020202020200a3f800000"
        "40000000"),
    'f2_half': ('dtype', '<f2', (2,), None,
        "934e554d5059010076007b276465736372273a20273c6632272c2027666f727472616e5f6f72646572273a20"
        "46616c73652c20277368617065273a2028322c292c207d202020202020202020202020202020202020202020"
        "2020202020202020202020202020202020202020202020202020202020202020202020202020200a003c0040"),
    'b1_bool': ('dtype', '|b1', (2,), None,
        "934e554d5059010076007b276465736372273a20277c6231272c2027666f727472616e5f6f72646572273a20"
        "46616c73652c20277368617065273a2028322c292c207d202020202020202020202020202020202020202020"
        "2020202020202020202020202020202020202020202020202020202020202020202020202020200a0100"),
}

NPY_DTYPE = {"<f4": "f32", "<f8": "f64", "<i4": "i32", "|u1": "u8"}


class NpyTests(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="bs-npy-")
        self.addCleanup(shutil.rmtree, self.dir)

    def path(self, name):
        return os.path.join(self.dir, name)

    def test_round_trip_every_dtype_and_shape(self):
        rng = random.Random(3)
        values = {
            "f32": lambda: struct.unpack("<f", struct.pack("<f", rng.uniform(-1e3, 1e3)))[0],
            "f64": lambda: rng.uniform(-1e300, 1e300),
            "i32": lambda: rng.randint(-2 ** 31, 2 ** 31 - 1),
            "u8": lambda: rng.randint(0, 255),
        }
        shapes = [(), (0,), (1,), (7,), (3, 4), (1, 1), (4, 0), (2, 3, 4), (2, 1, 3, 2),
                  (1, 2, 1, 2, 1), (100000,)]
        for dtype, gen in values.items():
            for shape in shapes:
                n = 1
                for d in shape:
                    n *= d
                a = array.array(bc.DTYPES[dtype][1], [gen() for _ in range(n)])
                path = self.path("%s-%d.npy" % (dtype, len(shape)))
                bc.save_npy(path, a, dtype, shape)
                self.assertEqual(bc.load_npy(path), (dtype, shape, a), (dtype, shape))
                with open(path, "rb") as f:
                    blob = f.read()
                self.assertEqual(blob[:8], b"\x93NUMPY\x01\x00")
                header_end = 10 + struct.unpack("<H", blob[8:10])[0]
                self.assertEqual(header_end % 64, 0)
                self.assertEqual(blob[header_end - 1:header_end], b"\n")
                # Other ways to give the data: bytes, a flat list, a Tensor, numpy descr.
                bc.save_npy(path, a.tobytes(), bc._NPY_WRITE_DESCR[dtype], shape)
                self.assertEqual(read_bytes(path), blob)
                bc.save_npy(path, a.tolist(), dtype, shape)
                self.assertEqual(read_bytes(path), blob)
                bc.save_npy(path, bc.Tensor("t", dtype, shape, a), dtype, shape)
                self.assertEqual(read_bytes(path), blob)

    def test_reads_files_written_by_numpy(self):
        for name, (kind, descr, shape, values, hexdata) in NUMPY_FIXTURES.items():
            with self.subTest(name):
                path = self.path(name + ".npy")
                with open(path, "wb") as f:
                    f.write(bytes.fromhex(hexdata))
                if kind == "valid":
                    dtype, got_shape, a = bc.load_npy(path)
                    self.assertEqual((dtype, got_shape), (NPY_DTYPE[descr], shape))
                    self.assertEqual(a.tolist(), values)
                    with open(path, "rb") as f:      # file objects too
                        self.assertEqual(bc.load_npy(f)[2], a)
                else:
                    with self.assertRaises(ValueError) as cm:
                        bc.load_npy(path)
                    self.assertIn("Fortran" if kind == "fortran" else "unsupported .npy dtype",
                                  str(cm.exception))

    def test_writes_the_same_bytes_as_numpy(self):
        # np.save of these (format 1.0) must be reproduced exactly.
        for name, (kind, descr, shape, values, hexdata) in NUMPY_FIXTURES.items():
            if kind != "valid" or hexdata[12:16] != "0100":
                continue
            with self.subTest(name):
                out = io.BytesIO()
                bc.save_npy(out, values, descr, shape)
                self.assertEqual(out.getvalue().hex(), hexdata)

    def test_refusals(self):
        good = bytes.fromhex(NUMPY_FIXTURES["f4_2x3"][4])
        cases = {
            "not a .npy": b"PK\x03\x04" + good[4:],
            "version 4.0": good[:6] + b"\x04\x00" + good[8:],
            "truncated .npy data": good[:-1],
            "after the .npy data": good + b"\x00",
            "truncated .npy header": good[:20],
            "lacks descr": good.replace(b"'fortran_order': False, ", b"'fortran_ordeX': False, "),
            "unreadable .npy header": good.replace(b"{'descr':", b"{'descr  ", 1),
        }
        for message, blob in cases.items():
            with self.subTest(message):
                path = self.path("bad.npy")
                with open(path, "wb") as f:
                    f.write(blob)
                with self.assertRaises(ValueError) as cm:
                    bc.load_npy(path)
                self.assertIn(message, str(cm.exception))
        with self.assertRaises(ValueError):
            bc.save_npy(self.path("x.npy"), [1.0], "<f2", (1,))
        with self.assertRaises(ValueError):
            bc.save_npy(self.path("x.npy"), [1.0, 2.0], "f64", (3,))


# =============================================================================================
# Client and command line, against an in-process fake daemon
# =============================================================================================

class FakeDaemon:
    """A minimal blockscoped stand-in on a Unix socket, served by one thread: answers HELLO,
    then hands each request frame to `handler(frame) -> [(type, doc, tensors), ...]` and sends
    those frames with the request's id. Records every request it received."""

    def __init__(self, handler, hello_version=1):
        self.dir = tempfile.mkdtemp(prefix="bs-fake-")
        self.path = os.path.join(self.dir, "s.sock")
        self.handler = handler
        self.hello_version = hello_version
        self.requests = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self._converse(conn)

    def _converse(self, conn):
        dec = bc.FrameDecoder(role="server")
        while True:
            data = conn.recv(65536)
            if not data:
                return
            dec.feed(data)
            while True:
                frame = dec.next()
                if frame is None:
                    break
                self.requests.append(frame)
                if frame.type == 0xFFFF:             # the client is closing
                    return
                if frame.type == 0x0001:
                    out = [(0x8001, {"version": self.hello_version, "server": "blockscoped",
                                     "server_version": "fake", "pid": os.getpid(),
                                     "limits": {}}, [])]
                else:
                    out = self.handler(frame)
                for t, doc, tensors in out:
                    rid = doc.pop("_id", frame.request_id) if isinstance(doc, dict) else 0
                    data = doc if isinstance(doc, bytes) else bc.encode_frame(
                        t, rid, doc, tensors, check_limit=False)
                    try:
                        conn.sendall(data)
                    except OSError:
                        return
                    if t == 0xFFFF and doc.get("close"):
                        return

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)     # wakes the blocked accept()
        self.sock.close()
        self.thread.join(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def ok(frame, doc, tensors=()):
    return [(frame.type | 0x8000, doc, list(tensors))]


def error(code, message, close=False, request_id=None):
    doc = {"code": code, "name": bc.ERROR_NAMES[code], "message": message, "close": close}
    if request_id is not None:
        doc["_id"] = request_id
    return (0xFFFF, doc, [])


def standard_handler(frame):
    """Answers like the daemon would, with canned values."""
    name = frame.type_name
    if name == "STATUS":
        return ok(frame, {"uptime_seconds": 5, "pid": 1, "models": 0})
    if name == "MODELS":
        return ok(frame, {"models": [{"model": "m1", "state": "ready"}]})
    if name == "JOBS":
        return ok(frame, {"jobs": []})
    if name == "DATASETS":
        return ok(frame, {"datasets": [{"name": "synthetic", "available": True}]})
    if name == "WATCH":
        return [(0x4001, {"phase": "epoch", "done": i, "total": 3, "job": frame.doc["job"]}, [])
                for i in (1, 2, 3)] + ok(frame, {"job": frame.doc["job"], "state": "finished"})
    if name == "HEATMAP":
        t = [bc.Tensor("cka", "f64", [2, 3], array.array("d", [1, .5, 0, .5, 1, .25])),
             bc.Tensor("defined", "u8", [2, 3], bytes([1, 1, 0, 1, 1, 1])),
             bc.Tensor("batch_example_ids", "i32", [1, 2], array.array("i", [4, 5]))]
        return ([(0x4001, {"phase": "grams", "done": 1, "total": 1}, [])]
                + ok(frame, {"row_names": ["a", "b"], "column_names": ["a", "b", "c"],
                             "estimator": "unbiased", "echo": frame.doc}, t))
    if name == "CKA":
        x, y = frame.tensors
        return ok(frame, {"n": x.shape[0], "linear": 0.75, "debiased": 0.5, "rbf": None,
                          "reasons": {"rbf": "constant"},
                          "echo": [[t.name, t.dtype, list(t.shape), t.to_array().tolist()]
                                   for t in frame.tensors]})
    if name == "EXPORT":
        n = frame.doc["examples"]["count"]
        t = [bc.Tensor("activations", "f32", [n, 2, 1, 1],
                       array.array("f", [float(i) for i in range(2 * n)])),
             bc.Tensor("example_ids", "i32", [n], array.array("i", range(n))),
             bc.Tensor("labels", "i32", [n], array.array("i", [9] * n))]
        return ok(frame, {"representation": frame.doc["representation"], "layout": "nchw"}, t)
    if name == "DESCRIBE":
        return [error(102, "no model named %r" % frame.doc["model"])]
    if name == "DELETE_MODEL":
        return [error(12, "stopping", close=True, request_id=0)]
    if name == "CANCEL":
        return [(0x8002, {}, [])]                                   # wrong response type
    if name == "RESUME":
        return [(0, b"\x10\x00\x00\x00XX" + bytes(14), [])]         # garbage from the daemon
    if name == "PROBE":                                             # bad payload, intact frame
        return [(0, frame_bytes(16 + 5, type_=0x800E, request_id=frame.request_id,
                                payload=b"\x01\x00\x00\x00["), [])]
    if name == "SHUTDOWN":
        return ok(frame, {"jobs_checkpointed": 0})
    return [error(113, "fake daemon has no %s" % name)]


class ClientTests(unittest.TestCase):

    def setUp(self):
        self.fake = FakeDaemon(standard_handler)
        self.addCleanup(self.fake.close)

    def client(self):
        c = bc.Client(self.fake.path, timeout=10)
        self.addCleanup(c.close)
        return c

    def test_hello_and_simple_requests(self):
        with self.client() as c:
            self.assertEqual(c.version, 1)
            self.assertEqual(c.server["server"], "blockscoped")
            self.assertEqual(c.status()["uptime_seconds"], 5)
            self.assertEqual(c.models()[0]["model"], "m1")
            self.assertEqual(c.jobs(), [])
            self.assertEqual(c.datasets()[0]["name"], "synthetic")
            self.assertEqual(c.shutdown(), {"jobs_checkpointed": 0})
        self.assertFalse(c.connected)
        hello = self.fake.requests[0]
        self.assertEqual((hello.type_name, hello.version, hello.doc["min_version"],
                          hello.doc["max_version"]), ("HELLO", 1, 1, 1))
        self.assertIsInstance(hello.doc["client"], str)
        ids = [f.request_id for f in self.fake.requests]
        self.assertEqual(len(set(ids)), len(ids))
        self.assertTrue(all(f.quiet for f in self.fake.requests[1:]))

    def test_progress_events(self):
        seen = []
        c = self.client()
        self.assertEqual(c.watch(7, on_progress=seen.append)["state"], "finished")
        self.assertEqual([d["done"] for d in seen], [1, 2, 3])
        self.assertFalse(self.fake.requests[-1].quiet)
        doc, tensors = c.request("WATCH", {"job": 8}, quiet=True)     # events skipped
        self.assertEqual((doc["job"], tensors), (8, {}))

    def test_heatmap_conversion(self):
        c = self.client()
        r = c.heatmap("m1", other="m2", layers="blocks", passes=2)
        self.assertEqual(r["cka"], [[1.0, 0.5, None], [0.5, 1.0, 0.25]])
        self.assertEqual(r["defined"], [[True, True, False], [True, True, True]])
        self.assertEqual(r["batch_example_ids"], [[4, 5]])
        self.assertNotIn("standard_errors", r)
        self.assertNotIn("tensors", r)
        self.assertEqual(r["echo"], {"model": "m1", "other": "m2", "layers": "blocks",
                                     "passes": 2})

    def test_cka_inputs(self):
        c = self.client()
        x = [[1, 2], [3, 4], [5, 6], [7, 9]]
        r = c.cka(x, [[1], [2], [3], [4]])
        self.assertEqual((r["n"], r["linear"], r["rbf"]), (4, 0.75, None))
        self.assertEqual(r["echo"][0], ["x", "f64", [4, 2], [1, 2, 3, 4, 5, 6, 7, 9]])
        f32 = ("f32", (4, 2), array.array("f", [1, 2, 3, 4, 5, 6, 7, 8]))      # as load_npy
        i32 = ("i32", (4, 1), array.array("i", [1, 2, 3, 4]))
        r = c.cka(f32, i32, estimators=["linear"])
        self.assertEqual(r["echo"], [["x", "f32", [4, 2], [1, 2, 3, 4, 5, 6, 7, 8]],
                                     ["y", "f64", [4, 1], [1, 2, 3, 4]]])
        self.assertEqual(self.fake.requests[-1].doc["estimators"], ["linear"])
        # [n] is one feature per example (as [n, ...] is flattened per example); a scalar is refused.
        r = c.cka([1, 2, 3, 4], x, estimators=["linear"])
        self.assertEqual(r["echo"][0], ["x", "f64", [4, 1], [1, 2, 3, 4]])
        with self.assertRaises(ValueError):
            c.cka(bc.Tensor("s", "f64", (), b"\x00" * 8), x)

    def test_export(self):
        c = self.client()
        r = c.export("m1", "s1.b0.out", count=3)
        self.assertEqual(self.fake.requests[-1].doc["examples"], {"split": "test", "count": 3})
        self.assertEqual(r["activations"].shape, (3, 2, 1, 1))
        self.assertEqual((r["example_ids"], r["labels"]), ([0, 1, 2], [9, 9, 9]))
        with self.assertRaises(ValueError):
            c.export("m1", "pool")

    def test_request_error_keeps_the_connection(self):
        c = self.client()
        with self.assertRaises(bc.BlockscopeError) as cm:
            c.describe("nope")
        e = cm.exception
        self.assertEqual((e.code, e.name, e.close), (102, "NOT_FOUND", False))
        self.assertIn("nope", str(e))
        self.assertFalse(e.closes_connection)
        self.assertTrue(c.connected)
        self.assertEqual(c.status()["pid"], 1)

    def test_connection_error_closes(self):
        c = self.client()
        with self.assertRaises(bc.BlockscopeError) as cm:
            c.delete_model("m1")
        self.assertEqual((cm.exception.code, cm.exception.request_id), (12, 0))
        self.assertTrue(cm.exception.closes_connection)
        self.assertFalse(c.connected)
        with self.assertRaises(bc.ConnectionClosed):
            c.status()

    def test_failed_send_reports_why_the_daemon_closed(self):
        # SPEC section 1: the daemon answered an earlier request with a connection ERROR and
        # closed; the next send fails (EPIPE), and the ERROR still waiting to be read says why.
        c = self.client()
        c.submit("DELETE_MODEL", {"model": "m1"})
        hangup = select.poll()
        hangup.register(c._sock, 0)                 # POLLHUP is reported unasked
        deadline = time.monotonic() + 10
        while not hangup.poll(100) and time.monotonic() < deadline:
            pass
        with self.assertRaises(bc.BlockscopeError) as cm:
            c.submit("STATUS")
        self.assertEqual((cm.exception.name, cm.exception.request_id), ("SHUTTING_DOWN_CLOSE", 0))
        self.assertFalse(c.connected)

    def test_unexpected_or_invalid_frames_from_the_daemon(self):
        c = self.client()
        with self.assertRaises(bc.ProtocolError) as cm:
            c.cancel(1)
        self.assertEqual(cm.exception.name, "UNEXPECTED_FRAME")
        self.assertFalse(c.connected)
        c = self.client()
        with self.assertRaises(bc.ProtocolError) as cm:
            c.resume(1)
        self.assertEqual(cm.exception.name, "BAD_MAGIC")
        self.assertFalse(c.connected)

    def test_malformed_answer_fails_only_its_request(self):
        c = self.client()
        with self.assertRaises(bc.ProtocolError) as cm:
            c.probe("m1")
        self.assertEqual((cm.exception.name, cm.exception.frame.type_name),
                         ("MALFORMED_PAYLOAD", "PROBE_OK"))
        self.assertTrue(c.connected)
        self.assertEqual(c.status()["pid"], 1)

    def test_pipelining(self):
        c = self.client()
        a = c.submit("STATUS")
        b = c.submit("MODELS")
        self.assertEqual(c.wait(b)[0]["models"][0]["model"], "m1")
        self.assertEqual(c.wait(a)[0]["uptime_seconds"], 5)
        with self.assertRaises(ValueError):
            c.wait(a)

    def test_version_the_client_does_not_speak(self):
        fake = FakeDaemon(standard_handler, hello_version=2)
        self.addCleanup(fake.close)
        with self.assertRaises(bc.ProtocolError) as cm:
            bc.Client(fake.path, timeout=10)
        self.assertEqual(cm.exception.name, "UNSUPPORTED_VERSION")

    def test_no_daemon(self):
        missing = os.path.join(self.fake.dir, "nothing.sock")
        with self.assertRaises(bc.NoDaemonError) as cm:
            bc.Client(missing)
        self.assertEqual(str(cm.exception), "no daemon at %s; start it with: blockscoped "
                         "--socket %s --store DIR" % (missing, missing))
        stale = os.path.join(self.fake.dir, "stale.sock")     # a socket file nobody listens on
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(stale)
        s.close()
        with self.assertRaises(bc.NoDaemonError) as cm:
            bc.Client(stale)
        self.assertIn("no daemon at %s" % stale, str(cm.exception))

    def test_default_socket_path(self):
        env = dict(os.environ)
        self.addCleanup(lambda: (os.environ.clear(), os.environ.update(env)))
        os.environ["XDG_RUNTIME_DIR"] = "/run/user/1234"
        self.assertEqual(bc.default_socket_path(), "/run/user/1234/blockscope/blockscoped.sock")
        os.environ.pop("XDG_RUNTIME_DIR")
        self.assertEqual(bc.default_socket_path(),
                         "/tmp/blockscope-%d/blockscoped.sock" % os.getuid())
        os.environ["XDG_RUNTIME_DIR"] = ""
        self.assertEqual(bc.default_socket_path(),
                         "/tmp/blockscope-%d/blockscoped.sock" % os.getuid())


def run_cli(argv):
    """main(argv) in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = bc.main(argv)
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


class CommandLineTests(unittest.TestCase):

    def setUp(self):
        self.fake = FakeDaemon(standard_handler)
        self.addCleanup(self.fake.close)
        self.dir = self.fake.dir

    def write_npy(self, name, values, shape, dtype="f64"):
        path = os.path.join(self.dir, name)
        bc.save_npy(path, values, dtype, shape)
        return path

    def test_usage_errors(self):
        x = self.write_npy("x.npy", [1, 2, 3, 4], (4, 1))
        x3 = self.write_npy("x3.npy", [1, 2, 3, 4], (4, 1, 1))
        bad = os.path.join(self.dir, "bad.npy")
        with open(bad, "wb") as f:
            f.write(b"not numpy")
        sock = ["--socket", self.fake.path]
        cases = [
            [], ["frobnicate"], ["--socket"], ["cka", x], ["heatmap"],
            ["export", "m1", "pool", "--out", "a.npy"],              # --count missing
            ["export", "m1", "pool", "--count", "0", "--out", "a.npy"],
            ["export", "m1", "pool", "--count", "x", "--out", "a.npy"],
            ["export", "m1", "pool", "--count", "2"],                # --out missing
            ["heatmap", "m1", "--estimator", "cosine"],
            sock + ["cka", x, os.path.join(self.dir, "missing.npy")],
            sock + ["cka", x, x3], sock + ["cka", bad, x],
        ]
        for argv in cases:
            with self.subTest(argv):
                code, out, err = run_cli(argv)
                self.assertEqual(code, 2)
                self.assertEqual(out, "")
                self.assertIn("usage:", err)
        # Input files are checked before connecting: a usage error even with no daemon.
        code, _, err = run_cli(["--socket", "/nonexistent/s", "cka", x, x3])
        self.assertEqual(code, 2)
        self.assertIn("2-D", err)

    def test_script_exit_codes(self):
        r = subprocess.run([sys.executable, CLIENT_SCRIPT], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage:", r.stderr)
        missing = os.path.join(self.dir, "none.sock")
        r = subprocess.run([sys.executable, CLIENT_SCRIPT, "--socket", missing, "status"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual((r.returncode, r.stdout), (1, ""))
        self.assertIn("no daemon at %s; start it with: blockscoped --socket %s --store DIR"
                      % (missing, missing), r.stderr)
        r = subprocess.run([sys.executable, CLIENT_SCRIPT, "--socket", self.fake.path, "status"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["uptime_seconds"], 5)

    def test_commands(self):
        s = ["--socket", self.fake.path]
        code, out, err = run_cli(s + ["status"])
        self.assertEqual((code, json.loads(out)["pid"]), (0, 1))
        code, out, _ = run_cli(s + ["models"])
        self.assertEqual((code, json.loads(out)[0]["model"]), (0, "m1"))
        code, out, _ = run_cli(s + ["jobs"])
        self.assertEqual((code, json.loads(out)), (0, []))
        x = self.write_npy("x.npy", [1, 2, 3, 4, 5, 6, 7, 9], (4, 2), "f32")
        y = self.write_npy("y.npy", [1, 2, 3, 4], (4, 1), "i32")
        code, out, _ = run_cli(s + ["cka", x, y])
        r = json.loads(out)
        self.assertEqual((code, r["n"], r["linear"], r["debiased"], r["rbf"]),
                         (0, 4, 0.75, 0.5, None))
        heat = os.path.join(self.dir, "h.npy")
        code, out, _ = run_cli(s + ["heatmap", "m1", "--other", "m2", "--layers", "s1.*",
                                    "--out", heat])
        r = json.loads(out)
        self.assertEqual((code, r["cka"][0]), (0, [1.0, 0.5, None]))
        self.assertEqual(r["echo"], {"model": "m1", "other": "m2", "layers": "s1.*"})
        dtype, shape, a = bc.load_npy(heat)
        self.assertEqual((dtype, shape, a[:2].tolist(), a[3:].tolist()),
                         ("f64", (2, 3), [1.0, 0.5], [0.5, 1.0, 0.25]))
        self.assertTrue(math.isnan(a[2]))
        act = os.path.join(self.dir, "a.npy")
        code, out, _ = run_cli(s + ["export", "m1", "pool", "--count", "2", "--out", act])
        self.assertEqual(code, 0)
        self.assertEqual(json.loads(out)["activations"]["shape"], [2, 2, 1, 1])
        self.assertEqual(bc.load_npy(act), ("f32", (2, 2, 1, 1),
                                            array.array("f", [0, 1, 2, 3])))

    def test_daemon_errors_exit_1(self):
        fake = FakeDaemon(lambda f: [error(111, "fashion-mnist files are missing")])
        self.addCleanup(fake.close)
        code, out, err = run_cli(["--socket", fake.path, "models"])
        self.assertEqual((code, out), (1, ""))
        self.assertIn("DATA_UNAVAILABLE (111): fashion-mnist files are missing", err)


# =============================================================================================
# A real daemon (BLOCKSCOPED=/path/to/blockscoped)
# =============================================================================================

def linear_cka(x, y):
    """Linear CKA in plain Python floats: ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F),
    with Xc, Yc the column-centred matrices (examples in rows)."""
    def centred(m):
        n = len(m)
        means = [sum(row[j] for row in m) / n for j in range(len(m[0]))]
        return [[row[j] - means[j] for j in range(len(row))] for row in m]

    def cross(a, b):      # a^T b
        return [[sum(a[k][i] * b[k][j] for k in range(len(a))) for j in range(len(b[0]))]
                for i in range(len(a[0]))]

    def frob2(m):
        return sum(v * v for row in m for v in row)

    xc, yc = centred(x), centred(y)
    return frob2(cross(yc, xc)) / math.sqrt(frob2(cross(xc, xc)) * frob2(cross(yc, yc)))


def numpy_minibatch_cka(np, reps, slices, estimator):
    """Float64 minibatch CKA over the batches `slices` of the [N, d] arrays `reps` (name ->
    array): per batch the HSIC estimator (unbiased HSIC1, biased HSIC0, or HSIC0 of RBF kernels
    at 0.5 of the median distance) of every pair, summed over batches, then normalised
    (docs/ANALYSIS.md, "CKA estimators")."""
    def centre(k):
        h = np.eye(k.shape[0]) - 1.0 / k.shape[0]
        return h @ k @ h

    def hsic0(k, l):
        return float(np.sum(centre(k) * centre(l)))

    def hsic1(k, l):
        m = k.shape[0]
        kt, lt = k.copy(), l.copy()
        np.fill_diagonal(kt, 0)
        np.fill_diagonal(lt, 0)
        one = np.ones(m)
        return float(np.trace(kt @ lt) + (one @ kt @ one) * (one @ lt @ one) / ((m - 1) * (m - 2))
                     - 2.0 / (m - 2) * (one @ kt @ lt @ one)) / (m * (m - 3))

    def rbf(x):
        sq = np.sum(x * x, 1)
        d = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0)
        return np.exp(-d / (2 * 0.25 * np.median(d)))

    names = list(reps)
    out = np.zeros((len(names), len(names)))
    for i, p in enumerate(names):
        for j, q in enumerate(names):
            num = kk = ll = 0.0
            for sl in slices:
                x = reps[p][sl].astype(np.float64)
                y = reps[q][sl].astype(np.float64)
                x, y = x - x.mean(0), y - y.mean(0)
                if estimator == "rbf":
                    k, l, f = rbf(x), rbf(y), hsic0
                else:
                    k, l, f = x @ x.T, y @ y.T, hsic1 if estimator == "unbiased" else hsic0
                num += f(k, l)
                kk += f(k, k)
                ll += f(l, l)
            out[i, j] = num / np.sqrt(kk * ll)
    return out


@unittest.skipUnless(os.environ.get("BLOCKSCOPED"), "set BLOCKSCOPED to the blockscoped binary")
class LiveDaemonTests(unittest.TestCase):
    """The client against a real daemon on a temporary socket and store (tools/test sets
    BLOCKSCOPED to the debug build). Models are tiny (ResNet-8, width 0.5, synthetic data) so
    that a debug daemon trains them in seconds."""

    #: ResNet-8: 21 * 1 + 9 representations.
    REPRESENTATIONS = 30

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="bs-live-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.socket = os.path.join(self.dir, "s.sock")
        self.store = os.path.join(self.dir, "store")
        os.mkdir(self.store)
        self.log = open(os.path.join(self.dir, "daemon.log"), "w+")
        self.addCleanup(self.log.close)
        self.proc = subprocess.Popen([os.environ["BLOCKSCOPED"], "--socket", self.socket,
                                      "--store", self.store, "--cache-mb", "64"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.addCleanup(self.stop)
        # The socket file exists from bind(), before listen(): wait for the line printed once
        # the daemon accepts connections.
        deadline = time.monotonic() + 30
        while "blockscoped listening on %s" % self.socket not in self.daemon_log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.fail("blockscoped is not listening on %s:\n%s"
                          % (self.socket, self.daemon_log()))
            time.sleep(0.05)

    def daemon_log(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self):
        c = bc.Client(self.socket, timeout=120)
        self.addCleanup(c.close)
        return c

    @staticmethod
    def tiny(model, epochs=1, **kw):
        recipe = dict(model=model, depth=8, width=0.5, dataset="synthetic", fraction=0.2,
                      epochs=epochs, test_examples=200)
        recipe.update(kw)
        return recipe

    def test_status_cka_shutdown(self):
        rng = random.Random(11)
        x = [[rng.gauss(0, 1) for _ in range(3)] for _ in range(8)]
        y = [[row[0] + 0.3 * rng.gauss(0, 1), row[1] * row[2]] for row in x]
        with bc.Client(self.socket, timeout=60) as c:
            self.assertEqual(c.server["server"], "blockscoped")
            status = c.status()
            for key in ("uptime_seconds", "pid", "rss_bytes", "cache", "jobs"):
                self.assertIn(key, status)
            self.assertEqual(status["pid"], self.proc.pid)
            r = c.cka(x, y)
            self.assertEqual(r["n"], 8)
            self.assertAlmostEqual(r["linear"], linear_cka(x, y), places=10)
            for key in ("debiased", "rbf"):
                self.assertIn(key, r)
            with self.assertRaises(bc.BlockscopeError) as cm:
                c.describe("no-such-model")
            self.assertEqual(cm.exception.name, "NOT_FOUND")
            self.assertIn("jobs_checkpointed", c.shutdown())
        self.assertEqual(self.proc.wait(30), 0, self.daemon_log())

    def converse(self, data, answers, closes):
        """Sends `data` on a new connection; returns the frames read once `answers` frames are
        in, or until the daemon closes when `closes`, and whether it closed."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(sock.close)
        sock.settimeout(30)
        sock.connect(self.socket)
        sock.sendall(data)
        dec = bc.FrameDecoder(role="client")
        frames, closed = [], False
        while not closed and (closes or len(frames) < answers):
            try:
                chunk = sock.recv(1 << 20)
            except ConnectionResetError:      # SPEC section 1: the close, with unread bytes
                chunk = b""
            if not chunk:
                closed = True
            dec.feed(chunk)
            frames.extend(dec)
        if not closed:
            # Still open: a request of the test's own is answered.
            sock.sendall(bc.encode_frame("STATUS", 0x7FFFFFFF, {}))
            while not any(f.request_id == 0x7FFFFFFF for f in frames):
                chunk = sock.recv(1 << 20)
                self.assertTrue(chunk, "closed instead of answering STATUS")
                dec.feed(chunk)
                frames.extend(dec)
            status = frames.pop()
            self.assertEqual(status.type_name, "STATUS_OK", status)
        return frames, closed

    def test_golden_vectors_sent_to_the_daemon(self):
        """Every vector with a `daemon` expectation, byte for byte on a new connection: the
        frames and the close the manifest lists; each `answer_to` vector is the daemon's
        answer byte for byte."""
        vectors = load_vectors()
        files = {entry["file"]: data for entry, data in vectors}
        checked = 0
        for entry, data in vectors:
            expected = entry.get("daemon")
            if expected is None:
                continue
            with self.subTest(entry["file"]):
                want = expected["answers"]
                frames, closed = self.converse(data, len(want), expected["closes"])
                got = []
                for f in frames:
                    a = {"type": f.type, "type_name": f.type_name, "request_id": f.request_id}
                    if f.type_name == "ERROR":
                        a["error"] = {k: f.doc[k] for k in ("code", "name", "close")}
                    got.append(a)
                key = lambda a: json.dumps(a, sort_keys=True)
                # Final frames of different requests in any order; per request, in order.
                self.assertEqual(sorted(map(key, got)), sorted(map(key, want)))
                for rid in {a["request_id"] for a in want}:
                    self.assertEqual([a for a in got if a["request_id"] == rid],
                                     [a for a in want if a["request_id"] == rid])
                if want and want[-1]["request_id"] == 0:
                    self.assertEqual(got[-1], want[-1])
                self.assertEqual(closed, expected["closes"])
                checked += 1
        self.assertGreaterEqual(checked, 25)
        for entry, data in vectors:
            if "answer_to" in entry:
                with self.subTest(entry["file"]):
                    request = b"".join(files[f] for f in entry["answer_to"])
                    frames, _ = self.converse(request, 2, False)
                    f = frames[-1]
                    received = bc._HEADER.pack(16 + len(f.payload), bc.MAGIC, f.version, f.flags,
                                               f.type, 0, f.request_id) + f.payload
                    self.assertEqual(received, data)
        # None of them stopped the daemon (a malformed SHUTDOWN among them).
        with bc.Client(self.socket, timeout=60) as c:
            self.assertIn("uptime_seconds", c.status())

    def test_shutdown_answer_survives_the_close_that_follows(self):
        # The daemon answers SHUTDOWN, then closes the (now idle) connection with
        # SHUTTING_DOWN_CLOSE. Waiting before reading puts both frames into one recv: the
        # answer that came first must still be returned.
        c = self.client()
        request_id = c.submit("SHUTDOWN", quiet=True)
        self.assertEqual(self.proc.wait(30), 0, self.daemon_log())
        doc, _ = c.wait(request_id)
        self.assertEqual(doc, {"jobs_checkpointed": 0})
        self.assertFalse(os.path.exists(self.socket))

    def test_train_watch_describe_heatmap_export_delete(self):
        c = self.client()
        synthetic = [d for d in c.datasets() if d["name"] == "synthetic"][0]
        self.assertTrue(synthetic["available"])
        started = c.train(**self.tiny("live"))
        self.assertEqual(started["model"], "live")
        self.assertIn(started["state"], ("queued", "running"))
        events = []
        end = c.watch(started["job"], on_progress=events.append)
        self.assertEqual((end["state"], end["epoch"], end["epochs"]), ("finished", 1, 1), end)
        phases = [e["phase"] for e in events]
        self.assertIn("step", phases)
        self.assertEqual(phases[-1], "epoch", phases)
        self.assertTrue(all(e.get("job") == started["job"] for e in events), events)
        self.assertEqual(events[-1]["done"], 1)

        # A second job on the same name is refused; the job list has the first one, finished.
        with self.assertRaises(bc.BlockscopeError) as cm:
            c.train(**self.tiny("live"))
        self.assertEqual(cm.exception.name, "ALREADY_EXISTS")
        jobs = c.jobs()
        self.assertEqual([(j["job"], j["model"], j["state"]) for j in jobs],
                         [(started["job"], "live", "finished")])

        [entry] = c.models()
        self.assertEqual((entry["model"], entry["state"], entry["depth"], entry["epoch"]),
                         ("live", "ready", 8, 1), entry)
        self.assertRegex(entry["fingerprint"], "^[0-9a-f]{16}$")
        described = c.describe("live")
        self.assertEqual(described["fingerprint"], entry["fingerprint"])
        self.assertEqual([h["epoch"] for h in described["history"]], [1])
        names = [r["name"] for r in described["representations"]]
        self.assertEqual(len(names), self.REPRESENTATIONS)
        self.assertEqual(names[0], "input")
        self.assertEqual(names[-3:], ["pool", "logits", "probs"])

        # A small heatmap: 2 batches of 128 test images, one pass.
        grams = []
        h = c.heatmap("live", examples={"split": "test", "count": 256}, batch_size=128,
                      passes=1, on_progress=grams.append)
        self.assertEqual(h["row_names"], names)
        self.assertEqual(h["column_names"], names)
        self.assertEqual(len(h["cka"]), self.REPRESENTATIONS)
        for i, row in enumerate(h["cka"]):
            self.assertEqual(len(row), self.REPRESENTATIONS)
            if row[i] is not None:
                self.assertAlmostEqual(row[i], 1.0, places=6, msg=names[i])
            for j, v in enumerate(row):
                self.assertEqual(v is None, not h["defined"][i][j])
        self.assertEqual(h["provenance"]["model_fingerprint"], entry["fingerprint"])
        self.assertEqual(len(h["batch_example_ids"]), 2)
        self.assertEqual(sorted(v for b in h["batch_example_ids"] for v in b), list(range(256)))
        self.assertTrue(grams and all(e["phase"] == "grams" for e in grams), grams)
        # The same request again is served from the Gram cache.
        again = c.heatmap("live", examples={"split": "test", "count": 256}, batch_size=128,
                          passes=1)
        self.assertEqual(again["cka"], h["cka"])
        self.assertEqual(again["stats"]["grams_computed"], 0, again["stats"])
        self.assertGreater(c.status()["cache"]["hits"], 0)

        # Activations at the pooled features, as a .npy file.
        pool = [r for r in described["representations"] if r["name"] == "pool"][0]
        e = c.export("live", "pool", ids=[5, 0, 3])
        t = e["activations"]
        self.assertEqual((t.dtype, t.shape), ("f32", (3, pool["channels"], pool["height"],
                                                      pool["width"])))
        self.assertEqual(e["example_ids"], [5, 0, 3])
        self.assertEqual(len(e["labels"]), 3)
        path = os.path.join(self.dir, "pool.npy")
        bc.save_npy(path, t.data, t.dtype, t.shape)
        self.assertEqual(bc.load_npy(path), ("f32", t.shape, t.to_array()))

        deleted = c.delete_model("live")
        self.assertEqual(deleted["model"], "live")
        self.assertGreater(deleted["bytes_freed"], 0)
        self.assertEqual(c.models(), [])
        with self.assertRaises(bc.BlockscopeError) as cm:
            c.heatmap("live", examples={"split": "test", "count": 256}, batch_size=128, passes=1)
        self.assertEqual(cm.exception.name, "NOT_FOUND")

    def test_foreign_model_streamed_back_equals_the_stored_one(self):
        """A stored model's exported activations, streamed back as a foreign model over
        dataset references, from two connections (the session is the daemon's): its heatmap,
        and its cross heatmap against the stored model, equal the stored model's own."""
        c = self.client()
        started = c.train(**self.tiny("src"))
        self.assertEqual(c.watch(started["job"])["state"], "finished")
        layers = ["stem.relu", "s1.b1.out", "s2.b1.out", "s3.b1.out", "pool"]
        exported = {name: c.export("src", name, count=64)["activations"] for name in layers}
        opened = c.session_open("torch-src", "sha:src-1",
                                [(name, t.shape[1:]) for name, t in exported.items()])
        self.assertEqual((opened["model"], opened["reopened"]), ("torch-src", False))
        self.assertRegex(opened["key"], "^[0-9a-f]{16}$")
        other = self.client()
        references = ["synthetic:test[%d:%d]" % (a, a + 16) for a in range(0, 64, 16)]
        for i, reference in enumerate(references):
            for k, name in enumerate(layers):
                t = exported[name]
                row = t.nbytes // t.shape[0]
                part = bc.Tensor(name, "f32", (16,) + t.shape[1:], t.data[i * 16 * row:(i + 1) * 16 * row])
                answer = (c if k % 2 else other).session_batch(opened["session"], reference, {name: part})
                self.assertEqual(answer["examples"], 16)
            self.assertEqual(answer["pending"], [])
        within = c.heatmap("torch-src", batches=references)
        stored = c.heatmap("src", layers=layers, batches=references)
        cross = c.heatmap("torch-src", other="src", layers=layers, batches=references)
        self.assertTrue(within["provenance"]["foreign"])
        self.assertEqual(within["batch_example_ids"], [list(range(a, a + 16)) for a in range(0, 64, 16)])
        for a, b, x in zip(within["cka"], stored["cka"], cross["cka"]):
            for u, v, w in zip(a, b, x):
                self.assertAlmostEqual(u, v, delta=1e-6)
                self.assertAlmostEqual(u, w, delta=1e-6)
        try:
            import numpy as np
        except ImportError:
            np = None
        if np is not None:
            # Real activations against the float64 reference, every estimator.
            reps = {name: np.frombuffer(bytes(t.data), dtype="<f4").reshape(t.shape[0], -1)
                    for name, t in exported.items()}
            slices = [slice(a, a + 16) for a in range(0, 64, 16)]
            for estimator in ("unbiased", "biased", "rbf"):
                got = c.heatmap("torch-src", estimator=estimator, batches=references)["cka"]
                want = numpy_minibatch_cka(np, reps, slices, estimator)
                for i in range(len(layers)):
                    for j in range(len(layers)):
                        self.assertAlmostEqual(got[i][j], want[i, j], delta=1e-5,
                                               msg="%s %s x %s" % (estimator, layers[i], layers[j]))
        closed = c.session_close(opened["session"])
        self.assertEqual((closed["batches"], closed["incomplete"]), (4, []))
        [listed] = c.foreign_models()
        self.assertEqual((listed["model"], listed["sessions"], len(listed["batches"])), ("torch-src", [], 4))
        # Refusals name the problem and leave the connection open.
        with self.assertRaises(bc.BlockscopeError) as cm:
            c.session_batch(opened["session"], "k", {"pool": [[0.0]] * 4})
        self.assertEqual(cm.exception.name, "NOT_FOUND")
        again = c.session_open("torch-src", "sha:src-1", [(n, t.shape[1:]) for n, t in exported.items()])
        self.assertTrue(again["reopened"])
        with self.assertRaises(bc.BlockscopeError) as cm:
            pool = exported["pool"]
            nan = array.array("f", [float("nan")] * (16 * pool.count // pool.shape[0]))
            c.session_batch(again["session"], references[0],
                            {"pool": bc.Tensor("pool", "f32", (16,) + pool.shape[1:], nan)})
        self.assertEqual(cm.exception.name, "INVALID_ARGUMENT")
        self.assertEqual(c.heatmap("torch-src")["provenance"]["batches"], references)

    def test_foreign_heatmap_matches_a_float64_numpy_reference(self):
        """Random foreign activations (one with column means of 1e3) streamed in three client
        batches: every estimator's heatmap equals a float64 numpy minibatch CKA to 1e-5."""
        try:
            import numpy as np
        except ImportError:
            self.skipTest("numpy is not installed")
        rng = np.random.default_rng(7)
        n, batches = 32, ["b0", "b1", "b2"]
        a = rng.standard_normal((3 * n, 6)).astype(np.float32)
        b = (np.tanh(a @ rng.standard_normal((6, 9))) + 0.3 * rng.standard_normal((3 * n, 9))).astype(np.float32)
        c_ = (1000 + np.maximum(a[:, :4], 0) + 0.1 * rng.standard_normal((3 * n, 4))).astype(np.float32)
        reps = {"a": a, "b": b, "c": c_}
        cl = self.client()
        opened = cl.session_open("np-ref", "np-ref-1", [(k, v.shape[1:]) for k, v in reps.items()])
        for i, key in enumerate(batches):
            cl.session_batch(opened["session"], key, {k: v[i * n:(i + 1) * n] for k, v in reps.items()})

        slices = [slice(i * n, (i + 1) * n) for i in range(3)]
        for estimator in ("unbiased", "biased", "rbf"):
            got = cl.heatmap("np-ref", estimator=estimator, batches=batches)
            want = numpy_minibatch_cka(np, reps, slices, estimator)
            self.assertEqual(got["row_names"], ["a", "b", "c"])
            for i in range(3):
                for j in range(3):
                    self.assertAlmostEqual(got["cka"][i][j], want[i, j], delta=1e-5,
                                           msg="%s [%d][%d]" % (estimator, i, j))
        # Cross-model CKA of the foreign model with itself is its within-model heatmap.
        within = cl.heatmap("np-ref", batches=batches)
        cross = cl.heatmap("np-ref", other="np-ref", foreign=True, other_foreign=True, batches=batches)
        for u, v in zip(sum(within["cka"], []), sum(cross["cka"], [])):
            self.assertAlmostEqual(u, v, delta=1e-12)

    def test_memfd_batches_equal_socket_batches_and_bad_memfds_are_refused(self):
        """Shared-memory SESSION_BATCH frames (SPEC section 7) give the Grams the payload path
        gives; a memfd smaller than its frame claims, unsealed, not a memfd, missing, or with
        a huge or misaligned offset is INVALID_ARGUMENT on that request only; two descriptors
        with one frame close the connection (TOO_MANY_DESCRIPTORS); a memfd written again
        after its frame was answered gives the new batch (the daemon keeps it mapped); the
        daemon keeps no descriptor and no mapping after the connection closes."""
        try:
            import numpy as np
        except ImportError:
            self.skipTest("numpy is not installed")
        rng = np.random.default_rng(3)
        acts = {"a": rng.standard_normal((24, 5, 4), dtype=np.float32),
                "b": rng.standard_normal((24, 7), dtype=np.float32).astype(np.float16),
                "c": rng.standard_normal((24, 3), dtype=np.float32) + 100}
        cl = self.client()
        fds_before = len(os.listdir("/proc/%d/fd" % self.proc.pid))
        shapes = [(k, v.shape[1:]) for k, v in acts.items()]
        via_socket = cl.session_open("via-socket", "fp-socket", shapes)["session"]
        via_memfd = cl.session_open("via-memfd", "fp-memfd", shapes)["session"]
        buffers = [bc.MemfdBuffer(4096), bc.MemfdBuffer(4096)]      # grown on demand
        for i in range(3):
            batch = {k: v[i * 8:(i + 1) * 8] for k, v in acts.items()}
            cl.session_batch(via_socket, "b%d" % i, batch)
            got = cl.wait(cl.submit_session_batch(via_memfd, "b%d" % i, batch, memfd=buffers[i % 2]))[0]
            self.assertEqual((got["examples"], got["pending"]), (8, []))
        both = cl.heatmap("via-memfd", other="via-socket", batches=["b0", "b1", "b2"])
        for i in range(3):
            self.assertAlmostEqual(both["cka"][i][i], 1.0, delta=1e-6)
        own = [cl.heatmap(m, batches=["b0", "b1", "b2"])["cka"] for m in ("via-memfd", "via-socket")]
        self.assertEqual(own[0], own[1])

        t = bc._activation_tensor("a", acts["a"][:8])
        entry = buffers[0].write([t])[0]
        capacity = buffers[0].capacity

        def refused(doc_memfd, fd, fragment):
            with self.assertRaises(bc.BlockscopeError) as cm:
                cl.wait(cl.submit("SESSION_BATCH", {"session": via_memfd, "batch": "bad",
                                                    "memfd": doc_memfd}, descriptor=fd))
            self.assertEqual(cm.exception.name, "INVALID_ARGUMENT", cm.exception)
            self.assertIn(fragment, cm.exception.message)

        refused([dict(entry, offset=capacity - 100)], buffers[0].fd, "does not fit in the memfd")
        refused([dict(entry, offset=2 ** 62)], buffers[0].fd, "does not fit in the memfd")
        refused([dict(entry, offset=2)], buffers[0].fd, "not a non-negative multiple of 4")
        refused([entry], None, "no file descriptor came with this frame")
        unsealed = os.memfd_create("unsealed")
        os.ftruncate(unsealed, capacity)
        refused([entry], unsealed, "not sealed against shrinking")
        r, w = os.pipe()
        refused([entry], r, "not a memfd")
        for fd in (unsealed, r, w):
            os.close(fd)
        memfd_model = next(m for m in cl.foreign_models() if m["model"] == "via-memfd")
        self.assertEqual([b["batch"] for b in memfd_model["batches"]], ["b0", "b1", "b2"])  # nothing stored

        # Two descriptors in one sendmsg: a connection error; the daemon serves on.
        rogue = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        rogue.connect(self.socket)
        rogue.sendmsg([bc.encode_frame("HELLO", 1, {"client": "rogue", "versions": [1]})],
                      [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [buffers[0].fd, buffers[1].fd]))])
        data = b""
        rogue.settimeout(10)
        while True:
            chunk = rogue.recv(65536)
            if not chunk:
                break
            data += chunk
        rogue.close()
        self.assertIn(b"TOO_MANY_DESCRIPTORS", data)
        cl.status()                       # still served

        def mapped_memfds():
            with open("/proc/%d/maps" % self.proc.pid) as f:
                return [line for line in f if "memfd:blockscope-batch" in line]
        self.assertEqual(len(mapped_memfds()), 2)   # kept for the connection's next frames
        for b in buffers:
            b.close()
        cl.close()
        deadline = time.monotonic() + 10
        while len(os.listdir("/proc/%d/fd" % self.proc.pid)) > fds_before and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertLessEqual(len(os.listdir("/proc/%d/fd" % self.proc.pid)), fds_before)
        # The memfds the connection kept mapped between its frames go with it.
        while mapped_memfds() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(mapped_memfds(), [])

    def test_cancel_then_resume_from_another_connection(self):
        c = self.client()
        job = c.train(**self.tiny("resumed", epochs=2))["job"]
        # Cancel at the first step event, from a second connection (WATCH blocks this one).
        other = self.client()
        cancelled = []

        def on_progress(event):
            if event["phase"] == "step" and not cancelled:
                cancelled.append(other.cancel(job))

        end = c.watch(job, on_progress=on_progress)
        self.assertEqual(end["state"], "cancelled", end)
        self.assertEqual(cancelled[0]["state"], "cancelled", cancelled)
        self.assertEqual(end["epoch"], 0)
        with self.assertRaises(bc.BlockscopeError) as cm:
            c.resume(job, epochs=1)            # below the job's 2 epochs
        self.assertEqual(cm.exception.name, "INVALID_ARGUMENT")
        resumed = c.resume(job, epochs=3)
        self.assertEqual((resumed["job"], resumed["epochs"]), (job, 3))
        self.assertIn(resumed["state"], ("queued", "running"))
        with self.assertRaises(bc.BlockscopeError) as cm:
            other.resume(job)
        self.assertEqual(cm.exception.name, "CONFLICT")
        end = c.watch(job)
        self.assertEqual((end["state"], end["epoch"], end["epochs"]), ("finished", 3, 3), end)
        self.assertEqual([h["epoch"] for h in c.describe("resumed")["history"]], [1, 2, 3])

    def test_study_create_status_results_delete(self):
        c = self.client()
        declaration = dict(dataset="synthetic", depths=[8], widths=[0.5], fractions=[0.1],
                           seeds=[0, 1], epochs=1, test_examples=200, analyses=["heatmap", "cross_seed"],
                           heatmap_examples=128, heatmap_batch=64)
        created = c.study_create("py", declaration)
        self.assertEqual(len(created["models"]), 2)
        with self.assertRaises(bc.BlockscopeError) as cm:
            c.study_create("bad", dict(declaration, depths=[9]))
        self.assertEqual(cm.exception.name, "INVALID_ARGUMENT")
        self.assertIn("declaration.depths", cm.exception.message)
        deadline = time.monotonic() + 120
        status = c.study_status("py")
        while status["state"] == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
            status = c.study_status("py")
        self.assertEqual(status["state"], "finished", status)
        self.assertEqual([s["study"] for s in c.study_list()], ["py"])
        index = c.study_results("py")
        self.assertEqual(sorted(r["kind"] for r in index["results"]), ["cross_seed", "heatmap", "heatmap"])
        first = c.study_results("py", offset=0, limit=2)
        self.assertEqual((first["total"], first["next_offset"]), (3, 2))
        rest = c.study_results("py", offset=2, limit=2)
        self.assertNotIn("next_offset", rest)
        self.assertEqual(first["results"] + rest["results"], index["results"])
        key = next(r["key"] for r in index["results"] if r["kind"] == "cross_seed")
        doc, tensors = c.study_result("py", key)
        self.assertEqual(len(doc["row_names"]), self.REPRESENTATIONS)
        self.assertIn("cka", tensors)
        deleted = c.study_delete("py")
        self.assertEqual(len(deleted["models_deleted"]), 2)
        self.assertEqual(c.study_list(), [])


if __name__ == "__main__":
    unittest.main()
