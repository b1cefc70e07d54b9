#!/usr/bin/env python3
"""Checks a split written by `dicesim split MODEL --out DIR` with ONNX Runtime.

Usage: ort_check.py MODEL.onnx DIR [DIR...]   (several splits of one model in one run)

Every sub-model DIR/part<i>.onnx must pass `onnx.checker.check_model(full_check=True)`;
the sub-models, chained as plan.json says, must give the whole model's outputs on the same
random input: max|a - b| / max|ref| <= 1e-4 for every graph output. Exits non-zero, with
one line saying what is wrong, otherwise.
"""

import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort

TOL = 1e-4

NP_TYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "int32": np.int32}


def session(path_or_bytes):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(path_or_bytes, so, providers=["CPUExecutionProvider"])


def fail(msg):
    print(f"ort_check: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(model_path, out_dir):
    with open(os.path.join(out_dir, "plan.json")) as f:
        plan = json.load(f)

    for p in plan["partitions"]:
        path = os.path.join(out_dir, p["file"])
        try:
            onnx.checker.check_model(onnx.load(path), full_check=True)
        except Exception as e:  # noqa: BLE001 - any checker failure is a test failure
            fail(f"{path}: onnx.checker: {str(e).strip().splitlines()[0]}")

    rng = np.random.default_rng(0)
    feeds = {}
    for t in plan["graph_inputs"]:
        dt = NP_TYPES.get(t["dtype"], np.float32)
        feeds[t["name"]] = rng.uniform(-1.0, 1.0, size=t["shape"]).astype(dt)

    whole = session(model_path)
    names = [o.name for o in whole.get_outputs()]
    ref = dict(zip(names, whole.run(None, feeds)))

    avail = dict(feeds)
    for p in plan["partitions"]:
        path = os.path.join(out_dir, p["file"])
        try:
            sess = session(path)
        except Exception as e:  # noqa: BLE001
            fail(f"{path}: ONNX Runtime cannot load it: {str(e).strip().splitlines()[0]}")
        ins = {}
        for i in sess.get_inputs():
            if i.name not in avail:
                fail(f"{path}: needs '{i.name}', which no earlier partition produced")
            ins[i.name] = avail[i.name]
        outs = [o.name for o in sess.get_outputs()]
        for name, val in zip(outs, sess.run(None, ins)):
            avail[name] = val

    worst = 0.0
    for t in plan["graph_outputs"]:
        name = t["name"]
        if name not in ref:
            fail(f"the whole model has no output '{name}'")
        if name not in avail:
            fail(f"no sub-model produced graph output '{name}'")
        a, b = np.asarray(ref[name], np.float64), np.asarray(avail[name], np.float64)
        if a.shape != b.shape:
            fail(f"output '{name}': whole model gives shape {a.shape}, sub-models {b.shape}")
        scale = np.abs(a).max() if a.size else 0.0
        diff = np.abs(a - b).max() if a.size else 0.0
        err = diff / scale if scale > 0 else diff
        if not np.isfinite(err):
            fail(f"output '{name}': non-finite values")
        print(f"ort_check: {name} {list(a.shape)} max relative error {err:.3e}")
        worst = max(worst, err)
    if worst > TOL:
        fail(f"{out_dir}: max relative error {worst:.3e} > {TOL:g} ({len(plan['partitions'])} partitions)")
    print(f"ort_check: {out_dir}: ok, {len(plan['partitions'])} partitions, max relative error {worst:.3e}")


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: ort_check.py MODEL.onnx DIR [DIR...]")
    for out_dir in sys.argv[2:]:
        check(sys.argv[1], out_dir)


if __name__ == "__main__":
    main()
