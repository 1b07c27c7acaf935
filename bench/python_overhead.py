#!/usr/bin/env python3
"""The same quantize job through the CLI and through `mixq.quantize`, alternating, side by side.

    PYTHONPATH=build/python /usr/bin/python3 bench/python_overhead.py [--rounds 5] [--mixq build/mixq]

Each round runs `mixq quantize ...` and a `python3 -c "import mixq; mixq.quantize(...)"` process
(same model, data, options and seed; both with the OpenBLAS / libgomp variables the CLI would set,
so neither re-executes) and records each whole process's wall and CPU time (user + system, from
wait4) and the job's own `seconds_total`. Prints medians and the Python / CLI ratios and appends
one row per run to bench/results/python_overhead.tsv."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from exec_vs_ort import cpu_name  # noqa: E402 - one lscpu reader for every bench script

JOB = dict(model=str(ROOT / "models" / "fmnist-resnet.onnx"), calib="fmnist:train:1024", eval="fmnist:test:2000",
           search="ip", budget_bits=4, method="mse", seed=0)


def cli_args(mixq):
    j = JOB
    return [mixq, "quantize", j["model"], "--calib", j["calib"], "--eval", j["eval"], "--search", j["search"],
            "--budget-bits", str(j["budget_bits"]), "--method", j["method"], "--seed", str(j["seed"]), "--json", "-q"]


PY = """
import json, sys, time, mixq
j = json.loads(sys.argv[1])
t0 = time.perf_counter()
r = mixq.quantize(j.pop("model"), calib=j.pop("calib"), quiet=True, **j)
r.report["call_seconds"] = time.perf_counter() - t0
print(json.dumps(r.report))
"""


def timed(cmd, env):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    out = p.stdout.read().decode()
    if status != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {p.stderr.read().decode()[-2000:]}")
    return wall, ru.ru_utime + ru.ru_stime, json.loads(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mixq", default=str(ROOT / "build" / "mixq"))
    a = ap.parse_args()
    import mixq
    env = dict(os.environ)
    for kv in mixq.runtime_env_changes().split():
        k, v = kv.split("=", 1)
        env.setdefault(k, v)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    rows = {"cli": [], "python": []}
    results = ROOT / "bench" / "results" / "python_overhead.tsv"
    new = not results.exists()
    with open(results, "a") as f:
        if new:
            f.write("date\tcpu\tfront\tround\twall_s\tcpu_s\tjob_seconds_total\ttop1_quant\tsize_bytes\n")
        for r in range(a.rounds):
            order = ("cli", "python") if r % 2 == 0 else ("python", "cli")
            for front in order:
                cmd = cli_args(a.mixq) if front == "cli" else [sys.executable, "-c", PY, json.dumps(JOB)]
                wall, cpu, rep = timed(cmd, env)
                rows[front].append((wall, cpu, rep["seconds_total"], rep["top1_quant"], rep["size_bytes"],
                                    rep.get("call_seconds", wall)))
                f.write(f"{time.strftime('%FT%T')}\t{cpu_name()}\t{front}\t{r}\t{wall:.3f}\t{cpu:.3f}\t"
                        f"{rep['seconds_total']:.3f}\t{rep['top1_quant']}\t{rep['size_bytes']}\n")
                f.flush()
                print(f"round {r} {front:6s}: wall {wall:.2f} s, cpu {cpu:.2f} s, job {rep['seconds_total']:.2f} s, "
                      f"top-1 {rep['top1_quant']}, {rep['size_bytes']} bytes", flush=True)
    med = {k: [statistics.median(x[i] for x in v) for i in (0, 1, 2, 5)] for k, v in rows.items()}
    same = {(x[3], x[4]) for v in rows.values() for x in v}
    print(f"\nCPU: {cpu_name()}; env {mixq.runtime_env_changes() or '(nothing to set)'}")
    # "call s": the mixq.quantize call inside the Python process (what a script or notebook waits
    # for); for the CLI the whole process, which is what its user waits for.
    print(f"{'':10s} {'wall s':>8s} {'cpu s':>8s} {'job s':>8s} {'call s':>8s}")
    for k in ("cli", "python"):
        print(f"{k:10s} {med[k][0]:8.2f} {med[k][1]:8.2f} {med[k][2]:8.2f} {med[k][3]:8.2f}")
    print(f"python/cli {med['python'][0] / med['cli'][0]:8.3f} {med['python'][1] / med['cli'][1]:8.3f} "
          f"{med['python'][2] / med['cli'][2]:8.3f} {med['python'][3] / med['cli'][3]:8.3f}")
    print("same result every run:", len(same) == 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
