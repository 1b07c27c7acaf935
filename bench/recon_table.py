#!/usr/bin/env python3
"""Reconstruction table for BENCHMARKS.md (issue: AdaRound / BRECQ / AdaQuant / BN re-estimation).

For each fixture x setting (W4A8 ... W2A2) x method, runs `mixq quantize` on the first 1024
training images (calibration) and evaluates on the full test set. Models with BatchNorm run with
--bn-reestimate, and the report's `top1_quant_before_finish` gives the same run without it, so
every row has both "- BN re-est." and "+ BN re-est." from one optimisation. Results accumulate in
bench/results/recon_table.json (a rerun skips rows already there: the table can be filled in
pieces) and the markdown table is printed from all rows.

  python3 bench/recon_table.py [--models resnet,mobilenetv2,vit] [--settings W4A4,W2A4]
      [--methods minmax,mse,adaround,brecq,brecq-fisher,brecq-bf16,adaquant] [--iters 2000]
      [--precision fp32|bf16] [--jobs 2] [--markdown-only]

--iters sets AdaRound/BRECQ rounding iterations per unit (paper: 20000; activation steps get a
quarter); AdaQuant always runs its paper defaults (1000 iterations per layer, batch 50).
--precision is the reconstruction loops' convolution precision (`mixq --recon-precision`); fp32
rows keep the old keys, other precisions are kept apart (key suffix) and tabled apart.
--jobs N runs N quantize jobs at once, each with one intra-op thread (`--threads 1`): on this
2-core machine two single-thread runs get more done per hour than one two-thread run (measured
in BENCHMARKS.md), at the cost of longer wall time per row.
"""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results", "recon_table.json")
SETTINGS = ["W4A8", "W4A4", "W3A8", "W2A4", "W3A3", "W2A2"]
METHODS = {
    "minmax": ["--method", "minmax"],
    "mse": ["--method", "mse"],
    "adaround": ["--method", "adaround"],
    "brecq": ["--method", "brecq", "--rec-loss", "mse"],
    "brecq-fisher": ["--method", "brecq", "--rec-loss", "fisher"],
    "brecq-bf16": ["--method", "brecq", "--rec-loss", "mse", "--recon-precision", "bf16"],
    "adaquant": ["--method", "adaquant"],
    "mixquant+brecq": ["--method", "brecq", "--search", "mixquant"],
    "mixquant-model+brecq": ["--method", "brecq", "--search", "mixquant", "--qem-ref", "model"],
}
RECON_METHODS = ("adaround", "brecq", "brecq-fisher", "brecq-bf16", "mixquant+brecq", "mixquant-model+brecq")
HAS_BN = {"resnet": True, "mobilenetv2": True, "vit": False}


def key(model, setting, method, iters, precision="fp32"):
    recon = method in RECON_METHODS
    it = iters if recon else 0
    k = f"{model}|{setting}|{method}|{it}"
    # brecq-bf16 names its precision itself; fp32 rows keep the keys they had before --precision.
    return k + f"|{precision}" if recon and precision != "fp32" and "--recon-precision" not in METHODS[method] else k


def run(mixq, model, setting, method, iters, rows=None, precision="fp32", threads=0):
    w, a = setting[1:].split("A")
    cmd = [mixq, "quantize", os.path.join(ROOT, "models", f"fmnist-{model}.onnx"), "--calib", "fmnist:train:1024",
           "--wbits", w, "--abits", a, "--eval", "fmnist:test", "--json", "-q", "--seed", "0"] + METHODS[method]
    if method.startswith("mixquant"):
        # The same size as uniform BRECQ at this setting (its average includes the 8-bit pins).
        uni = (rows or {}).get(key(model, setting, "brecq", iters, precision), {})
        cmd += ["--budget-bits", f"{uni['avg_wbits']:.4f}" if "avg_wbits" in uni else w]
    if method in RECON_METHODS:
        cmd += ["--iters", str(iters)]
        if "--recon-precision" not in METHODS[method]:
            cmd += ["--recon-precision", precision]  # explicit: the rows before the bf16 default were float32
    if HAS_BN.get(model):
        cmd += ["--bn-reestimate"]
    if threads > 0:
        cmd += ["--threads", str(threads)]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1], "cmd": " ".join(cmd)}
    r = json.loads(p.stdout)
    units = r.get("method_report", {}).get("units", [])
    per1000 = [u["timing"]["seconds_per_1000_iters"] for u in units if "timing" in u]
    return {"top1_float": r["top1_float"], "top1": r["top1_quant_before_finish"] if r["top1_quant_before_finish"] is not None
            else r["top1_quant"], "top1_bn": r["top1_quant"] if HAS_BN.get(model) else None,
            "avg_wbits": r["avg_wbits"], "size_bytes": r["size_bytes"], "seconds": r["seconds"], "wall": time.time() - t0,
            "s_per_1000_iters": per1000, "threads": threads, "cmd": " ".join(cmd[1:])}


def row_precision(k):
    parts = k.split("|")
    return parts[4] if len(parts) > 4 else "fp32"


def markdown(rows, models, iters, precision="fp32"):
    out = []
    for model in models:
        # Range-only rows (iterations 0) have no loop precision and join every table.
        mrows = {k: v for k, v in rows.items() if k.split("|")[0] == model and "error" not in v
                 and (k.split("|")[3] == "0" or (k.split("|")[3] == str(iters) and row_precision(k) == precision))}
        if not mrows:
            continue
        fl = next(iter(mrows.values()))["top1_float"]
        out.append(f"\n**{model}** (float {fl:.2f}%): top-1 % without / with BN re-estimation"
                   + ("" if HAS_BN.get(model) else " (no BatchNorm: one number)") + "; wall seconds in brackets\n")
        methods = [m for m in METHODS if any(k.split("|")[2] == m for k in mrows)]
        out.append("| setting | " + " | ".join(methods) + " |")
        out.append("|---|" + "---|" * len(methods))
        for s in SETTINGS:
            cells = []
            for m in methods:
                hit = [v for k, v in mrows.items() if k.split("|")[1] == s and k.split("|")[2] == m]
                if not hit:
                    cells.append("")
                    continue
                v = hit[-1]
                c = f"{v['top1']:.2f}"
                if v.get("top1_bn") is not None:
                    c += f" / {v['top1_bn']:.2f}"
                if m.startswith("mixquant"):
                    c += f" @{v['avg_wbits']:.2f}b"
                c += f" ({v['seconds']:.0f})"
                cells.append(c)
            if any(cells):
                out.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mixq", default=os.path.join(ROOT, "build", "mixq"))
    ap.add_argument("--models", default="resnet,mobilenetv2,vit")
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--methods", default="minmax,mse,adaround,brecq,brecq-fisher,adaquant")
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--markdown-only", action="store_true")
    args = ap.parse_args()
    rows = json.load(open(RESULTS)) if os.path.exists(RESULTS) else {}
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    models = args.models.split(",")

    def save(k, v):
        rows[k] = v
        print(k, json.dumps({x: v.get(x) for x in ("top1", "top1_bn", "seconds", "error")}), file=sys.stderr, flush=True)
        tmp = RESULTS + ".tmp"
        with open(tmp, "w") as f:
            json.dump(rows, f, indent=1)
        os.replace(tmp, RESULTS)

    if not args.markdown_only:
        todo = [(model, s, m) for model in models for s in args.settings.split(",") for m in args.methods.split(",")]
        todo = [t for t in todo if "error" in rows.get(key(*t, args.iters, args.precision), {"error": 1})]
        # MixQuant rows read the uniform BRECQ row's size, so they wait for the rest.
        first = [t for t in todo if not t[2].startswith("mixquant")]
        later = [t for t in todo if t[2].startswith("mixquant")]
        threads = 1 if args.jobs > 1 else 0
        for batch in (first, later):
            with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
                futs = {pool.submit(run, args.mixq, *t, args.iters, dict(rows), args.precision, threads): t for t in batch}
                for f in concurrent.futures.as_completed(futs):
                    save(key(*futs[f], args.iters, args.precision), f.result())
    print(markdown(rows, models, args.iters, args.precision))


if __name__ == "__main__":
    main()
