#!/usr/bin/env python3
"""BRECQ reconstruction speed: mixq vs a PyTorch implementation of the same loop, side by side.

Alternates R rounds of
  (a) build/mixq quantize models/fmnist-resnet.onnx --calib fmnist:train:1024 --wbits 4 --abits 4
      --method brecq --iters N --threads T --report <tmp> -q
      (per block: method_report.units[*].timing.seconds_per_1000_iters for the weight phase and
      method_report.activation_units[*].timing.seconds_per_1000_iters for the activation phase), and
  (b) /usr/bin/python3 bench/brecq_torch.py --iters N --threads T --json (bench/brecq_torch.py),
so machine noise hits both, and prints a markdown table of the median seconds per 1,000 iterations
per block and phase, with the ratio mixq / PyTorch (goal: <= 0.5).

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


def run_mixq(exe, iters, threads):
    with tempfile.TemporaryDirectory() as d:
        rep = os.path.join(d, "report.json")
        cmd = [exe, "quantize", os.path.join(ROOT, "models", "fmnist-resnet.onnx"), "--calib", "fmnist:train:1024",
               "--wbits", "4", "--abits", "4", "--method", "brecq", "--iters", str(iters), "--threads", str(threads),
               "--report", rep, "-q"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        mr = json.load(open(rep))["method_report"]
    w = [(u["unit"], u["timing"]["seconds_per_1000_iters"], u["timing"]["seconds"]) for u in mr["units"]]
    a = [(u["unit"], u["timing"]["seconds_per_1000_iters"], u["timing"]["seconds"]) for u in mr.get("activation_units", [])]
    return {"weights": w, "acts": a, "wall": wall, "act_iters": mr.get("act_iters")}


def run_torch(py, iters, threads):
    cmd = [py, os.path.join(ROOT, "bench", "brecq_torch.py"), "--iters", str(iters), "--threads", str(threads), "--json"]
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


def table(title, mixq_runs, torch_runs, key):
    nb = len(mixq_runs[0][key])
    if nb != len(torch_runs[0][key]):
        sys.exit(f"{key}: mixq reports {nb} units, PyTorch {len(torch_runs[0][key])}")
    lines = [f"**{title}**", "",
             "| block | mixq s/1000 it | PyTorch s/1000 it | ratio mixq/PyTorch |", "|---|---|---|---|"]
    tm = tt = 0.0
    for i in range(nb):
        m = med([r[key][i][1] for r in mixq_runs])
        t = med([r[key][i][1] for r in torch_runs])
        tm, tt = tm + m, tt + t
        name = mixq_runs[0][key][i][0]
        if name != torch_runs[0][key][i][0]:
            name += f" / {torch_runs[0][key][i][0]}"
        lines.append(f"| {name} | {m:.2f} | {t:.2f} | {m / t:.2f} |")
    lines.append(f"| **total** | **{tm:.2f}** | **{tt:.2f}** | **{tm / tt:.2f}** |")
    return lines, tm, tt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=1000, help="weight iterations per block (activation: iters/4)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--exe", default=os.path.join(ROOT, "build", "mixq"))
    ap.add_argument("--python", default="/usr/bin/python3", help="interpreter with torch for bench/brecq_torch.py")
    args = ap.parse_args()

    mixq_runs, torch_runs = [], []
    for r in range(args.rounds):
        # alternate which side goes first so slow drifts hit both
        order = ("mixq", "torch") if r % 2 == 0 else ("torch", "mixq")
        for side in order:
            if side == "mixq":
                mixq_runs.append(run_mixq(args.exe, args.iters, args.threads))
                x = mixq_runs[-1]
                print(f"round {r + 1}: mixq wall {x['wall']:.1f} s, s/1000 it weights "
                      f"{[round(u[1], 1) for u in x['weights']]} acts {[round(u[1], 1) for u in x['acts']]}", file=sys.stderr)
            else:
                torch_runs.append(run_torch(args.python, args.iters, args.threads))
                x = torch_runs[-1]
                print(f"round {r + 1}: PyTorch wall {x['wall']:.1f} s, s/1000 it weights "
                      f"{[round(u[1], 1) for u in x['weights']]} acts {[round(u[1], 1) for u in x['acts']]}, "
                      f"W4A4 acc (2000 test images) {x['acc']}", file=sys.stderr)

    act_m, act_t = mixq_runs[0]["act_iters"], torch_runs[0]["act_iters"]
    print(f"BRECQ loop speed on fmnist-resnet, {args.iters} weight / {act_t} activation iterations per block, "
          f"{args.threads} threads, median of {args.rounds} alternating rounds, {datetime.date.today().isoformat()}.")
    print()
    print("Command: `" + " ".join(["python3", "bench/brecq_speed.py"] + [shlex.quote(a) for a in sys.argv[1:]]) + "`")
    print()
    lw, wm, wt = table("Weight phase (learned rounding)", mixq_runs, torch_runs, "weights")
    la, am, at = table("Activation phase (step sizes)", mixq_runs, torch_runs, "acts")
    print("\n".join(lw))
    print()
    print("\n".join(la))
    print()
    tot_m = med([sum(x[2] for x in r["weights"] + r["acts"]) for r in mixq_runs])
    tot_t = med([sum(x[2] for x in r["weights"] + r["acts"]) for r in torch_runs])
    print(f"Loop seconds, both phases: mixq {tot_m:.1f} s, PyTorch {tot_t:.1f} s, ratio {tot_m / tot_t:.2f}. "
          f"Whole run (wall, incl. caching/calibration/startup): mixq {med([r['wall'] for r in mixq_runs]):.1f} s, "
          f"PyTorch {med([r['wall'] for r in torch_runs]):.1f} s.")
    if act_m != act_t:
        print(f"\nNote: activation iterations differ: mixq {act_m}, PyTorch {act_t}.")


if __name__ == "__main__":
    main()
