#!/usr/bin/env python3
"""Before/after of a runtime change next to ONNX Runtime, side by side in one run: batch 1, one
thread, CPU time. For each model: ORT fp32 and ORT's W8A8 (bench/rt_baseline.py's ort_w8a8:
quant_pre_process + quantize_static, QDQ, per-channel), and `mixq bench` of the same W8A8 / W4A8
.mxq (packed with AFTER) with the BEFORE and AFTER binaries, all alternating for ROUNDS rounds;
prints the minimum over rounds of each round's median and the ratios to ORT.

  python bench/rt_ab_ort.py BEFORE AFTER fmnist-resnet,fmnist-mobilenetv2,mobilenet_v2,resnet18 5

(a Python with onnxruntime and numpy; 224x224 zoo models from /tmp/rtzoo as in rt_baseline.py).
"""
import os, sys, tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np
import rt_baseline as rb
from rt_ab import run
before, after = sys.argv[1], sys.argv[2]
models = sys.argv[3].split(","); rounds = int(sys.argv[4])
tmp = tempfile.mkdtemp(prefix="mixq-rt-ab-ort-")
x_fm = ((rb.fmnist_train(1024) - 0.2860) / 0.3530).astype(np.float32)
print("| model | ORT fp32 | ORT W8A8 | mixq W8A8 before | mixq W8A8 after | W4A8 before | W4A8 after | after W8A8 / ORT fp32 | after W8A8 / ORT W8A8 | before W8A8 / ORT fp32 | before W8A8 / ORT W8A8 |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for m in models:
    zoo = m in rb.ZOO
    onnx, runs, x, data, calib = rb.model_case(m, tmp, x_fm)
    mx = {}
    for cfg, args in rb.CONFIGS:
        if cfg not in ("W8A8", "W4A8"): continue
        mx[cfg] = os.path.join(tmp, f"{m}.{cfg}.mxq")
        run(after, "pack", onnx, *args, "-o", mx[cfg], "--calib", calib)
    q = os.path.join(tmp, m + ".ort-w8a8.onnx")
    rb.ort_w8a8(onnx, q, x_fm if not zoo else x)
    res = {k: [] for k in ("of", "oq", "b8", "a8", "b4", "a4")}
    for _ in range(rounds):
        res["of"].append(rb.ort_times(onnx, 1, x, runs, 1)[0][1] * 1e3)
        res["oq"].append(rb.ort_times(q, 1, x, runs, 1)[0][1] * 1e3)
        for key, binary, cfg in (("b8", before, "W8A8"), ("a8", after, "W8A8"), ("b4", before, "W4A8"), ("a4", after, "W4A8")):
            r = run(binary, "bench", mx[cfg], "--data", data, "--runs", str(runs), "--runs64", "1", "--threads", "1")
            res[key].append(r["batch1_cpu_ms"])
    v = {k: min(x) for k, x in res.items()}
    print(f"| {m} | {v['of']:.3f} | {v['oq']:.3f} | {v['b8']:.3f} | {v['a8']:.3f} | {v['b4']:.3f} | {v['a4']:.3f} | "
          f"{v['a8']/v['of']:.2f} | {v['a8']/v['oq']:.2f} | {v['b8']/v['of']:.2f} | {v['b8']/v['oq']:.2f} |", flush=True)
