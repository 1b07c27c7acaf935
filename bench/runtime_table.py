#!/usr/bin/env python3
"""Side-by-side latency/throughput table for the packed runtime (BENCHMARKS.md, "Packed runtime").

For every fixture: the libtorch executor on the float ONNX model, and the runtime on the packed
float model (fp32), uniform W8A8, uniform W4A8 and a MixQuant plan at a 4-bit average, all with
`mixq bench` (median of --runs batch-1 runs and --runs64 batch-64 runs, wall and CPU time); with
--ort, ONNX Runtime on the float model and on mixq's W4A8 QDQ export. Also top-1 of `mixq run`
against the fake-quant simulation of the same plan. --configs picks configurations by name;
--lowbit-ab adds, under each quantized row, the same .mxq benched with MIXQ_LOWBIT=0 (int8 / float
copies of every weight: the runtime before the low-bit kernels), in the same run.

  python3 bench/runtime_table.py [--threads 1] [--models fmnist-resnet,...] [--configs W4A8] [--lowbit-ab] [--ort]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIXQ = os.path.join(ROOT, "build", "mixq")
MODELS = ["fmnist-resnet", "fmnist-mobilenetv2", "fmnist-vit", "fmnist-mlp", "fmnist-embedbag"]
CONFIGS = [  # name, pack arguments
    ("fp32", ["--float"]),
    ("W8A8", ["--wbits", "8", "--abits", "8"]),
    ("W4A8", ["--wbits", "4", "--abits", "8"]),
    ("mixed (MixQuant avg 4)", ["--search", "mixquant", "--budget-bits", "4", "--method", "mse"]),
]


def mixq(*args, env=None):
    p = subprocess.run([MIXQ, *args, "--json", "-q"], capture_output=True, text=True,
                       env=None if env is None else {**os.environ, **env})
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}")
    return json.loads(p.stdout)


def ort_times(path, threads, runs, runs64):
    import numpy as np
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    x64 = np.random.default_rng(0).standard_normal((64, 1, 28, 28)).astype(np.float32)
    x1 = x64[:1]

    def med(x, n):
        s.run(None, {name: x})
        w, c = [], []
        for _ in range(n):
            t0, c0 = time.perf_counter(), time.process_time()
            s.run(None, {name: x})
            w.append(time.perf_counter() - t0)
            c.append(time.process_time() - c0)
        return sorted(w)[n // 2], sorted(c)[n // 2]

    return med(x1, runs), med(x64, runs64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--runs64", type=int, default=10)
    ap.add_argument("--ort", action="store_true", help="also time ONNX Runtime (pip install onnxruntime)")
    ap.add_argument("--eval", default="fmnist:test")
    ap.add_argument("--configs", default=",".join(c for c, _ in CONFIGS), help="comma-separated config names")
    ap.add_argument("--lowbit-ab", action="store_true", help="also bench each quantized .mxq with MIXQ_LOWBIT=0")
    a = ap.parse_args()
    configs = [c for c in CONFIGS if c[0] in a.configs.split(",")]
    tmp = tempfile.mkdtemp(prefix="mixq-rt-bench-")
    th = ["--threads", str(a.threads)]
    print("| model | engine | config | batch-1 ms (cpu ms) | batch-64 img/s (cpu ms/batch) | vs executor fp32 batch 1 | "
          "top-1 runtime | top-1 simulation | file bytes / plan bytes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in a.models.split(","):
        onnx = os.path.join(ROOT, "models", m + ".onnx")
        exec_b1 = None
        for i, (cfg, args) in enumerate(configs):
            mxq = os.path.join(tmp, f"{m}.{i}.mxq")
            ev = [] if cfg == "fp32" else ["--eval", a.eval]
            try:
                p = mixq("pack", onnx, *args, *ev, "-o", mxq, "--calib", "fmnist:train:1024")
            except RuntimeError as ex:  # e.g. a budget the pinned layers make infeasible
                print(f"| {m} | mixq runtime | {cfg} | not packed: {ex} | | | | | |", flush=True)
                continue
            b = mixq("bench", mxq, "--runs", str(a.runs), "--runs64", str(a.runs64), *th,
                     *(["--onnx", onnx] if exec_b1 is None else []))
            if exec_b1 is None:
                e = b["executor"]
                exec_b1 = e["batch1_ms"]
                print(f"| {m} | libtorch executor | fp32 | {e['batch1_ms']:.3f} ({e['batch1_cpu_ms']:.3f}) | "
                      f"{e['batch64_images_per_second']:.0f} ({e['batch64_cpu_ms']:.1f}) | 1.00 | | | |", flush=True)
            r = mixq("run", mxq, "--data", a.eval, *th)
            sim = f"{p['top1_sim']:.2f}" if "top1_sim" in p else ""
            print(f"| {m} | mixq runtime ({b['isa']}) | {cfg} | {b['batch1_ms']:.3f} ({b['batch1_cpu_ms']:.3f}) | "
                  f"{b['batch64_images_per_second']:.0f} ({b['batch64_cpu_ms']:.1f}) | {b['batch1_ms'] / exec_b1:.2f} | "
                  f"{r['top1']:.2f} | {sim} | {p['file_bytes']} / {p['predicted_bytes']} = {p['ratio_to_predicted']:.4f} |",
                  flush=True)
            if a.lowbit_ab and cfg != "fp32":
                b0 = mixq("bench", mxq, "--runs", str(a.runs), "--runs64", str(a.runs64), *th, env={"MIXQ_LOWBIT": "0"})
                r0 = mixq("run", mxq, "--data", a.eval, *th, env={"MIXQ_LOWBIT": "0"})
                print(f"| {m} | mixq runtime ({b0['isa']}), MIXQ_LOWBIT=0 | {cfg} | {b0['batch1_ms']:.3f} "
                      f"({b0['batch1_cpu_ms']:.3f}) | {b0['batch64_images_per_second']:.0f} ({b0['batch64_cpu_ms']:.1f}) | "
                      f"{b0['batch1_ms'] / exec_b1:.2f} | {r0['top1']:.2f} | | weight bytes held {r['weight_bytes']} "
                      f"vs {r0['weight_bytes']} |", flush=True)
        if a.ort:
            try:
                qdq = os.path.join(tmp, m + ".w4a8.onnx")
                mixq("quantize", onnx, "--wbits", "4", "--abits", "8", "-o", qdq)
                for label, path in (("fp32", onnx), ("W4A8 QDQ export", qdq)):
                    (w1, c1), (w64, c64) = ort_times(path, a.threads, a.runs, a.runs64)
                    print(f"| {m} | ONNX Runtime | {label} | {w1 * 1e3:.3f} ({c1 * 1e3:.3f}) | {64 / w64:.0f} ({c64 * 1e3:.1f}) | "
                          f"{w1 * 1e3 / exec_b1:.2f} | | | |", flush=True)
            except Exception as ex:  # noqa: BLE001 - report and go on with the other models
                print(f"| {m} | ONNX Runtime | unavailable: {ex} | | | | | | |", flush=True)


if __name__ == "__main__":
    main()
