#!/usr/bin/env python3
"""Packed file size vs the plan's predicted size_bytes (BENCHMARKS.md, "Packed runtime").

For every fixture and every plan of the quantization-core table (bench/quant_table.py's CONFIGS),
plus the float pack: `mixq pack ... --json` with 256 calibration images (the calibration changes
values, not sizes), and the written file's bytes against the plan's prediction, part by part.
Sizes only: no evaluation, so the whole table takes a few minutes.

  python3 bench/pack_sizes.py [--mixq build/mixq] [--models fmnist-resnet,...] [--markdown-only]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from quant_table import CONFIGS, ROOT  # noqa: E402  (the same plans as the quantization-core table)

MODELS = ["fmnist-resnet", "fmnist-mobilenetv2", "fmnist-vit", "fmnist-mlp", "fmnist-embedbag"]
RESULTS = os.path.join(ROOT, "bench", "results", "pack_sizes.json")


def pack(mixq, model, args, out):
    cmd = [mixq, "pack", model, "--calib", "fmnist:train:256", "--abits", "8", "-o", out, "--json", "-q"] + args
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:  # e.g. a budget the pinned layers make infeasible: report it, go on
        return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"}
    return json.loads(p.stdout)


def markdown(rows):
    print("| model | plan | file bytes | predicted bytes | file / predicted | of which graph + header |")
    print("|---|---|---|---|---|---|")
    worst = 0.0
    for r in rows:
        j = r["pack"]
        if "error" in j:
            print(f"| {r['model']} | {r['plan']} | not packed: {j['error']} | | | |")
            continue
        ratio = j["ratio_to_predicted"]
        worst = max(worst, abs(ratio - 1))
        print(f"| {r['model']} | {r['plan']} | {j['file_bytes']} | {j['predicted_bytes']} | {ratio:.4f} | "
              f"{j['graph_bytes'] + j['header_bytes']} |")
    print(f"\nlargest |file / predicted - 1|: {100 * worst:.3f}%")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mixq", default=os.path.join(ROOT, "build", "mixq"))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--markdown-only", action="store_true", help="print the table from the saved results")
    args = ap.parse_args()
    if args.markdown_only:
        with open(RESULTS) as f:
            markdown(json.load(f))
        return
    rows = []
    configs = [("float (fp32 pack)", ["--float"])] + CONFIGS
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "m.mxq")
        for name in args.models.split(","):
            model = os.path.join(ROOT, "models", name + ".onnx")
            for label, extra in configs:
                j = pack(args.mixq, model, extra, out)
                rows.append({"model": name, "plan": label, "pack": j})
                print(name, label, j.get("ratio_to_predicted", j.get("error")), file=sys.stderr, flush=True)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(rows, f, indent=1)
    markdown(rows)


if __name__ == "__main__":
    main()
