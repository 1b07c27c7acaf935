#!/usr/bin/env python3
"""FracBits table for BENCHMARKS.md (issue 20, item 1; seed 002): FracBits in PTQ mode
(`--search fracbits`) against the integer program (`--search ip`, its default signal and
sensitivity table) and uniform bits, at size budgets of 3 and 4 average weight bits
(`--budget-bits`; uniform: every unpinned layer at 3 / 4 bits, so with the first/last layer pinned
at 8 it is larger than the budget) and at BOPs budgets equal to uniform W4A4's and W3A3's BOPs
(`--budget-bops`; activations 8 bits unless the allocator lowers them; `ip` measures 4-bit
activation candidates, mixq's default, `ip-acts` 2-6 bits like FracBits' range). Same finishing method for
all (--method, default mse), calibration on the first --calib training images, top-1 on the full
Fashion-MNIST test set, seconds of search + quantization.

Rows accumulate in bench/results/fracbits_table.json (a rerun skips rows already there).

Kernel-wise FracBits (`--fracbits-granularity channel`) is allocator `fracbits-kw`; its weight
bits per layer are each layer's mean over its channels.

  /usr/bin/python3 bench/fracbits_table.py [--models resnet,mobilenetv2,vit] [--budgets bits3,bits4,bopsW4A4,bopsW3A3]
      [--allocators uniform,ip,fracbits,fracbits-kw] [--calib 1024] [--method mse] [--iters 400] [--markdown-only]
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results", "fracbits_table.json")
BUDGETS = ["bits3", "bits4", "bopsW4A4", "bopsW3A3"]
ALLOCATORS = ["uniform", "ip", "fracbits"]
TRAIN = 20000  # fracbits-train: training images (one epoch of 64-image steps)


def key(model, budget, alloc, calib, method, iters):
    return f"{model}|{budget}|{alloc}|{calib}|{method}|{iters}"


def quantize(mixq, model, extra, calib, method, float_eval=True):
    cmd = [mixq, "quantize", os.path.join(ROOT, "models", f"fmnist-{model}.onnx"), "--calib", f"fmnist:train:{calib}",
           "--method", method, "--eval", "fmnist:test", "--json", "-q", "--seed", "0"] + extra
    if not float_eval:
        cmd.append("--no-float-eval")
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1], "cmd": " ".join(cmd[1:])}
    r = json.loads(p.stdout)
    return {"top1": r["top1_quant"], "top1_float": r["top1_float"], "avg_wbits": r["avg_wbits"],
            "size_bytes": r["size_bytes"], "bops": r["bops"], "seconds": r["seconds"], "wall": time.time() - t0,
            "bits": [l.get("wbits_mean", l["wbits"]) for l in r["layers"]], "abits": [l["abits"] for l in r["layers"]],
            "search_params": {k: v for k, v in r.get("search_params", {}).items() if not k.startswith("lambda")},
            "cmd": " ".join(cmd[1:])}


def run(mixq, rows, model, budget, alloc, calib, method, iters):
    if budget.startswith("bits"):
        b = budget[4:]
        extra = {"uniform": ["--wbits", b], "ip": ["--search", "ip", "--budget-bits", b],
                 "fracbits": ["--search", "fracbits", "--budget-bits", b, "--fracbits-iters", str(iters)],
                 # kernel-wise: one weight bit-width per output channel (weight_quant.channel_bits)
                 "fracbits-kw": ["--search", "fracbits", "--budget-bits", b, "--fracbits-iters", str(iters),
                                 "--fracbits-granularity", "channel"],
                 # training mode: one epoch over the first TRAIN training images, bits frozen at 80%
                 "fracbits-train": ["--search", "fracbits", "--budget-bits", b, "--train-data",
                                    f"fmnist:train:{TRAIN}", "--epochs", "1"]}[alloc]
    else:
        w, a = budget[5:].split("A")
        uni = rows.get(key(model, budget, "uniform", calib, method, iters))
        if alloc == "uniform":
            extra = ["--wbits", w, "--abits", a]
        else:
            if not uni or "error" in uni:
                return {"error": "uniform row missing (its BOPs are the budget)"}
            bops = f"{uni['bops']:.6g}"
            extra = {"ip": ["--search", "ip", "--budget-bops", bops],
                     # the IP with activation candidates as fine as FracBits' (its default is 4,8)
                     "ip-acts": ["--search", "ip", "--budget-bops", bops, "--act-candidates", "2,3,4,5,6"],
                     "fracbits": ["--search", "fracbits", "--budget-bops", bops, "--fracbits-iters", str(iters)]}[alloc]
    return quantize(mixq, model, extra, calib, method)


def fmt_bits(b):
    # kernel-wise rows report a layer's mean channel bits (its `wbits_mean`)
    return str(int(b)) if float(b).is_integer() else f"{b:.2f}"


def markdown(rows):
    out = ["| model | budget | allocator | top-1 % | avg w bits | bytes | MBOPs | seconds | weight bits per layer | input bits (if not all 8) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    models = ["resnet", "mobilenetv2", "vit"]
    order = lambda k: tuple(x.index(p) if p in x else len(x) for x, p in
                            zip((models, BUDGETS, ALLOCATORS + ["fracbits-kw", "fracbits-train", "ip-acts"]), k.split("|")[:3]))
    for k, v in sorted(rows.items(), key=lambda kv: order(kv[0])):
        model, budget, alloc = k.split("|")[:3]
        if "error" in v:
            out.append(f"| {model} | {budget} | {alloc} | error: {v['error']} | | | | | | |")
            continue
        out.append(f"| {model} | {budget} | {alloc} | {v['top1']:.2f} | {v['avg_wbits']:.2f} | {v['size_bytes']} | "
                   f"{v['bops'] / 1e6:.1f} | {v['seconds']:.0f} | {','.join(fmt_bits(x) for x in v['bits'])} | "
                   f"{'' if all(a in (8, None) for a in v['abits']) else ','.join(map(str, v['abits']))} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mixq", default=os.path.join(ROOT, "build", "mixq"))
    ap.add_argument("--models", default="resnet,mobilenetv2,vit")
    ap.add_argument("--budgets", default=",".join(BUDGETS))
    ap.add_argument("--allocators", default=None, help="default: " + ",".join(ALLOCATORS) + " (runs); all (table)")
    ap.add_argument("--calib", type=int, default=1024)
    ap.add_argument("--method", default="mse")
    ap.add_argument("--iters", type=int, default=400)
    ap.add_argument("--markdown-only", action="store_true")
    ap.add_argument("--results", default=RESULTS, help="rows file (a rerun skips rows already there)")
    args = ap.parse_args()
    results = args.results
    rows = json.load(open(results)) if os.path.exists(results) else {}
    os.makedirs(os.path.dirname(results), exist_ok=True)
    if not args.markdown_only:
        for model in args.models.split(","):
            for budget in args.budgets.split(","):
                for alloc in (args.allocators or ",".join(ALLOCATORS)).split(","):
                    k = key(model, budget, alloc, args.calib, args.method, args.iters)
                    if k in rows and "error" not in rows[k]:
                        continue
                    rows[k] = run(args.mixq, rows, model, budget, alloc, args.calib, args.method, args.iters)
                    v = rows[k]
                    print(k, json.dumps({x: v.get(x) for x in ("top1", "avg_wbits", "bops", "wall", "error")}),
                          file=sys.stderr, flush=True)
                    tmp = results + ".tmp"
                    with open(tmp, "w") as f:
                        json.dump(rows, f, indent=1)
                    os.replace(tmp, results)
    print(markdown({k: v for k, v in rows.items() if k.split("|")[0] in args.models.split(",")
                    and k.split("|")[1] in args.budgets.split(",")
                    and (args.allocators is None or k.split("|")[2] in args.allocators.split(","))}))


if __name__ == "__main__":
    main()
