#!/usr/bin/env python3
"""Before/after of a runtime change, side by side in one run: the same .mxq files benched by two
mixq binaries (e.g. a copy of build/mixq made before the change, and the new build), alternating
A, B, A, B, ... --rounds times; median batch-1 ms and batch-64 img/s of each, and B/A, by wall time
and by process CPU time (one thread on a shared machine: CPU time leaves out time descheduled).

  python3 bench/rt_ab.py --before /tmp/mixq_before [--after build/mixq] [--models fmnist-mobilenetv2,...]
      [--zoo /tmp/rtzoo] [--configs W8A8,W4A8] [--threads 1]

Packs with --after (the file format is the same); 224x224 zoo models calibrate on and run 64
Fashion-MNIST images resized to 3x224x224 (bench/rt_baseline.py's images224).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rt_baseline as rb  # noqa: E402

ROOT = rb.ROOT


def run(binary, *args):
    p = subprocess.run([binary, *args, "--json", "-q"], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip())
    return json.loads(p.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", default=os.path.join(ROOT, "build", "mixq"))
    ap.add_argument("--models", default="fmnist-mobilenetv2,fmnist-resnet,mobilenet_v2")
    ap.add_argument("--zoo", default="/tmp/rtzoo")
    ap.add_argument("--configs", default="W8A8,W4A8")
    ap.add_argument("--threads", default="1")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--runs64", type=int, default=5)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="mixq-rt-ab-")
    print("| model | config | threads | before batch-1 ms (cpu) | after batch-1 ms (cpu) | after/before (cpu) | "
          "before batch-64 img/s | after batch-64 img/s | after/before (cpu) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in a.models.split(","):
        zoo = m in rb.ZOO
        onnx = os.path.join(a.zoo, m + ".onnx") if zoo else os.path.join(ROOT, "models", m + ".onnx")
        if zoo:
            data = os.path.join(tmp, m + ".in.npz")
            np.savez(data, **{rb.input_name(onnx): rb.images224(64)})
            calib, runs, runs64 = data, max(a.runs // 10, 3), max(a.runs64 // 2, 3)
        else:
            data, calib, runs, runs64 = "fmnist:test:64", "fmnist:train:1024", a.runs, a.runs64
        for cfg, args in rb.CONFIGS:
            if cfg not in a.configs.split(","):
                continue
            mxq = os.path.join(tmp, f"{m}.{cfg}.mxq")
            run(a.after, "pack", onnx, *args, "-o", mxq, *([] if cfg == "fp32" else ["--calib", calib]))
            for t in a.threads.split(","):
                res = {"A": [], "B": []}
                for _ in range(a.rounds):
                    for key, binary in (("A", a.before), ("B", a.after)):
                        res[key].append(run(binary, "bench", mxq, "--data", data, "--runs", str(runs), "--runs64",
                                            str(runs64), "--threads", t))
                def md(v, key):
                    return sorted(r[key] for r in v)[len(v) // 2]

                A, B = res["A"], res["B"]
                a1, b1, ac1, bc1 = md(A, "batch1_ms"), md(B, "batch1_ms"), md(A, "batch1_cpu_ms"), md(B, "batch1_cpu_ms")
                a64, b64 = md(A, "batch64_images_per_second"), md(B, "batch64_images_per_second")
                ac64, bc64 = md(A, "batch64_cpu_ms"), md(B, "batch64_cpu_ms")
                print(f"| {m} | {cfg} | {t} | {a1:.3f} ({ac1:.3f}) | {b1:.3f} ({bc1:.3f}) | {b1 / a1:.2f} ({bc1 / ac1:.2f}) | "
                      f"{a64:.0f} | {b64:.0f} | {b64 / a64:.2f} ({ac64 / bc64:.2f}) |", flush=True)


if __name__ == "__main__":
    main()
