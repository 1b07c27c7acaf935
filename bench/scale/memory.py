#!/usr/bin/python3
"""Time and peak memory of each step on ImageNet-size models (issue 24, item 1).

  /usr/bin/python3 bench/scale/memory.py [--models bench/results/scale/resnet50.onnx,...]
      [--data bench/results/scale/inputs32.npy] [--sens-extra "--sens-bits 2,4,8"]

For each model: `mixq info`, `mixq eval --data`, `mixq quantize --wbits 4 --abits 8` (uniform, range
calibration on --data) and `mixq pareto` (the sensitivity table on --data, settings named in the
table), each one process on all cores. Peak RSS is the kernel's ru_maxrss of the whole process
(libraries included: ~170 MB before any model on this build), as `--json`'s peak_rss_mb reports it.
Rows are appended to bench/results/scale/memory.jsonl; the markdown table goes to stdout.
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

from common import MIXQ, RESULTS, cpu_name

ap = argparse.ArgumentParser()
ap.add_argument("--models", default=",".join(os.path.join(RESULTS, m + ".onnx")
                                             for m in ("resnet50", "vit_b_16")))
ap.add_argument("--data", default=os.path.join(RESULTS, "inputs32.npy"))
ap.add_argument("--sens-extra", default="--sens-bits 2,4,8 --act-candidates none")
ap.add_argument("--steps", default="info,eval,quantize,pareto")
ap.add_argument("--mixq", default=MIXQ)
ap.add_argument("--out", default=os.path.join(RESULTS, "memory.jsonl"))
a = ap.parse_args()
cpu = cpu_name()
rows = []
with tempfile.TemporaryDirectory() as d:
    for model in a.models.split(","):
        fsize = os.path.getsize(model) / 2**20
        steps = {
            "info": ["info", model],
            "eval": ["eval", model, "--data", a.data],
            "quantize": ["quantize", model, "--calib", a.data, "--wbits", "4", "--abits", "8", "-o",
                         os.path.join(d, "q.onnx")],
            "pareto": ["pareto", model, "--calib", a.data, "--sens-samples", "0", "--table-out", os.path.join(d, "t.json"),
                       "-o", os.path.join(d, "f.json")] + a.sens_extra.split(),
        }
        for step in a.steps.split(","):
            if os.path.exists(os.path.join(d, "t.json")):
                os.remove(os.path.join(d, "t.json"))
            cmd = [a.mixq] + steps[step] + ["--json", "-q"]
            t0 = time.time()
            p = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.time() - t0
            if p.returncode:
                raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
            rss = json.loads(p.stdout)["peak_rss_mb"]
            row = {"model": os.path.basename(model), "step": step, "wall_s": wall, "peak_rss_mb": rss,
                   "file_mb": fsize, "ratio": rss / fsize, "cpu": cpu,
                   "settings": a.sens_extra if step == "pareto" else ""}
            rows.append(row)
            print(f"{row['model']} {step}: {wall:.1f} s, peak RSS {rss:.0f} MB ({rss / fsize:.2f}x the file)", flush=True)
            with open(a.out, "a") as f:
                f.write(json.dumps(row) + "\n")
print(f"\nCPU: {cpu}; data {a.data}\n")
print("| model | float MB | step | wall s | peak RSS MB | x float size |")
print("|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['model']} | {r['file_mb']:.0f} | {r['step']}{' (' + r['settings'] + ')' if r['settings'] else ''} | "
          f"{r['wall_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['ratio']:.2f} |")
