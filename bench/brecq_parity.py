#!/usr/bin/python3
"""mixq's BRECQ side by side with BRECQ's reference code (issue 23), same images, same machine.

For every model x setting x seed: bench/brecq_reference.py runs the reference (unmodified, CPU)
and writes the 1,024 calibration images it drew; then `mixq quantize --method brecq` runs on
exactly those images (`--calib FILE.npz`) with the same iterations, seed and thread count, and
`--eval-weights-only` so both tools report the accuracy after the rounding phase as well. Each
finished run appends one JSON line to bench/results/brecq_parity.jsonl (a rerun skips the rows
already there, so the table fills over several sessions); the markdown table is printed from all
rows.

  /usr/bin/python3 bench/brecq_parity.py [--models resnet,refnet] [--settings W4A4,W2A4,W2A2]
      [--seeds 0,1,2] [--iters 20000] [--variants default,NAME...] [--threads 2] [--markdown-only]

--iters is the rounding iterations per unit (paper: 20,000); both tools run a quarter of it for
the activation steps (the paper's 5,000). A variant is mixq with extra flags (VARIANTS below), the
one-at-a-time switches of the issue. The reference's checkout: --ref-dir, else it is extracted
from the `fetch` mirror of github.com/yhhhli/BRECQ into bench/results/brecq-reference.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results", "brecq_parity.jsonl")
MIRROR = "/work/.mirror/yhhhli+BRECQ/repo"
REF_COMMIT = "e455d62e93c70351961f8991c913b59435bd165f"
ONNX = {"resnet": "models/fmnist-resnet.onnx", "refnet": "models/fmnist-refnet.onnx"}
# mixq's side: the default, and the switches of issue 23 item 2, one at a time.
VARIANTS = {
    "default": [],                                  # bf16 loops where the CPU has native bf16
    "fp32": ["--recon-precision", "fp32"],              # = default on CPUs without AMX
    "out-placement": ["--act-placement", "outputs"],
    "act-p2.4": ["--act-loss-p", "2.4"],                # the reference's p in the activation phase
    "init64": ["--act-init-samples", "64"],             # the reference's activation-range batch
    # inputs placement with the first layer's output readers at its pinned 8 bits (a user plan)
    "pin-out": ["--plan", os.path.join(ROOT, "bench", "results", "brecq_parity_plans", "pin-out-{setting}.json")],
    "pin-first-output": ["--pin-first-output"],         # the same as pin-out, as an option (any model)
    "recon-pinned": ["--recon-pinned"],               # the reference reconstructs first/last layers at 8 bits
    "act-seq": ["--act-init", "sequential"],          # ranges from 64 images through the quantizers before each
    "act-float-in": ["--act-inputs", "float"],         # the reference's activation phase reads float inputs
    "out-float-in": ["--act-placement", "outputs", "--act-inputs", "float"],
    "ref-like": ["--act-placement", "outputs", "--act-loss-p", "2.4", "--act-init-samples", "64"],
}


def ref_checkout(path):
    if os.path.isdir(os.path.join(path, "quant")):
        return path
    if not os.path.isdir(MIRROR):
        sys.exit(f"brecq_parity: no reference checkout at {path} and no mirror at {MIRROR}; "
                 "fetch github:yhhhli/BRECQ or pass --ref-dir")
    os.makedirs(path, exist_ok=True)
    subprocess.run(f"git --git-dir={MIRROR} archive {REF_COMMIT} | tar -x -C {path}", shell=True, check=True)
    return path


def load_rows():
    rows = []
    if os.path.exists(RESULTS):
        with open(RESULTS) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    return rows


def key(r):
    return (r["tool"], r.get("variant", ""), r["model"], r["setting"], r["seed"], r["iters_w"])


def append(row):
    with open(RESULTS, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def run_reference(args, ref_dir, model, setting, seed, calib):
    w, a = setting[1:].split("A")
    cmd = ["/usr/bin/python3", os.path.join(ROOT, "bench", "brecq_reference.py"), "--ref-dir", ref_dir,
           "--model", model, "--wbits", w, "--abits", a, "--seed", str(seed), "--iters-w", str(args.iters),
           "--iters-a", str(args.iters // 4), "--threads", str(args.threads), "--calib-out", calib]
    t0 = time.time()
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    row = json.loads(out.strip().splitlines()[-1])
    row["wall"] = time.time() - t0
    return row


def run_mixq(args, variant, model, setting, seed, calib):
    w, a = setting[1:].split("A")
    cmd = [args.mixq, "quantize", os.path.join(ROOT, ONNX[model]), "--calib", calib, "--method", "brecq",
           "--wbits", w, "--abits", a, "--iters", str(args.iters), "--seed", str(seed), "--threads",
           str(args.threads), "--eval", "fmnist:test", "--eval-weights-only", "--json", "-q"] + [f.replace("{setting}", setting) for f in VARIANTS[variant]]
    t0 = time.time()
    j = json.loads(subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout)
    return {"tool": "mixq", "variant": variant, "model": model, "setting": setting, "seed": seed,
            "iters_w": args.iters, "iters_a": args.iters // 4, "threads": args.threads,
            "top1_float": j["top1_float"], "top1_weights_only": j["top1_weights_only"], "top1": j["top1_quant"],
            "seconds": j["seconds"], "wall": time.time() - t0}


def stats(vals):
    if not vals:
        return "-"
    m = statistics.mean(vals)
    return f"{m:.2f} ({min(vals):.2f}-{max(vals):.2f}, n={len(vals)})" if len(vals) > 1 else f"{m:.2f} (n=1)"


def markdown(rows):
    groups = {}
    for r in rows:
        side = "reference" if r["tool"] == "reference" else f"mixq {r['variant']}"
        groups.setdefault((r["model"], r["iters_w"], r["setting"]), {}).setdefault(side, []).append(r)
    print("| model | iters (w / a) | W/A | side | top-1 mean (min-max, n) | weights-only top-1 | seconds (mean) | "
          "vs reference time |")
    print("|---|---|---|---|---|---|---|---|")
    for (model, iters, setting), sides in sorted(groups.items()):
        ref_s = statistics.mean(r["seconds"] for r in sides["reference"]) if "reference" in sides else None
        for side in sorted(sides, key=lambda s: (s != "reference", s)):
            rs = sides[side]
            secs = statistics.mean(r["seconds"] for r in rs)
            ratio = f"{secs / ref_s:.2f}x" if ref_s else "-"
            print(f"| {model} | {iters} / {iters // 4} | {setting} | {side} | {stats([r['top1'] for r in rs])} | "
                  f"{stats([r['top1_weights_only'] for r in rs])} | {secs:.0f} | {ratio} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="resnet")
    ap.add_argument("--settings", default="W4A4,W2A4,W2A2")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--iters", type=int, default=20000)
    ap.add_argument("--variants", default="default")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-reference", action="store_true", help="mixq rows only (the calibration files must exist)")
    ap.add_argument("--ref-dir", default=os.path.join(ROOT, "bench", "results", "brecq-reference"))
    ap.add_argument("--mixq", default=os.path.join(ROOT, "build", "mixq"))
    ap.add_argument("--markdown-only", action="store_true")
    args = ap.parse_args()
    if not args.markdown_only:
        ref_dir = ref_checkout(args.ref_dir)
        calib_dir = os.path.join(ROOT, "bench", "results", "brecq_parity_calib")
        os.makedirs(calib_dir, exist_ok=True)
        done = {key(r) for r in load_rows()}
        for model in args.models.split(","):
            for setting in args.settings.split(","):
                for seed in (int(s) for s in args.seeds.split(",")):
                    calib = os.path.join(calib_dir, f"{model}-seed{seed}.npz")
                    if not args.no_reference and ("reference", "", model, setting, seed, args.iters) not in done:
                        row = run_reference(args, ref_dir, model, setting, seed, calib)
                        row["variant"] = ""
                        append(row)
                    for v in args.variants.split(","):
                        if ("mixq", v, model, setting, seed, args.iters) in done:
                            continue
                        if not os.path.exists(calib):
                            sys.exit(f"brecq_parity: {calib} missing (run the reference row first)")
                        append(run_mixq(args, v, model, setting, seed, calib))
    markdown(load_rows())


if __name__ == "__main__":
    main()
