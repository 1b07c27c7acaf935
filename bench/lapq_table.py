#!/usr/bin/env python3
"""LAPQ table for BENCHMARKS.md (issue 19, item 1): LAPQ vs min-max, MSE (p = 2.4) and LAPQ's Lp
init alone (`--method lapq-init`: p* from the quadratic fit, no joint search), at W4A4, W3A3 and
W2A4, per-tensor (the paper's setting) and per-channel weights, on the ResNet, MobileNetV2 and ViT
fixtures. Calibration: the first 1024 training images (LAPQ's loss runs on the first 512 of them,
--lapq-samples); top-1 on the full Fashion-MNIST test set; quantize seconds per row. First and last
layer stay at 8 bits (mixq's default, as in the paper).

Rows accumulate in bench/results/lapq_table.json as they finish (a rerun skips rows already
there, so the grid can be filled in pieces) and the markdown table is printed from all rows.

  python3 bench/lapq_table.py [--models resnet,mobilenetv2,vit] [--settings W4A4,W3A3,W2A4]
      [--granularities per_tensor,per_channel] [--methods minmax,mse,lapq-init,lapq] [--markdown-only]
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results", "lapq_table.json")
SETTINGS = ["W4A4", "W3A3", "W2A4"]
GRANULARITIES = ["per_tensor", "per_channel"]
METHODS = ["minmax", "mse", "lapq-init", "lapq"]


def key(model, setting, gran, method):
    return f"{model}|{setting}|{gran}|{method}"


def run(mixq, model, setting, gran, method, float_eval):
    w, a = setting[1:].split("A")
    cmd = [mixq, "quantize", os.path.join(ROOT, "models", f"fmnist-{model}.onnx"), "--calib", "fmnist:train:1024",
           "--wbits", w, "--abits", a, "--granularity", gran, "--method", method, "--eval", "fmnist:test",
           "--json", "-q", "--seed", "0"] + ([] if float_eval else ["--no-float-eval"])
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1], "cmd": " ".join(cmd[1:])}
    r = json.loads(p.stdout)
    m = r.get("method_report", {})
    row = {"top1_float": r["top1_float"], "top1": r["top1_quant"], "avg_wbits": r["avg_wbits"],
           "size_bytes": r["size_bytes"], "seconds": r["seconds"], "wall": time.time() - t0, "cmd": " ".join(cmd[1:])}
    if method.startswith("lapq"):
        row.update({"p_star": m.get("p_star"), "p_start": m.get("p_start"), "start": m.get("start"),
                    "p_grid": m.get("p_grid"), "loss_init": m.get("loss_init"), "loss_final": m.get("loss_final"),
                    "evaluations": m.get("evaluations"), "lapq_seconds": m.get("seconds"),
                    "joint": {k: v for k, v in m.get("joint", {}).items() if k != "multipliers"}})
    return row


def markdown(rows, models):
    out = []
    for model in models:
        mrows = {k: v for k, v in rows.items() if k.split("|")[0] == model and "error" not in v}
        if not mrows:
            continue
        fl = next((v["top1_float"] for v in mrows.values() if v.get("top1_float") is not None), None)
        out.append(f"\n**{model}** (float {fl:.2f}%)" if fl is not None else f"\n**{model}**")
        out.append("top-1 % (quantize seconds); LAPQ: the p it started from and the calibration loss "
                   "(cross-entropy on 512 training images) at the Lp init -> after the joint search, evaluations\n")
        out.append("| setting | weights | " + " | ".join(METHODS) + " | LAPQ start p | LAPQ loss init -> final (evals) |")
        out.append("|---|---|" + "---|" * (len(METHODS) + 2))
        for s in SETTINGS:
            for g in GRANULARITIES:
                cells = []
                for m in METHODS:
                    v = mrows.get(key(model, s, g, m))
                    cells.append(f"{v['top1']:.2f} ({v['seconds']:.0f})" if v else "")
                if not any(cells):
                    continue
                lq = mrows.get(key(model, s, g, "lapq"))
                # The p LAPQ started from: the fit's p* ("fit"), or the best grid p ("grid") when the
                # fit was not convex or its p* measured worse.
                pstar = (f"{lq['p_start']:.2f} ({'fit' if lq.get('start') == 'quadratic fit' else 'grid'})"
                         if lq and lq.get("p_start") is not None else "")
                loss = (f"{lq['loss_init']:.4f} -> {lq['loss_final']:.4f} ({lq['evaluations']})"
                        if lq and lq.get("loss_init") is not None else "")
                out.append(f"| {s} | {g.replace('_', '-')} | " + " | ".join(cells) + f" | {pstar} | {loss} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mixq", default=os.path.join(ROOT, "build", "mixq"))
    ap.add_argument("--models", default="resnet,mobilenetv2,vit")
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--granularities", default=",".join(GRANULARITIES))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--markdown-only", action="store_true")
    args = ap.parse_args()
    rows = json.load(open(RESULTS)) if os.path.exists(RESULTS) else {}
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    models = args.models.split(",")
    if not args.markdown_only:
        for model in models:
            for s in args.settings.split(","):
                for g in args.granularities.split(","):
                    for m in args.methods.split(","):
                        k = key(model, s, g, m)
                        if k in rows and "error" not in rows[k]:
                            continue
                        # The float model once per fixture (the first row that runs).
                        has_float = any(v.get("top1_float") is not None for kk, v in rows.items()
                                        if kk.split("|")[0] == model and "error" not in v)
                        rows[k] = run(args.mixq, model, s, g, m, not has_float)
                        v = rows[k]
                        print(k, json.dumps({x: v.get(x) for x in ("top1", "seconds", "p_star", "error")}),
                              file=sys.stderr, flush=True)
                        tmp = RESULTS + ".tmp"
                        with open(tmp, "w") as f:
                            json.dump(rows, f, indent=1)
                        os.replace(tmp, RESULTS)
    print(markdown(rows, models))


if __name__ == "__main__":
    main()
