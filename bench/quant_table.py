#!/usr/bin/env python3
"""Quantization-core table for BENCHMARKS.md: every fixture, full Fashion-MNIST test set.

Runs `mixq quantize --json` for each configuration (calibration: the first 1024 training images)
and prints a markdown table: top-1, drop vs float, average weight bits, size in bytes (every stored
bit), size ratio and quantize seconds. Also writes the raw rows to bench/results/quant_table.json.

  python3 bench/quant_table.py [--mixq build/mixq] [--models fmnist-resnet,...]
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIGS = [
    # label, extra args
    ("W8A8 minmax per-tensor", ["--search", "uniform", "--wbits", "8", "--method", "minmax", "--granularity", "per_tensor"]),
    ("W8A8 minmax per-channel", ["--search", "uniform", "--wbits", "8", "--method", "minmax"]),
    ("W4A8 minmax", ["--search", "uniform", "--wbits", "4", "--method", "minmax"]),
    ("W4A8 mse", ["--search", "uniform", "--wbits", "4", "--method", "mse"]),
    ("W3A8 mse", ["--search", "uniform", "--wbits", "3", "--method", "mse"]),
    ("W2A8 mse", ["--search", "uniform", "--wbits", "2", "--method", "mse"]),
    ("W5A8 mse", ["--search", "uniform", "--wbits", "5", "--method", "mse"]),
    ("W6A8 mse", ["--search", "uniform", "--wbits", "6", "--method", "mse"]),
] + [
    (f"MixQuant QEM {q} mse", ["--search", "mixquant", "--qem", str(q), "--method", "mse"]) for q in (1.5, 2, 4, 8, 16)
] + [
    (f"MixQuant avg {b}b mse", ["--search", "mixquant", "--budget-bits", str(b), "--method", "mse"]) for b in (3, 4)
] + [
    ("MixQuant avg 4b minmax", ["--search", "mixquant", "--budget-bits", "4", "--method", "minmax"]),
] + [
    (f"MixQuant avg {b}b mse, model ref", ["--search", "mixquant", "--qem-ref", "model", "--budget-bits", str(b),
                                            "--method", "mse"]) for b in (3, 4, 5)
]


def run(mixq, model, args):
    cmd = [mixq, "quantize", model, "--calib", "fmnist:train:1024", "--abits", "8", "--eval", "fmnist:test",
           "--json", "-q"] + args
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:  # e.g. a budget the pinned layers make infeasible: report it, go on
        return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"}
    return json.loads(p.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mixq", default=os.path.join(ROOT, "build", "mixq"))
    ap.add_argument("--models", default="")
    ap.add_argument("--only-configs", default="", help="substring filter on config labels")
    args = ap.parse_args()
    fixtures = json.load(open(os.path.join(ROOT, "models", "fixtures.json")))["models"]
    names = args.models.split(",") if args.models else list(fixtures)
    rows = []
    print("| model | config | top-1 % | drop | avg w bits | size bytes | size ratio | quantize s |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        model = os.path.join(ROOT, "models", fixtures[name]["file"])
        first = True
        top1_float = None
        for label, extra in [c for c in CONFIGS if args.only_configs in c[0]]:
            r = run(args.mixq, model, extra + ([] if first else ["--no-float-eval"]))
            if "error" in r:
                print(f"| {name} | {label} | not run: {r['error'].replace('|', '/')} | | | | | |", flush=True)
                continue
            if first:
                top1_float = r["top1_float"]
                print(f"| {name} | float | {r['top1_float']:.2f} | | 32 | {r['float_bytes']} | 1.000 | |", flush=True)
                first = False
            r["top1_float"] = top1_float
            drop = top1_float - r["top1_quant"]
            print(f"| {name} | {label} | {r['top1_quant']:.2f} | {drop:+.2f} | {r['avg_wbits']:.2f} | "
                  f"{r['size_bytes']} | {r['size_ratio']:.3f} | {r['seconds']:.2f} |", flush=True)
            r.update({"fixture": name, "config": label})
            r.pop("layers", None)
            rows.append(r)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "quant_table.json"), "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
