#!/usr/bin/env python3
"""Issue 18's accuracy check: the packed runtime's top-1 against the fake-quant simulation's, same plan.

For every fixture and config (uniform W8A8, uniform W4A8, a mixed MixQuant plan at a 6-bit weight
average; 8-bit activations; calibration on the first 1024 training images), on all 10,000
Fashion-MNIST test images:
  - simulation: `mixq quantize MODEL ... --eval fmnist:test` (the QDQ model on the libtorch executor),
  - runtime: `mixq pack MODEL ...` (the same plan and calibration), then `mixq run X.mxq --data fmnist:test`.
Prints one Markdown row per (fixture, config) with both top-1 and their difference in points.

  python3 bench/rt_accuracy.py [--mixq build/mixq] [--models ...] [--samples 10000]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
CONFIGS = [("W8A8", ["--wbits", "8", "--abits", "8"]), ("W4A8", ["--wbits", "4", "--abits", "8"]),
           ("mixed", ["--search", "mixquant", "--budget-bits", "6", "--abits", "8"])]
FIXTURES = ["fmnist-resnet", "fmnist-mobilenetv2", "fmnist-vit", "fmnist-mlp", "fmnist-embedbag"]


def run(mixq, *args):
    p = subprocess.run([mixq, *args, "--json", "-q"], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])}: {p.stderr.strip()}")
    return json.loads(p.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mixq", default=os.path.join(ROOT, "build", "mixq"))
    ap.add_argument("--models", default=",".join(FIXTURES))
    ap.add_argument("--samples", type=int, default=10000)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="mixq-rt-acc-")
    test = f"fmnist:test:{a.samples}"
    print("| model | config | avg weight bits | simulation top-1 | runtime top-1 | runtime - simulation (points) | "
          "integer layers |")
    print("|---|---|---|---|---|---|---|")
    for m in a.models.split(","):
        onnx = os.path.join(ROOT, "models", m + ".onnx")
        for cfg, args in CONFIGS:
            common = [*args, "--calib", "fmnist:train:1024"]
            q = run(a.mixq, "quantize", onnx, *common, "--eval", test, "-o", os.path.join(tmp, f"{m}.{cfg}.onnx"))
            sim = q["top1_quant"]
            mxq = os.path.join(tmp, f"{m}.{cfg}.mxq")
            pk = run(a.mixq, "pack", onnx, *common, "-o", mxq)
            r = run(a.mixq, "run", mxq, "--data", test)
            print(f"| {m} | {cfg} | {pk['avg_wbits']:.2f} | {sim:.2f} | {r['top1']:.2f} | {r['top1'] - sim:+.2f} | "
                  f"{r['integer_layers']}/{r['layers']} |", flush=True)


if __name__ == "__main__":
    main()
