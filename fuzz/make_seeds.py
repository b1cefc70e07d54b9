#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/seeds/<target>/ from the
repository's own small files (docs/examples, platforms/, mappings/, the test models of
tests/models/make_models.py) and hand-built wire frames. Usage: fuzz/make_seeds.py
(the ONNX seeds need the onnx module: PYTHONPATH=.deps/python)."""

import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = os.path.join(ROOT, "fuzz", "seeds")
# ONNX test models small enough to commit as seeds [bytes]
ONNX_MAX = 25_000


def put(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def copy(target, *paths):
    for p in paths:
        with open(os.path.join(ROOT, p), "rb") as f:
            put(target, os.path.basename(p), f.read())


def frame(tag, payload=b""):
    body = bytes([tag]) + payload
    return body, struct.pack("<I", len(body)) + body


def s(text):
    b = text.encode()
    return struct.pack("<I", len(b)) + b


def wire_seeds():
    hello = b"DSIM" + struct.pack("<HB", 3, 0) + bytes(range(32))
    challenge = struct.pack("<H", 3) + bytes(32) + bytes(range(32))
    tensor = (struct.pack("<QII", 7, 0xFFFFFFFF, 1) + s("input") + struct.pack("<III", 2, 1, 2)
              + struct.pack("<I", 2) + struct.pack("<ff", 1.0, -2.5) + struct.pack("<Q", 0))
    deploy = (struct.pack("<I", 0) + bytes(32) + struct.pack("<I", 2) + struct.pack("<III", 2, 0, 1)
              + struct.pack("<d", 0.0) + struct.pack("<I", 1) + s("input") + struct.pack("<I", 0))
    msgs = {"hello": (1, hello), "challenge": (2, challenge), "auth": (3, bytes(32)),
            "welcome": (4, b""), "error": (5, s("refused")), "heartbeat": (6, b""),
            "query": (10, bytes(32)), "have": (11, bytes(32) + b"\x01"),
            "chunk": (12, bytes(32) + struct.pack("<QQ", 4, 0) + struct.pack("<I", 4) + b"onnx"),
            "deploy": (14, deploy), "deployed": (15, struct.pack("<IQ", 0, 12) + s("tract")),
            "tensor": (20, tensor), "timing": (21, struct.pack("<QIQ", 1, 0, 250)),
            "stats_req": (30, b""), "reset": (32, b""), "fault": (33, s("peer lost"))}
    stream = b""
    for name, (tag, payload) in msgs.items():
        body, fr = frame(tag, payload)
        put("proto", name, body)
        stream += fr
    put("proto", "stream", stream)
    put("handshake", "server-hello", b"\x00" + frame(1, hello)[1] + frame(3, bytes(32))[1])
    put("handshake", "client-challenge", b"\x01" + frame(2, challenge)[1] + frame(4)[1])
    put("handshake", "client-error", b"\x01" + frame(5, s("protocol version 2 not supported"))[1])


def npy(descr, shape, data):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data


def npy_seeds():
    a = npy("<f4", "(1, 2)", struct.pack("<ff", 1.0, 2.0))
    b = npy("<i8", "(3,)", struct.pack("<qqq", 1, 2, 3))
    put("npy", "f4.npy", a)
    put("npy", "i8.npy", b)
    put("npy", "f8.npy", npy("<f8", "(2,)", struct.pack("<dd", 0.5, 1.5)))
    for name, mode in (("stored.npz", zipfile.ZIP_STORED), ("deflated.npz", zipfile.ZIP_DEFLATED)):
        with tempfile.NamedTemporaryFile(suffix=".npz") as t:
            with zipfile.ZipFile(t.name, "w", mode) as z:
                z.writestr("input.npy", a)
                z.writestr("ids.npy", b)
            put("npy", name, open(t.name, "rb").read())


def onnx_seeds():
    out = tempfile.mkdtemp()
    script = os.path.join(ROOT, "tests", "models", "make_models.py")
    subprocess.run([sys.executable, script, out], check=True, stdout=subprocess.DEVNULL)
    for f in sorted(os.listdir(out)):
        p = os.path.join(out, f)
        if f.endswith(".onnx") and os.path.getsize(p) <= ONNX_MAX:
            put("onnx", f, open(p, "rb").read())
    shutil.rmtree(out)


def main():
    shutil.rmtree(SEEDS, ignore_errors=True)
    ex = "docs/examples"
    copy("scenario", f"{ex}/two-boards.toml", f"{ex}/two-boards-calibrated.toml",
         f"{ex}/templated.toml")
    copy("platform", f"{ex}/platforms/two-boards.toml", f"{ex}/platforms/templated.toml",
         "platforms/nx2-gige.toml", "platforms/wifi5-mixed3.toml", "platforms/mixed4-gige.toml")
    copy("calibration", f"{ex}/calibration/cal.toml")
    copy("profile_csv", f"{ex}/calibration/b.cpu.csv")
    copy("mapping_toml", f"{ex}/mappings/alexnet-2way.toml", "mappings/resnet18-2way.toml")
    copy("mapping_json", f"{ex}/mappings/alexnet-2way.json")
    wire_seeds()
    npy_seeds()
    onnx_seeds()


if __name__ == "__main__":
    main()
