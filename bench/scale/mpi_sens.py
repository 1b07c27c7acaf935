#!/usr/bin/python3
"""The sensitivity table on MPI ranks vs one process (issue 24), side by side in one run.

  /usr/bin/python3 bench/scale/mpi_sens.py MODEL.onnx --calib DATA [--samples 128] [--repeats 2]
      [--np 2,4] [--extra "--act-candidates none"] [--mixq build/mixq]

Per repeat, in alternating order: `mixq pareto` as one process with --threads = all cores, the
same with one thread (the parallel efficiency of threads, which bounds what ranks can add on the
same cores), then `mpirun -np N mixq pareto` for each N (each rank gets cores / N threads; N above
the core count is oversubscribed). Wall time of the whole command, the table's own seconds, peak RSS (rank 0's
--json), and whether the table and front equal the one-process ones. Rows are appended to
bench/results/scale/mpi_sens.jsonl; the markdown table goes to stdout.
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

from common import CORES, MIXQ, MPI_ENV, RESULTS, cpu_name, mpi_configs

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--calib", required=True)
ap.add_argument("--samples", type=int, default=128)
ap.add_argument("--repeats", type=int, default=2)
ap.add_argument("--np", default="2,4")
ap.add_argument("--extra", default="")
ap.add_argument("--mixq", default=MIXQ)
ap.add_argument("--out", default=os.path.join(RESULTS, "mpi_sens.jsonl"))
a = ap.parse_args()
cores, env, cpu = CORES, MPI_ENV, cpu_name()


def strip(t):
    t = dict(t)
    t.pop("seconds", None)
    return t


def run(cfg, d, tag):
    np_, threads = cfg
    table, front = os.path.join(d, tag + ".table.json"), os.path.join(d, tag + ".front.json")
    for f in (table, front):  # a table left by the previous repeat would be resumed, not measured
        if os.path.exists(f):
            os.remove(f)
    cmd = [a.mixq, "pareto", a.model, "--calib", a.calib, "--sens-samples", str(a.samples), "--table-out", table,
           "-o", front, "--json", "-q"] + a.extra.split()
    if np_ == 1:
        cmd += ["--threads", str(threads)]
    else:
        cmd = ["mpirun", "--oversubscribe", "-np", str(np_)] + cmd
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.time() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    j = json.loads(p.stdout)
    return {"np": np_, "threads": threads, "wall_s": wall, "table_s": j["sensitivity_seconds"], "peak_rss_mb": j["peak_rss_mb"],
            "table": strip(json.load(open(table))), "front": [
                {k: v for k, v in q.items() if not k.startswith("predicted")} for q in json.load(open(front))["points"]]}


nps = mpi_configs(a.np)
rows = []
with tempfile.TemporaryDirectory() as d:
    for r in range(a.repeats):
        order = nps if r % 2 == 0 else nps[::-1]
        for n in order:
            res = run(n, d, f"np{n[0]}t{n[1]}")
            rows.append(dict(res, repeat=r))
            print(f"repeat {r} np {n[0]} threads {n[1]}: wall {res['wall_s']:.1f} s, table {res['table_s']:.1f} s", flush=True)
base = [x for x in rows if x["np"] == 1 and x["threads"] == cores]
os.makedirs(os.path.dirname(a.out), exist_ok=True)
print(f"\nCPU: {cpu}, {cores} cores; {os.path.basename(a.model)}, {a.samples} samples {a.extra}\n")
print(f"| processes | threads each | wall s (mean) | table s (mean) | table speed-up vs 1 process x {cores} threads | peak RSS rank 0 MB | table = 1 process | front = 1 process |")
print("|---|---|---|---|---|---|---|---|")
t1 = sum(x["table_s"] for x in base) / len(base)
for n, th in nps:
    xs = [x for x in rows if x["np"] == n and x["threads"] == th]
    wall = sum(x["wall_s"] for x in xs) / len(xs)
    tab = sum(x["table_s"] for x in xs) / len(xs)
    same_t = all(x["table"] == base[0]["table"] for x in xs)
    same_f = all(x["front"] == base[0]["front"] for x in xs)
    rss = max(x["peak_rss_mb"] for x in xs)
    print(f"| {'1 (no mpirun)' if n == 1 else 'mpirun -np %d' % n} | {th} | {wall:.1f} | "
          f"{tab:.1f} | {t1 / tab:.2f}x | {rss:.0f} | {'yes' if same_t else 'no'} | {'yes' if same_f else 'no'} |")
    with open(a.out, "a") as f:
        f.write(json.dumps({"model": a.model, "samples": a.samples, "extra": a.extra, "np": n, "threads": th, "cpu": cpu,
                            "wall_s": wall, "table_s": tab, "peak_rss_mb": rss, "same_table": same_t,
                            "same_front": same_f, "runs": len(xs)}) + "\n")
