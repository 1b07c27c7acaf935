#!/usr/bin/env python3
"""8-bit vs 7-bit weights on a CPU without VNNI, next to ONNX Runtime, side by side in one run:
batch 1, one thread, process CPU ms (minimum over rounds of each round's median).

Why: on AVX2 an exact uint8 x int8 product needs vpmaddwd on widened pairs, while vpmaddubsw (twice
the multiply-adds per instruction) saturates its int16 pair sums unless the weights fit 7 bits
(2 x 255 x 64 <= 32767). mixq's runtime takes the vpmaddubsw path (PackedB::narrow) for every weight
in [-64, 63], i.e. for --wbits 7 and below; ONNX Runtime's AVX2 kernels use vpmaddubsw for 8-bit
weights too (its quantization guide recommends reduce_range, 7-bit weights, on such CPUs). Columns:
ORT fp32, ORT W8A8 (quantize_static QDQ per-channel, as rt_baseline.py), ORT W8A8 with
reduce_range=True, mixq W8A8 and W7A8 (.mxq, `mixq bench`); for the Fashion-MNIST fixtures also the
simulated top-1 of mixq W8A8 / W7A8 on the 10,000 test images.

  /work/ortvenv/bin/python bench/rt_avx2_7bit.py [MIXQ] [models] [rounds]
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
import rt_baseline as rb  # noqa: E402
from rt_ab import run  # noqa: E402

mixq = sys.argv[1] if len(sys.argv) > 1 else os.path.join(rb.ROOT, "build", "mixq")
models = (sys.argv[2] if len(sys.argv) > 2 else "fmnist-resnet,fmnist-mobilenetv2,fmnist-vit,mobilenet_v2,resnet18").split(",")
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
tmp = tempfile.mkdtemp(prefix="mixq-7bit-")
x_fm = ((rb.fmnist_train(1024) - 0.2860) / 0.3530).astype(np.float32)
cpu = [l.split(":", 1)[1].strip() for l in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
       if l.startswith(("Model name", "CPU family", "Model:"))]
print("CPU:", ", ".join(cpu))
print("| model | ORT fp32 | ORT W8A8 | ORT W8A8 reduce_range | mixq W8A8 | mixq W7A8 | mixq W7A8 / ORT W8A8 | mixq W7A8 / ORT reduce_range | mixq W7A8 / ORT fp32 | top-1 W8A8 / W7A8 |")
print("|---|---|---|---|---|---|---|---|---|---|")
for m in models:
    zoo = m in rb.ZOO
    onnx, runs, x, data, calib = rb.model_case(m, tmp, x_fm)
    mx, top1 = {}, {}
    for w in ("8", "7"):
        mx[w] = os.path.join(tmp, f"{m}.w{w}.mxq")
        run(mixq, "pack", onnx, "--wbits", w, "--abits", "8", "-o", mx[w], "--calib", calib)
        if not zoo:
            j = run(mixq, "quantize", onnx, "--wbits", w, "--abits", "8", "--calib", calib, "--eval", "fmnist:test",
                    "-o", os.path.join(tmp, f"{m}.w{w}.onnx"))
            top1[w] = j["top1_quant"]
    q8, q7 = os.path.join(tmp, m + ".ort8.onnx"), os.path.join(tmp, m + ".ort7.onnx")
    rb.ort_w8a8(onnx, q8, x if zoo else x_fm)
    rb.ort_w8a8(onnx, q7, x if zoo else x_fm, reduce_range=True)
    res = {k: [] for k in ("of", "o8", "o7", "m8", "m7")}
    for _ in range(rounds):
        res["of"].append(rb.ort_times(onnx, 1, x, runs, 1)[0][1] * 1e3)
        res["o8"].append(rb.ort_times(q8, 1, x, runs, 1)[0][1] * 1e3)
        res["o7"].append(rb.ort_times(q7, 1, x, runs, 1)[0][1] * 1e3)
        for key, w in (("m8", "8"), ("m7", "7")):
            r = run(mixq, "bench", mx[w], "--data", data, "--runs", str(runs), "--runs64", "1", "--threads", "1")
            res[key].append(r["batch1_cpu_ms"])
    v = {k: min(t) for k, t in res.items()}
    acc = f"{top1['8']:.2f} / {top1['7']:.2f}" if top1 else "-"
    print(f"| {m} | {v['of']:.3f} | {v['o8']:.3f} | {v['o7']:.3f} | {v['m8']:.3f} | {v['m7']:.3f} | "
          f"{v['m7']/v['o8']:.2f} | {v['m7']/v['o7']:.2f} | {v['m7']/v['of']:.2f} | {acc} |", flush=True)
