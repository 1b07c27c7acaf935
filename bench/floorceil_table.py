#!/usr/bin/env python3
"""Floor/ceil rounding table for BENCHMARKS.md (issue 20, item 2; seed 004): on every Fashion-MNIST
fixture at 8, 6 and 4 bits (weights and each layer's input at the same bits; first/last layer
pinned at 8 bits, mixq's default), `--search floorceil` against the same model with nearest
rounding (the codes before the search, evaluated in the same run: `*_before_finish`). Columns:
calibration loss (cross-entropy on the calibration images the search used) of float / nearest /
floor-ceil, test loss (cross-entropy on the full Fashion-MNIST test set) of the same three, test
top-1, layers flipped of the quantized layers, moves measured, seconds of the search.
"Below float" is marked per set: holding on calibration but not on test is over-fitting.

Rows accumulate in bench/results/floorceil_table.json (a rerun skips rows already there).

  /usr/bin/python3 bench/floorceil_table.py [--models resnet,mobilenetv2,vit,mlp,embedbag]
      [--bits 8,6,4] [--granularity layer|channel] [--calib 1024] [--method mse] [--markdown-only]
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results", "floorceil_table.json")
MODELS = ["resnet", "mobilenetv2", "vit", "mlp", "embedbag"]


def key(model, bits, gran, calib, method):
    return f"{model}|{bits}|{gran}|{calib}|{method}"


def run(mixq, model, bits, gran, calib, method):
    cmd = [mixq, "quantize", os.path.join(ROOT, "models", f"fmnist-{model}.onnx"), "--calib", f"fmnist:train:{calib}",
           "--search", "floorceil", "--wbits", str(bits), "--method", method, "--floorceil-granularity", gran,
           "--floorceil-samples", str(calib), "--eval", "fmnist:test", "--json", "-q", "--seed", "0"]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1], "cmd": " ".join(cmd[1:])}
    r = json.loads(p.stdout)
    fc = r["method_report"]["floorceil"]
    return {"calib_float": fc["loss_float"], "calib_nearest": fc["loss_before"], "calib_fc": fc["loss_after"],
            "test_float": r["loss_float"], "test_nearest": r["loss_quant_before_finish"], "test_fc": r["loss_quant"],
            "top1_float": r["top1_float"], "top1_nearest": r["top1_quant_before_finish"], "top1_fc": r["top1_quant"],
            "layers_flipped": fc["layers_flipped"], "layers": fc["candidate_layers"],
            "channels_flipped": fc["channels_flipped"], "channels_total": fc["channels_total"],
            "evaluations": fc["evaluations"], "fc_seconds": fc["seconds"], "seconds": r["seconds"],
            "avg_wbits": r["avg_wbits"], "wall": time.time() - t0, "cmd": " ".join(cmd[1:])}


def markdown(rows):
    out = ["| model | bits | choice per | calib loss float / nearest / floor-ceil | below float (calib) | test loss float / "
           "nearest / floor-ceil | below float (test) | test top-1 float / nearest / floor-ceil | flipped | "
           "evals | search s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for k, v in rows.items():
        if "error" in v:
            out.append(f"| {k} | error: {v['error']} |")
            continue
        model, bits, gran, calib, method = k.split("|")
        flipped = (f"{v['layers_flipped']}/{v['layers']} layers" if gran == "layer" else
                   f"{v['channels_flipped']}/{v['channels_total']} ch in {v['layers_flipped']} layers")
        below = lambda q, f: "yes" if q < f else "no"
        out.append(f"| {model} | W{bits}A{bits} | {gran} | {v['calib_float']:.4f} / {v['calib_nearest']:.4f} / "
                   f"{v['calib_fc']:.4f} | {below(v['calib_fc'], v['calib_float'])} | {v['test_float']:.4f} / "
                   f"{v['test_nearest']:.4f} / {v['test_fc']:.4f} | {below(v['test_fc'], v['test_float'])} | "
                   f"{v['top1_float']:.2f} / {v['top1_nearest']:.2f} / {v['top1_fc']:.2f} | {flipped} | "
                   f"{v['evaluations']} | {v['fc_seconds']:.1f} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mixq", default=os.path.join(ROOT, "build", "mixq"))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--bits", default="8,6,4")
    ap.add_argument("--granularity", default="layer")
    ap.add_argument("--calib", type=int, default=1024)
    ap.add_argument("--method", default="mse")
    ap.add_argument("--markdown-only", action="store_true")
    args = ap.parse_args()
    rows = json.load(open(RESULTS)) if os.path.exists(RESULTS) else {}
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    if not args.markdown_only:
        for model in args.models.split(","):
            for bits in args.bits.split(","):
                k = key(model, bits, args.granularity, args.calib, args.method)
                if k in rows and "error" not in rows[k]:
                    continue
                rows[k] = run(args.mixq, model, int(bits), args.granularity, args.calib, args.method)
                v = rows[k]
                print(k, json.dumps({x: v.get(x) for x in ("calib_nearest", "calib_fc", "test_fc", "top1_fc",
                                                           "layers_flipped", "wall", "error")}), file=sys.stderr, flush=True)
                tmp = RESULTS + ".tmp"
                with open(tmp, "w") as f:
                    json.dump(rows, f, indent=1)
                os.replace(tmp, RESULTS)
    print(markdown(rows))


if __name__ == "__main__":
    main()
