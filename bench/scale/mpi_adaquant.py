#!/usr/bin/python3
"""AdaQuant's parallel mode on MPI ranks vs one process (issue 24), side by side in one run.

  /usr/bin/python3 bench/scale/mpi_adaquant.py [--model models/fmnist-resnet.onnx] [--calib fmnist:train:256]
      [--eval fmnist:test] [--np 2] [--repeats 1] [--extra "--wbits 4"]

Per repeat: `mixq quantize --method adaquant --adaquant-mode parallel` as one process on all cores,
as one process on one thread, and under `mpirun -np N` (cores / N threads per rank). Wall time,
the job's own quantize seconds, top-1 on --eval, and whether the model equals the one-thread
process's byte for byte (the ranks run one thread each: the same arithmetic). Rows are appended to
bench/results/scale/mpi_adaquant.jsonl; the markdown table goes to stdout.
"""
import argparse
import filecmp
import json
import os
import subprocess
import tempfile
import time

from common import CORES, MIXQ, MPI_ENV, RESULTS, cpu_name, mpi_configs

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="models/fmnist-resnet.onnx")
ap.add_argument("--calib", default="fmnist:train:256")
ap.add_argument("--eval", default="fmnist:test")
ap.add_argument("--np", default="2")
ap.add_argument("--repeats", type=int, default=1)
ap.add_argument("--extra", default="--wbits 4")
ap.add_argument("--mixq", default=MIXQ)
ap.add_argument("--out", default=os.path.join(RESULTS, "mpi_adaquant.jsonl"))
a = ap.parse_args()
cores, env, cpu = CORES, MPI_ENV, cpu_name()
cfgs = mpi_configs(a.np)
rows = []
with tempfile.TemporaryDirectory() as d:
    for r in range(a.repeats):
        for n, th in (cfgs if r % 2 == 0 else cfgs[::-1]):
            out = os.path.join(d, f"np{n}t{th}.onnx")
            cmd = [a.mixq, "quantize", a.model, "--method", "adaquant", "--adaquant-mode", "parallel", "--calib", a.calib,
                   "--eval", a.eval, "-o", out, "--json", "-q"] + a.extra.split()
            cmd = cmd + ["--threads", str(th)] if n == 1 else ["mpirun", "--oversubscribe", "-np", str(n)] + cmd
            t0 = time.time()
            p = subprocess.run(cmd, capture_output=True, text=True, env=env)
            wall = time.time() - t0
            if p.returncode:
                raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
            j = json.loads(p.stdout)
            same = None
            ref = os.path.join(d, "np1t1.onnx")
            if os.path.exists(ref):
                same = filecmp.cmp(out, ref, shallow=False)
            rows.append({"np": n, "threads": th, "wall_s": wall, "quantize_s": j["seconds"] if "seconds" in j else None,
                         "top1": j["top1_quant"], "same_as_1t": same, "repeat": r})
            print(f"repeat {r} np {n} threads {th}: wall {wall:.1f} s, top-1 {j['top1_quant']:.2f}", flush=True)
print(f"\nCPU: {cpu}, {cores} cores; {a.model}, AdaQuant parallel, calib {a.calib} {a.extra}\n")
print(f"| processes | threads each | wall s | speed-up vs 1 process x {cores} threads | top-1 | model = 1 process x 1 thread |")
print("|---|---|---|---|---|---|")
base = [x["wall_s"] for x in rows if x["np"] == 1 and x["threads"] == cores]
for n, th in cfgs:
    xs = [x for x in rows if x["np"] == n and x["threads"] == th]
    wall = sum(x["wall_s"] for x in xs) / len(xs)
    same = [x["same_as_1t"] for x in xs if x["same_as_1t"] is not None]
    print(f"| {'1 (no mpirun)' if n == 1 else 'mpirun -np %d' % n} | {th} | {wall:.1f} | {sum(base) / len(base) / wall:.2f}x | "
          f"{xs[0]['top1']:.2f} | {'yes' if same and all(same) else ('-' if not same else 'no')} |")
    with open(a.out, "a") as f:
        f.write(json.dumps({"model": a.model, "calib": a.calib, "extra": a.extra, "np": n, "threads": th, "cpu": cpu,
                            "wall_s": wall, "top1": xs[0]["top1"], "same_as_1t": same}) + "\n")
