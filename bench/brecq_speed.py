#!/usr/bin/env python3
"""BRECQ reconstruction speed: mixq vs a PyTorch implementation of the same loop, side by side.

Alternates R rounds of four runs, in rotating order so machine noise hits all of them:
  (a) build/mixq quantize models/fmnist-resnet.onnx --calib fmnist:train:1024 --wbits 4 --abits 4
      --method brecq --iters N --threads T --recon-precision P --report <tmp> -q, for P = fp32 and
      (where the CPU has native bf16) bf16 (per block: method_report.units[*].timing and
      method_report.activation_units[*].timing), and
  (b) /usr/bin/python3 bench/brecq_torch.py --iters N --threads T --json: the loop as PyTorch code
      usually writes it (NCHW, float32; the reference), and the same with --channels-last
      --autocast bf16 (a tuned PyTorch loop),
and prints markdown tables of the median seconds per 1,000 iterations per block and phase, with
the ratios mixq / PyTorch reference (goal: <= 0.5).

Plain python3 (standard library only):
    python3 bench/brecq_speed.py [--iters 1000] [--rounds 2] [--threads 2]
"""
import argparse
import datetime
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_mixq(exe, iters, threads, precision):
    with tempfile.TemporaryDirectory() as d:
        rep = os.path.join(d, "report.json")
        cmd = [exe, "quantize", os.path.join(ROOT, "models", "fmnist-resnet.onnx"), "--calib", "fmnist:train:1024",
               "--wbits", "4", "--abits", "4", "--method", "brecq", "--iters", str(iters), "--threads", str(threads),
               "--recon-precision", precision, "--report", rep, "-o", os.path.join(d, "q.onnx"), "-q"]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"}
        mr = json.load(open(rep))["method_report"]
    w = [(u["unit"], u["timing"]["seconds_per_1000_iters"], u["timing"]["seconds"]) for u in mr["units"]]
    a = [(u["unit"], u["timing"]["seconds_per_1000_iters"], u["timing"]["seconds"]) for u in mr.get("activation_units", [])]
    return {"weights": w, "acts": a, "wall": wall, "act_iters": mr.get("act_iters")}


def run_torch(py, iters, threads, extra):
    cmd = [py, os.path.join(ROOT, "bench", "brecq_torch.py"), "--iters", str(iters), "--threads", str(threads),
           "--json"] + extra
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    r = json.loads(out.stdout.strip().splitlines()[-1])
    w = [(b["name"], b["weight_s_per_1000"], b["weight_s"]) for b in r["blocks"]]
    a = [(b["name"], b["act_s_per_1000"], b["act_s"]) for b in r["blocks"]]
    return {"weights": w, "acts": a, "wall": wall, "act_iters": r["act_iters"], "cache_s": r["cache_s"],
            "acc": r.get("accuracy_w4a4")}


def med(xs):
    return statistics.median(xs)


# name -> (kind, argument): the PyTorch reference first.
VARIANTS = [
    ("PyTorch (NCHW fp32)", "torch", []),
    ("PyTorch (channels-last, bf16 autocast)", "torch", ["--channels-last", "--autocast", "bf16"]),
    ("mixq fp32", "mixq", "fp32"),
    ("mixq bf16", "mixq", "bf16"),
]


def table(title, runs, names, key):
    ref = runs[names[0]]
    nb = len(ref[0][key])
    for n in names:
        if len(runs[n][0][key]) != nb:
            sys.exit(f"{key}: {n} reports {len(runs[n][0][key])} units, {names[0]} {nb}")
    mixq = [n for n in names if n.startswith("mixq")]
    head = "| block | " + " | ".join(f"{n} s/1000 it" for n in names) + " | " + \
        " | ".join(f"{n} / PyTorch" for n in mixq) + " |"
    lines = [f"**{title}**", "", head, "|" + "---|" * (1 + len(names) + len(mixq))]
    tot = {n: 0.0 for n in names}
    for i in range(nb):
        v = {n: med([r[key][i][1] for r in runs[n]]) for n in names}
        for n in names:
            tot[n] += v[n]
        lines.append(f"| {ref[0][key][i][0]} | " + " | ".join(f"{v[n]:.2f}" for n in names) + " | " +
                     " | ".join(f"{v[n] / v[names[0]]:.2f}" for n in mixq) + " |")
    lines.append("| **total** | " + " | ".join(f"**{tot[n]:.2f}**" for n in names) + " | " +
                 " | ".join(f"**{tot[n] / tot[names[0]]:.2f}**" for n in mixq) + " |")
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=1000, help="weight iterations per block (activation: iters/4)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--exe", default=os.path.join(ROOT, "build", "mixq"))
    ap.add_argument("--python", default="/usr/bin/python3", help="interpreter with torch for bench/brecq_torch.py")
    args = ap.parse_args()

    runs = {name: [] for name, _, _ in VARIANTS}
    skipped = {}
    for r in range(args.rounds):
        k = r % len(VARIANTS)  # rotate the order so slow drifts hit every variant
        for name, kind, arg in VARIANTS[k:] + VARIANTS[:k]:
            if name in skipped:
                continue
            x = run_mixq(args.exe, args.iters, args.threads, arg) if kind == "mixq" else \
                run_torch(args.python, args.iters, args.threads, arg)
            if "error" in x:
                skipped[name] = x["error"]
                print(f"round {r + 1}: {name} skipped: {x['error']}", file=sys.stderr)
                continue
            runs[name].append(x)
            print(f"round {r + 1}: {name} wall {x['wall']:.1f} s, s/1000 it weights "
                  f"{[round(u[1], 2) for u in x['weights']]} acts {[round(u[1], 2) for u in x['acts']]}",
                  file=sys.stderr)
    names = [n for n, _, _ in VARIANTS if runs[n]]
    ref = names[0]
    act_iters = {n: runs[n][0]["act_iters"] for n in names}
    print(f"BRECQ loop speed on fmnist-resnet (W4A4), {args.iters} weight / {act_iters[ref]} activation iterations "
          f"per block, {args.threads} threads, median of {args.rounds} rounds in rotating order, "
          f"{datetime.date.today().isoformat()}.")
    print()
    print("Command: `" + " ".join(["python3", "bench/brecq_speed.py"] + [shlex.quote(a) for a in sys.argv[1:]]) + "`")
    print()
    print("\n".join(table("Weight phase (learned rounding)", runs, names, "weights")))
    print()
    print("\n".join(table("Activation phase (step sizes)", runs, names, "acts")))
    print()
    loops = {n: med([sum(x[2] for x in r["weights"] + r["acts"]) for r in runs[n]]) for n in names}
    walls = {n: med([r["wall"] for r in runs[n]]) for n in names}
    print("Loop seconds, both phases: " + ", ".join(f"{n} {loops[n]:.1f} s" for n in names) + ". Ratios to " +
          f"{ref}: " + ", ".join(f"{n} {loops[n] / loops[ref]:.2f}" for n in names[1:]) + ".")
    print()
    print("Whole run (wall, incl. caching, calibration, startup): " +
          ", ".join(f"{n} {walls[n]:.1f} s" for n in names) + ".")
    for n, why in skipped.items():
        print(f"\n{n}: not run ({why}).")
    if len(set(act_iters.values())) > 1:
        print(f"\nNote: activation iterations differ: {act_iters}.")


if __name__ == "__main__":
    main()
