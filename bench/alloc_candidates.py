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
    without the per-group options;
  HAGO (`--search hago`, measured greedy) and the IP at the uniform W3/W4 plans' average bits.
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

    def run(model, kind, label, budget, extra, abits=8):
        r = find(model, kind, label, budget)
        if r is None and not args.print_only:
            r = quantize(args.mixq, os.path.join(ROOT, "models", model + ".onnx"), extra, abits)
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
            uni[(w, a)] = run(name, "uniform", f"W{w}A{a}", None, ["--search", "uniform", "--wbits", str(w)], a)
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

        # HAGO (measured greedy) under the uniform W3/W4 plans' average bits, beside the IP there.
        for label, u in (("W3", uni[(3, 8)]), ("W4", uni[(4, 8)])):
            bits = f"{u['avg_wbits']:.4f}"
            run(name, "hago", "HAGO", label, ["--search", "hago", "--budget-bits", bits])
            run(name, "hago", "IP kl", label, ["--search", "ip", "--signal", "kl", "--table", tab, "--budget-bits", bits])

    for name in args.models.split(","):
        r = find(name, "table", "", None)
        if r:
            print(f"\n{name}: table with candidates {r['sensitivity_seconds']:.1f} s")
    def md(title, kinds, cells):
        """A markdown table of the finished rows of `kinds`: model, budget, label, top-1, then cells(r)."""
        head = ["model", title, "plan", "top-1 %"] + [c for c, _ in cells]
        print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
        for r in rows:
            if r["kind"] in kinds and "top1_quant" in r:
                b = f"{r['budget']:.2f}" if isinstance(r["budget"], float) else (r["budget"] or "")
                print(f"| {r['model']} | {b} | {r['label']} | {r['top1_quant']:.2f} | " +
                      " | ".join(str(f(r)) for _, f in cells) + " |")

    layers_with = lambda r, k, v: sum(1 for L in r.get("layers", []) if L.get(k) == v)
    passes = lambda r: r.get("search_params", {}).get("passes", [])
    md("BOPs budget (x W4A8)", ("uniform", "bops"),
       [("GBOPs", lambda r: f"{r['bops'] / 1e9:.3f}"), ("avg w bits", lambda r: f"{r['avg_wbits']:.2f}"),
        ("layers with 4-bit inputs", lambda r: layers_with(r, "abits", 4))])
    md("byte budget", ("bytes",),
       [("size bytes", lambda r: r["size_bytes"]), ("avg w bits", lambda r: f"{r['avg_wbits']:.2f}"),
        ("per-group layers", lambda r: layers_with(r, "granularity", "per_group"))])
    md("bits budget (uniform)", ("hago",),
       [("avg w bits", lambda r: f"{r['avg_wbits']:.2f}"),
        ("measured plans", lambda r: r.get("search_params", {}).get("measured_plans", "")),
        ("passes (final tolerance)", lambda r: f"{len(passes(r))} ({passes(r)[-1]['tolerance_points']})" if passes(r) else ""),
        ("seconds", lambda r: f"{r.get('seconds_search', 0):.1f}")])

if __name__ == "__main__":
    main()
