#!/usr/bin/env python3
"""SPARQ table for BENCHMARKS.md: 5opt / 3opt / 2opt, each with and without vSPARQ, against uniform
A8 and uniform A4 with the same weights (W8 per-channel symmetric, min-max), full Fashion-MNIST
test set, calibration on the first 1024 training images. First and last layer stay plain W8A8 in
every row (mixq's default pinning).

Each finished row is appended to bench/results/sparq_table.jsonl (so a killed run keeps what it
finished); the markdown table goes to stdout.

  python3 bench/sparq_table.py [--mixq build/mixq] [--models fmnist-resnet,...] [--eval fmnist:test]
"""
import argparse
import json
import os
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ["fmnist-resnet", "fmnist-mobilenetv2", "fmnist-vit"]
CONFIGS = [
    # label, extra args (on top of W8 per-channel symmetric weights)
    ("uniform A8", ["--abits", "8"]),
    ("uniform A4", ["--abits", "4"]),
    # The same weights (KL only changes activation ranges): the stronger A4 baseline.
    ("uniform A4, KL act ranges", ["--abits", "4", "--method", "kl"]),
] + [
    (f"SPARQ {w}{' + vSPARQ' if v else ''}", ["--abits", "8", "--act-scheme", f"sparq:{w}{',v' if v else ''}"])
    for w in ("5opt", "3opt", "2opt") for v in (False, True)
]


def run(mixq, model, args, eval_spec):
    cmd = [mixq, "quantize", model, "--calib", "fmnist:train:1024", "--eval", eval_spec, "--wbits", "8",
           "--symmetric-weights", "--json", "-q"] + args
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"}
    r = json.loads(p.stdout)
    r["wall_s"] = time.time() - t0
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mixq", default=os.path.join(ROOT, "build", "mixq"))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--eval", default="fmnist:test")
    ap.add_argument("--only-configs", default="", help="config labels to run, separated by ; (default: all)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "sparq_table.jsonl"))
    args = ap.parse_args()
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    print("| model | activations | top-1 % | vs A8 | pairs kept 8 bits | zeros | values rounded | "
          "windows [7:4]/[6:3]/[5:2]/[4:1]/[3:0] % | GBOPs |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        model = os.path.join(ROOT, "models", name + ".onnx")
        top1_a8 = None
        for i, (label, extra) in enumerate(CONFIGS):
            if args.only_configs and label not in args.only_configs.split(";"):
                continue
            r = run(args.mixq, model, extra + ([] if i == 0 else ["--no-float-eval"]), args.eval)
            row = {"fixture": name, "config": label, "eval": args.eval}
            if "error" in r:
                row["error"] = r["error"]
                print(f"| {name} | {label} | not run: {r['error'].replace('|', '/')} | | | | | | |", flush=True)
            else:
                if i == 0:
                    top1_a8 = r["top1_quant"]
                    print(f"| {name} | float | {r['top1_float']:.2f} | | | | | | |", flush=True)
                s = r.get("sparq") or {}
                row.update({k: r.get(k) for k in ("top1_float", "top1_quant", "bops", "act_scheme", "wall_s")})
                row["sparq"] = {k: v for k, v in s.items() if k != "per_tensor"}
                vs = f"{r['top1_quant'] - top1_a8:+.2f}" if top1_a8 is not None else ""
                if s:
                    ws = s["window_share"]
                    win = "/".join(f"{100 * ws[w]:.0f}" for w in ("[7:4]", "[6:3]", "[5:2]", "[4:1]", "[3:0]"))
                    kept = f"{100 * s['frac_pairs_8bit']:.1f}%" if "+ vSPARQ" in label else "-"
                    cols = f"{kept} | {100 * s['frac_zeros']:.1f}% | {100 * s['frac_rounded']:.1f}% | {win}"
                else:
                    cols = "- | - | - | -"
                print(f"| {name} | {label} | {r['top1_quant']:.2f} | {vs} | {cols} | {r['bops'] / 1e9:.3f} |",
                      flush=True)
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
