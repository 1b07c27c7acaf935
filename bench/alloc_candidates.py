#!/usr/bin/env python3
"""Activation-bit and granularity candidates in allocation (BENCHMARKS.md, "Budgeted allocation").

For each model: one sensitivity table with activation candidates (4 bits below the plan's 8) and
per-group granularity candidates (`--group-candidates G`, default 32), measured by `mixq pareto`
(timed), then `mixq quantize --json` on the full Fashion-MNIST test set for
  BOPs budgets at 1.0, 0.75 and 0.5 x the BOPs of uniform W4A8:
    uniform W4A8, W3A8, W2A8 and W4A4 (the uniform plans nearest those budgets),
    the integer program over weight bits only (activations stay at 8: the table's activation
    candidates are not used) and over weight and activation bits;
  byte budgets at the sizes of uniform W2, W3 and W4 (per-channel): the integer program with and
    without the per-group options.
Every run uses --method mse, --abits 8, --signal kl, calibration on the first 1024 training images
and the same cached table (256 samples). Writes bench/results/alloc_candidates.json after every run
and prints markdown tables.

  /usr/bin/python3 bench/alloc_candidates.py [--models fmnist-resnet,...] [--group 32]
"""
import argparse
import json
import os
import subprocess
import time

from alloc_curves import quantize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RES = os.path.join(ROOT, "bench", "results")
OUT = os.path.join(RES, "alloc_candidates.json")
CALIB = "fmnist:train:1024"


def save(rows):
    os.makedirs(RES, exist_ok=True)
    with open(OUT + ".tmp", "w") as f:
        json.dump(rows, f, indent=1)
    os.replace(OUT + ".tmp", OUT)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mixq", default=os.path.join(ROOT, "build", "mixq"))
    ap.add_argument("--models", default="fmnist-resnet,fmnist-vit,fmnist-mobilenetv2")
    ap.add_argument("--group", type=int, default=32)
    ap.add_argument("--print-only", action="store_true")
    args = ap.parse_args()
    rows = json.load(open(OUT)) if os.path.exists(OUT) else []

    def find(model, kind, label, budget):
        return next((r for r in rows if (r["model"], r["kind"], r["label"], r["budget"]) == (model, kind, label, budget)), None)

    def run(model, kind, label, budget, extra):
        r = find(model, kind, label, budget)
        if r is None and not args.print_only:
            r = quantize(args.mixq, os.path.join(ROOT, "models", model + ".onnx"), extra)
            r.update({"model": model, "kind": kind, "label": label, "budget": budget})
            rows.append(r)
            save(rows)
            print(model, kind, label, budget, r.get("top1_quant"), r.get("bops"), r.get("size_bytes"), r.get("error", ""),
                  flush=True)
        return r

    for name in args.models.split(","):
        model = os.path.join(ROOT, "models", name + ".onnx")
        tab = os.path.join(RES, name + ".cand.sens.json")
        if find(name, "table", "", None) is None and not args.print_only:
            t0 = time.time()
            p = subprocess.run([args.mixq, "pareto", model, "--calib", CALIB, "--method", "mse", "--table-out", tab,
                                "--group-candidates", str(args.group), "--json", "-q", "--threads", "2"],
                               capture_output=True, text=True)
            if p.returncode != 0:
                raise SystemExit(p.stderr)
            j = json.loads(p.stdout)
            rows.append({"model": name, "kind": "table", "label": "", "budget": None, "seconds_wall": time.time() - t0,
                         "sensitivity_seconds": j["sensitivity_seconds"]})
            save(rows)
        uni = {}
        for w, a in ((4, 8), (3, 8), (2, 8), (4, 4)):
            uni[(w, a)] = run(name, "uniform", f"W{w}A{a}", None, ["--search", "uniform", "--wbits", str(w), "--abits", str(a)])
        if args.print_only and not uni[(4, 8)]:
            continue
        base = uni[(4, 8)]["bops"]
        for frac in (1.0, 0.75, 0.5):
            b = base * frac
            common = ["--search", "ip", "--signal", "kl", "--table", tab, "--budget-bops", f"{b:.0f}"]
            run(name, "bops", "IP weights", frac, common + ["--act-candidates", "none"])
            run(name, "bops", "IP weights+acts", frac, common)
        sizes = {"W2": uni[(2, 8)]["size_bytes"], "W3": uni[(3, 8)]["size_bytes"], "W4": uni[(4, 8)]["size_bytes"]}
        for label, size in sizes.items():
            common = ["--search", "ip", "--signal", "kl", "--table", tab, "--budget-bytes", str(size)]
            run(name, "bytes", "IP per-channel", label, common)
            run(name, "bytes", f"IP + g{args.group}", label, common + ["--group-candidates", str(args.group)])

    for name in args.models.split(","):
        r = find(name, "table", "", None)
        if r:
            print(f"\n{name}: table with candidates {r['sensitivity_seconds']:.1f} s")
    print("\n| model | BOPs budget (x W4A8) | plan | top-1 % | GBOPs | avg w bits | layers with 4-bit inputs |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if r["kind"] not in ("uniform", "bops") or "top1_quant" not in r:
            continue
        a4 = sum(1 for L in r.get("layers", []) if L.get("abits") == 4)
        budget = f"{r['budget']:.2f}" if r["kind"] == "bops" else ""
        print(f"| {r['model']} | {budget} | {r['label']} | {r['top1_quant']:.2f} | {r['bops'] / 1e9:.3f} | "
              f"{r['avg_wbits']:.2f} | {a4} |")
    print("\n| model | byte budget | plan | top-1 % | size bytes | avg w bits | per-group layers |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if r["kind"] != "bytes" or "top1_quant" not in r:
            continue
        g = sum(1 for L in r.get("layers", []) if L.get("granularity") == "per_group")
        print(f"| {r['model']} | {r['budget']} | {r['label']} | {r['top1_quant']:.2f} | {r['size_bytes']} | "
              f"{r['avg_wbits']:.2f} | {g} |")


if __name__ == "__main__":
    main()
