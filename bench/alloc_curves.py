#!/usr/bin/env python3
"""Accuracy vs average weight bits for the bit-width allocators (BENCHMARKS.md, "Budgeted allocation").

For each model: one sensitivity table (`mixq pareto`, timed: the table + the front's integer
programs), then `mixq quantize --json` on the full Fashion-MNIST test set for
  uniform W2..W6 and W8 (first/last layer pinned at 8 bits, so the averages sit a little above b),
  and at every size point (the uniform W3/W4 plans' averages, plus 2.5 and 3.5 bits):
  MixQuant (model-mean reference, the stronger variant in the quantization table), the integer
  program with each signal (dl, kl, noise, mse), greedy Pareto (dl, re-measured) and genetic (dl).
Every run uses --method mse, 8-bit activations and calibration on the first 1024 training images;
table-driven runs read the same cached table (256 calibration samples). Above 4 bits (the uniform
W5 and W6 averages) IP kl, IP dl, MixQuant and Pareto dl. Writes
bench/results/alloc_curves.json (after every run, so a partial run is kept), prints a markdown
table and writes bench/results/alloc_curves.svg.

  /usr/bin/python3 bench/alloc_curves.py [--models fmnist-resnet,...] [--plot-only]
"""
import argparse
import json
import os
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RES = os.path.join(ROOT, "bench", "results")
OUT = os.path.join(RES, "alloc_curves.json")
CALIB = "fmnist:train:1024"

SERIES = [  # label, args (budget appended)
    ("MixQuant", ["--search", "mixquant", "--qem-ref", "model"]),
    ("IP dl", ["--search", "ip", "--signal", "dl"]),
    ("IP kl", ["--search", "ip", "--signal", "kl"]),
    ("IP noise", ["--search", "ip", "--signal", "noise"]),
    ("IP mse", ["--search", "ip", "--signal", "mse"]),
    ("Pareto dl", ["--search", "pareto", "--signal", "dl"]),
    ("genetic dl", ["--search", "genetic", "--signal", "dl"]),
]


def quantize(mixq, model, args, abits=8):
    cmd = [mixq, "quantize", model, "--calib", CALIB, "--abits", str(abits), "--method", "mse", "--eval", "fmnist:test",
           "--no-float-eval", "--json", "-q", "--threads", "2"] + args
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]}
    return json.loads(p.stdout)


def save(rows):
    os.makedirs(RES, exist_ok=True)
    tmp = OUT + ".tmp"
    with open(tmp, "w") as f:
        json.dump(rows, f, indent=1)
    os.replace(tmp, OUT)


def svg(rows, path):
    models = sorted({r["model"] for r in rows})
    colors = {"uniform": "#000000", "MixQuant": "#888888", "IP dl": "#d62728", "IP kl": "#ff7f0e",
              "IP noise": "#bcbd22", "IP mse": "#8c564b", "Pareto dl": "#1f77b4", "genetic dl": "#2ca02c"}
    W, H, pad = 420, 320, 50
    parts = []
    for mi, m in enumerate(models):
        ox = mi * W
        pts = [r for r in rows if r["model"] == m and "top1" in r]
        if not pts:
            continue
        floor = max(min(r["top1"] for r in pts), max(r["top1"] for r in pts) - 8)
        ymin, ymax = floor - 0.2, max(r["top1"] for r in pts) + 0.2
        xmin, xmax = 2.0, 8.2
        X = lambda v: ox + pad + (v - xmin) / (xmax - xmin) * (W - 2 * pad)
        Y = lambda v: H - pad - (max(v, ymin) - ymin) / (ymax - ymin) * (H - 2 * pad)
        parts.append(f'<text x="{ox + W / 2}" y="20" text-anchor="middle" font-size="14">{m}</text>')
        parts.append(f'<rect x="{ox + pad}" y="{pad}" width="{W - 2 * pad}" height="{H - 2 * pad}" fill="none" stroke="#ccc"/>')
        for b in range(2, 9):
            parts.append(f'<text x="{X(b)}" y="{H - pad + 15}" text-anchor="middle" font-size="10">{b}</text>')
        step = 1 if ymax - ymin < 6 else 2
        y = int(ymin) + 1
        while y <= ymax:
            parts.append(f'<text x="{ox + pad - 5}" y="{Y(y) + 3}" text-anchor="end" font-size="10">{y}</text>')
            parts.append(f'<line x1="{ox + pad}" x2="{ox + W - pad}" y1="{Y(y)}" y2="{Y(y)}" stroke="#eee"/>')
            y += step
        parts.append(f'<text x="{ox + W / 2}" y="{H - 10}" text-anchor="middle" font-size="11">avg weight bits</text>')
        for s, col in colors.items():
            ser = sorted((r["avg_wbits"], r["top1"]) for r in pts if r["series"] == s)
            if not ser:
                continue
            line = " ".join(f"{X(a):.1f},{Y(t):.1f}" for a, t in ser)
            parts.append(f'<polyline points="{line}" fill="none" stroke="{col}" stroke-width="1.5"/>')
            for a, t in ser:
                parts.append(f'<circle cx="{X(a):.1f}" cy="{Y(t):.1f}" r="2.5" fill="{col}"/>')
    legend = []
    for i, (s, col) in enumerate(colors.items()):
        legend.append(f'<rect x="{10 + i * 110}" y="{H + 5}" width="10" height="10" fill="{col}"/>'
                      f'<text x="{24 + i * 110}" y="{H + 14}" font-size="11">{s}</text>')
    total_w = max(1, len(models)) * W
    body = "\n".join(parts + legend)
    with open(path, "w") as f:
        f.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="{max(total_w, 900)}" height="{H + 25}" '
                f'font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n{body}\n</svg>\n')


def table(rows):
    print("| model | series | budget bits | avg w bits | top-1 % | size bytes | calib dL pred / meas |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if "top1" not in r:
            print(f"| {r['model']} | {r['series']} | {r.get('budget', '')} | | error: {r.get('error', '')} | | |")
            continue
        al = r.get("allocation") or {}
        pm = ""
        if "predicted_dl" in al:
            pm = f"{al['predicted_dl']:.4f} / {al['measured_dl']:.4f}"
        b = r.get("budget", "")
        b = f"{b:.2f}" if isinstance(b, float) else b
        print(f"| {r['model']} | {r['series']} | {b} | {r['avg_wbits']:.2f} | {r['top1']:.2f} | {r['size_bytes']} | {pm} |")


def pivot(rows):
    """One line per (model, size point): top-1 (avg weight bits) of every series at that budget."""
    cols = ["uniform"] + [s for s, _ in SERIES]
    print("| model | size point (avg bits) | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for m in sorted({r["model"] for r in rows}):
        uni = {r["budget"]: r for r in rows if r["model"] == m and r["series"] == "uniform" and "top1" in r}
        points = sorted({r["budget"] for r in rows if r["model"] == m and r["series"] not in ("uniform", "table")})
        for b in points:
            u = next((r for r in uni.values() if abs(r["avg_wbits"] - b) < 1e-3), None)
            cells = [f"{u['top1']:.2f}" if u else ""]
            for s, _ in SERIES:
                r = next((r for r in rows if r["model"] == m and r["series"] == s and r["budget"] == b and "top1" in r), None)
                cells.append(f"{r['top1']:.2f} ({r['avg_wbits']:.2f})" if r else "")
            print(f"| {m} | {b:.2f} | " + " | ".join(cells) + " |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mixq", default=os.path.join(ROOT, "build", "mixq"))
    ap.add_argument("--models", default="fmnist-resnet,fmnist-vit,fmnist-mobilenetv2")
    ap.add_argument("--plot-only", action="store_true")
    ap.add_argument("--svg", default=os.path.join(ROOT, "bench", "alloc_curves.svg"),
                    help="plot file")
    args = ap.parse_args()
    rows = json.load(open(OUT)) if (args.plot_only or os.path.exists(OUT)) and os.path.exists(OUT) else []
    if not args.plot_only:
        done = {(r["model"], r["series"], str(r.get("budget"))) for r in rows if "top1" in r or "top1_quant" in r}
        names = args.models.split(",")
        # Tasks in priority order (these runs are slow on the shared 2 cores and the JSON keeps
        # every finished row, so an interrupted run still gives the most important comparisons):
        # phase 1, per model: its table, uniform W3/W4, then IP dl and kl, Pareto dl, MixQuant at those
        # two sizes and 2.5 bits; phase 2: the other signals, genetic, 3.5 bits, uniform W2/W5/W6.
        def run_uniform(name, wb):
            key = (name, "uniform", str(wb))
            r = next((r for r in rows if (r["model"], r["series"], str(r.get("budget"))) == key), None)
            if r is None:
                r = quantize(args.mixq, os.path.join(ROOT, "models", name + ".onnx"), ["--search", "uniform", "--wbits", str(wb)])
                r.update({"model": name, "series": "uniform", "budget": wb})
                rows.append(r)
                save(rows)
                print(name, "uniform", wb, r.get("top1_quant"), r.get("avg_wbits"), flush=True)
            return round(r["avg_wbits"], 4) if "avg_wbits" in r else None

        def run_table(name):
            if any(r["model"] == name and r["series"] == "table" for r in rows):
                return
            t0 = time.time()
            p = subprocess.run([args.mixq, "pareto", os.path.join(ROOT, "models", name + ".onnx"), "--calib", CALIB,
                                "--method", "mse", "--table-out", os.path.join(RES, name + ".sens.json"),
                                "-o", os.path.join(RES, name + ".front.json"), "--json", "-q", "--threads", "2"],
                               capture_output=True, text=True)
            if p.returncode != 0:
                raise SystemExit(p.stderr)
            j = json.loads(p.stdout)
            rows.append({"model": name, "series": "table", "budget": None, "top1": None,
                         "seconds_wall": time.time() - t0, "sensitivity_seconds": j["sensitivity_seconds"]})
            save(rows)

        def run_series(name, label, b):
            if (name, label, str(b)) in done or b is None:
                return
            extra = dict(SERIES)[label]
            tab = os.path.join(RES, name + ".sens.json")
            r = quantize(args.mixq, os.path.join(ROOT, "models", name + ".onnx"), extra + ["--budget-bits", str(b), "--table", tab])
            r.update({"model": name, "series": label, "budget": b})
            rows.append(r)
            save(rows)
            done.add((name, label, str(b)))
            print(name, label, b, r.get("top1_quant"), r.get("avg_wbits"), r.get("error", ""), flush=True)

        pts = {}
        for name in names:
            run_table(name)
            pts[name] = [run_uniform(name, 3), run_uniform(name, 4), 2.5]
            for b in pts[name]:
                for label in ("IP dl", "IP kl", "Pareto dl", "MixQuant"):
                    run_series(name, label, b)
        for name in names:
            for b in pts[name] + [3.5]:
                for label in ("genetic dl", "IP kl", "IP noise", "IP mse", "IP dl", "Pareto dl", "MixQuant"):
                    run_series(name, label, b)
            for wb in (2, 5, 6):
                run_uniform(name, wb)
        # phase 3: the size points above 4 bits (the uniform W5 and W6 averages; at 8 bits every
        # allocator's plan is uniform W8).
        for name in names:
            for wb in (5, 6):
                b = run_uniform(name, wb)
                for label in ("IP kl", "MixQuant", "Pareto dl", "IP dl"):
                    run_series(name, label, b)
    for r in rows:
        if "top1_quant" in r:
            r["top1"] = r["top1_quant"]
    table([r for r in rows if r["series"] != "table"])
    print()
    pivot([r for r in rows if r["series"] != "table"])
    for r in rows:
        if r["series"] == "table":
            print(f"\n{r['model']}: sensitivity table {r['sensitivity_seconds']:.1f} s, pareto command {r['seconds_wall']:.1f} s wall")
    svg([r for r in rows if r["series"] != "table" and r.get("top1") is not None], args.svg)


if __name__ == "__main__":
    main()
