#!/usr/bin/env python3
"""Issue 18's baseline: the packed runtime against ONNX Runtime fp32 and ORT's own W8A8, one run.

For every model (the five Fashion-MNIST fixtures and 224x224 zoo members: mobilenet_v2, resnet18
from `models/zoo/make_zoo.py --out DIR`), at each --threads value:
  - mixq runtime on the packed fp32 model (`pack --float`), uniform W8A8, uniform W4A8 and a mixed
    plan (MixQuant at a 6-bit weight average, 8-bit activations)
    (`mixq bench`: median of --runs batch-1 runs and --runs64 batch-64 runs; the first quantized
    config also times the libtorch executor on the float ONNX model in the same process),
  - ONNX Runtime on the float model and on ORT's own W8A8 (`quantize_static`: QDQ, per-channel
    int8 weights, uint8 activations, min-max calibration on the same images mixq calibrates on;
    default graph optimisations, so QDQ pairs fuse into QLinearConv / QGemm / MatMulInteger).
Every number is printed next to ORT fp32 of the same model and thread count as a ratio.
Calibration: fixtures 1024 Fashion-MNIST training images; 224 models 64 training images resized
(nearest) to 3x224x224 with ImageNet mean/std (an .npz written here, also the timing input).

ONNX Runtime is a benchmark peer only (never a mixq dependency): run this script with a Python that
has onnxruntime and numpy (bench/.venv, as bench/verify_ort.py makes it, or any other).

  bench/.venv/bin/python bench/rt_baseline.py [--zoo /tmp/rtzoo] [--threads 1,2] [--models ...]
"""
import argparse
import gzip
import json
import os
import subprocess
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIXQ = os.path.join(ROOT, "build", "mixq")
FMNIST = os.environ.get("MIXQ_FMNIST_DIR", "/usr/share/datasets/fashion-mnist")
FIXTURES = ["fmnist-resnet", "fmnist-mobilenetv2", "fmnist-vit", "fmnist-mlp", "fmnist-embedbag"]
ZOO = ["mobilenet_v2", "resnet18"]
CONFIGS = [("fp32", ["--float"]), ("W8A8", ["--wbits", "8", "--abits", "8"]), ("W4A8", ["--wbits", "4", "--abits", "8"]),
           # a mixed plan: MixQuant's per-layer bits (2-8) at a 6-bit weight average, 8-bit activations
           ("mixed", ["--search", "mixquant", "--budget-bits", "6", "--abits", "8"])]


def mixq(*args, env=None):
    p = subprocess.run([MIXQ, *args, "--json", "-q"], capture_output=True, text=True,
                       env=None if env is None else {**os.environ, **env})
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}")
    return json.loads(p.stdout)


def fmnist_train(n):
    with gzip.open(os.path.join(FMNIST, "train-images-idx3-ubyte.gz")) as f:
        return np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)[:n].astype(np.float32) / 255.0


def images224(n):
    x = fmnist_train(n).repeat(8, axis=2).repeat(8, axis=3).repeat(3, axis=1)  # nearest 28 -> 224, 3 channels
    mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
    std = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)
    return ((x - mean) / std).astype(np.float32)


def model_case(m, tmp, x_fm):
    """A runtime benchmark's model m: (onnx path, batch-1 runs, 64 inputs, --data spec, --calib spec).
    224x224 zoo members (from /tmp/rtzoo) calibrate on and run images224(64), written to an .npz in
    tmp; the Fashion-MNIST fixtures use x_fm[:64] (normalised training images) and fmnist: specs."""
    if m in ZOO:
        onnx = os.path.join("/tmp/rtzoo", m + ".onnx")
        x = images224(64)
        data = os.path.join(tmp, m + ".in.npz")
        np.savez(data, **{input_name(onnx): x})
        return onnx, 20, x, data, data
    return os.path.join(ROOT, "models", m + ".onnx"), 200, x_fm[:64], "fmnist:test:64", "fmnist:train:1024"


def input_name(path):
    import onnxruntime as ort
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"]).get_inputs()[0].name


def ort_w8a8(src, dst, x_calib, reduce_range=False):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.name = input_name(src)
            self.it = iter(range(0, len(x_calib), 8))

        def get_next(self):
            i = next(self.it, None)
            return None if i is None else {self.name: x_calib[i:i + 8]}

    # ORT's recommended pre-processing first (shape inference + graph optimisation); falls back to
    # the raw model where pre-processing fails.
    # Per-channel QDQ needs opset >= 13 (DequantizeLinear's axis): older models are converted first.
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization.shape_inference import quant_pre_process
    model = onnx.load(src)
    if max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) < 13:
        src = dst + ".opset13.onnx"
        onnx.save(version_converter.convert_version(model, 13), src)
    pre = dst + ".pre.onnx"
    try:
        quant_pre_process(src, pre)
    except Exception:  # noqa: BLE001 - symbolic shape inference fails on some graphs
        pre = src
    quantize_static(pre, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=reduce_range)


def ort_times(path, threads, x64, runs, runs64):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name

    def med(x, n):
        s.run(None, {name: x})
        w, c = [], []
        for _ in range(n):
            t0, c0 = time.perf_counter(), time.process_time()
            s.run(None, {name: x})
            w.append(time.perf_counter() - t0)
            c.append(time.process_time() - c0)
        return sorted(w)[n // 2], sorted(c)[n // 2]

    return med(x64[:1], runs), med(x64, runs64)


def main():
    global MIXQ
    ap = argparse.ArgumentParser()
    ap.add_argument("--mixq", default=os.path.join(ROOT, "build", "mixq"), help="the mixq binary (e.g. a copy built at another commit)")
    ap.add_argument("--models", default=",".join(FIXTURES + ZOO))
    ap.add_argument("--zoo", default="/tmp/rtzoo", help="make_zoo.py --out directory with mobilenet_v2/resnet18.onnx")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--runs64", type=int, default=5)
    ap.add_argument("--runs224", type=int, default=10, help="batch-1 runs for the 224x224 models")
    ap.add_argument("--runs64-224", type=int, default=3, help="batch-64 runs for the 224x224 models")
    a = ap.parse_args()
    MIXQ = a.mixq
    tmp = tempfile.mkdtemp(prefix="mixq-rt-base-")
    x_fm = ((fmnist_train(1024) - 0.2860) / 0.3530).astype(np.float32)  # fixtures' preprocessing
    print("| model | engine | config | threads | batch-1 ms (cpu ms) | batch-64 img/s (cpu ms/batch) | batch-1 vs ORT fp32 "
          "(cpu) | batch-64 vs ORT fp32 (cpu) | batch-1 vs ORT W8A8 (cpu) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in a.models.split(","):
        zoo = m in ZOO
        onnx = os.path.join(a.zoo, m + ".onnx") if zoo else os.path.join(ROOT, "models", m + ".onnx")
        runs, runs64 = (a.runs224, a.runs64_224) if zoo else (a.runs, a.runs64)
        if zoo:
            x = images224(64)
            data = os.path.join(tmp, m + ".in.npz")
            np.savez(data, **{input_name(onnx): x})
            calib = data
        else:
            x, data, calib = x_fm[:64], "fmnist:test:64", "fmnist:train:1024"
        mxq = {}
        for cfg, args in CONFIGS:
            mxq[cfg] = os.path.join(tmp, f"{m}.{cfg}.mxq")
            mixq("pack", onnx, *args, "-o", mxq[cfg], *([] if cfg == "fp32" else ["--calib", calib]))
        q = os.path.join(tmp, m + ".ort-w8a8.onnx")
        try:
            ort_w8a8(onnx, q, x_fm if not zoo else x)
        except Exception as ex:  # noqa: BLE001 - report and go on
            q = None
            print(f"| {m} | ONNX Runtime | W8A8 quantize_static failed: {ex} | | | | | | |", flush=True)
        for t in [int(v) for v in a.threads.split(",")]:
            rows = []  # engine, config, (b1 wall s, cpu s), (b64 wall s, cpu s)
            o1, o64 = ort_times(onnx, t, x, runs, runs64)
            rows.append(("ONNX Runtime", "fp32", o1, o64))
            q1 = None
            if q:
                try:
                    q1, q64 = ort_times(q, t, x, runs, runs64)
                    rows.append(("ONNX Runtime", "W8A8 (quantize_static QDQ)", q1, q64))
                except Exception as ex:  # noqa: BLE001 - e.g. a model quantize_static writes but ORT rejects
                    print(f"| {m} | ONNX Runtime | W8A8 (quantize_static QDQ) does not load: "
                          f"{str(ex).splitlines()[0][:160]} | | | | | | |", flush=True)
                    q = None
            for cfg, _ in CONFIGS:
                b = mixq("bench", mxq[cfg], "--data", data, "--runs", str(runs), "--runs64", str(runs64), "--threads",
                         str(t), *(["--onnx", onnx] if cfg == "W8A8" else []))
                if "executor" in b:
                    e = b["executor"]
                    rows.insert(0, ("libtorch executor", "fp32", (e["batch1_ms"] / 1e3, e["batch1_cpu_ms"] / 1e3),
                                    (64 / e["batch64_images_per_second"], e["batch64_cpu_ms"] / 1e3)))
                rows.append((f"mixq runtime ({b['isa']})", cfg, (b["batch1_ms"] / 1e3, b["batch1_cpu_ms"] / 1e3),
                             (b["batch64_ms"] / 1e3, b["batch64_cpu_ms"] / 1e3)))
            for eng, cfg, r1, r64 in rows:
                vq = f"{r1[0] / q1[0]:.2f} ({r1[1] / q1[1]:.2f})" if q1 else ""
                print(f"| {m} | {eng} | {cfg} | {t} | {r1[0] * 1e3:.3f} ({r1[1] * 1e3:.3f}) | {64 / r64[0]:.0f} "
                      f"({r64[1] * 1e3:.1f}) | {r1[0] / o1[0]:.2f} ({r1[1] / o1[1]:.2f}) | {o64[0] / r64[0]:.2f} "
                      f"({o64[1] / r64[1]:.2f}) | {vq} |", flush=True)


if __name__ == "__main__":
    main()
