#!/usr/bin/env python3
"""N-way version of rt_ab.py for batch 1: the same .mxq files (packed with the last binary) benched
by several mixq binaries, alternating for ROUNDS rounds; one thread, CPU ms, min and median over
rounds, and each binary over the first.

  python bench/rt_abn.py base=/tmp/mixq_a,step1=/tmp/mixq_b,after=build/mixq MODELS ROUNDS [CONFIGS]

(a Python with numpy; MODELS as in rt_ab.py; CONFIGS default W8A8). A binary can be a wrapper script
that sets an environment switch (e.g. MIXQ_RT_GEMM_EPI=0) to compare a path within one build.
"""
import os, sys, tempfile, json, statistics
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np
import rt_baseline as rb
from rt_ab import run
bins = sys.argv[1].split(",")          # name=path,...
models = sys.argv[2].split(",")
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
cfgs = (sys.argv[4] if len(sys.argv) > 4 else "W8A8").split(",")
tmp = tempfile.mkdtemp(prefix="mixq-rt-abn-")
names = [b.split("=")[0] for b in bins]; paths = [b.split("=")[1] for b in bins]
print("| model | cfg | " + " | ".join(f"{n} b1 cpu ms (min/med)" for n in names) + " | " + " | ".join(f"{n}/{names[0]}" for n in names[1:]) + " |")
for m in models:
    zoo = m in rb.ZOO
    onnx = os.path.join("/tmp/rtzoo", m + ".onnx") if zoo else os.path.join(rb.ROOT, "models", m + ".onnx")
    if zoo:
        data = os.path.join(tmp, m + ".in.npz"); np.savez(data, **{rb.input_name(onnx): rb.images224(64)})
        calib, runs = data, 10
    else:
        data, calib, runs = "fmnist:test:64", "fmnist:train:1024", 100
    for cfg, args in rb.CONFIGS:
        if cfg not in cfgs: continue
        mxq = os.path.join(tmp, f"{m}.{cfg}.mxq")
        run(paths[-1], "pack", onnx, *args, "-o", mxq, *([] if cfg == "fp32" else ["--calib", calib]))
        res = {n: [] for n in names}
        for _ in range(rounds):
            for n, p in zip(names, paths):
                r = run(p, "bench", mxq, "--data", data, "--runs", str(runs), "--runs64", "1", "--threads", "1")
                res[n].append(r["batch1_cpu_ms"])
        mins = {n: min(v) for n, v in res.items()}; meds = {n: statistics.median(v) for n, v in res.items()}
        print(f"| {m} | {cfg} | " + " | ".join(f"{mins[n]:.3f} / {meds[n]:.3f}" for n in names) + " | " +
              " | ".join(f"{mins[n]/mins[names[0]]:.2f} / {meds[n]/meds[names[0]]:.2f}" for n in names[1:]) + " |", flush=True)
