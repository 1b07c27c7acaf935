#!/usr/bin/env python3
"""Cost of the sensitivity table (+ IP search): per layer, per candidate, and its growth with
layers, candidates and samples; the cut-based probe against full re-runs in the same run.

Each row runs `mixq quantize MODEL --search ip --budget-bits B` with a fresh table and reads
`allocation.sensitivity_seconds` and `seconds_total` from --json. "full" sets MIXQ_PROBE_FULL=1
(every candidate re-runs the whole model: the previous behaviour); "cut" is the default (a
candidate re-runs only from a cached cut before its layer). Rows append to
bench/results/sens_cost.jsonl as they finish; a Markdown table is printed at the end.

  python3 bench/sens_cost.py [--mixq build/mixq] [--models NAME=PATH[:calib-spec],...]
      [--samples 64,128,256] [--bits 2,3,4,5,6,7,8 --bits-small 2,4,8] [--modes full,cut]
      [--before OLD_MIXQ --repeat 2]

--before OLD_MIXQ compares two builds instead of the two probe modes: every setting runs OLD_MIXQ
("before") and --mixq ("after") alternately, --repeat times, each row with the 1-minute load
average at its start and end (the machine may be shared: alternating keeps the two under the same
load).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGENET = ["--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225"]


def cpu_summary():
    info = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    name = next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("Model name")), "?")
    ncpu = next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("CPU(s)")), "?")
    flags = next((l.split(":", 1)[1].split() for l in info.splitlines() if l.startswith("Flags")), [])
    keep = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16") if f in flags]
    return f"{name}, {ncpu} CPUs, flags {' '.join(keep) or 'no AVX2'}"


def run(mixq, model, calib, samples, bits, mode, extra):
    with tempfile.TemporaryDirectory() as d:
        cmd = [mixq, "quantize", model, "--calib", f"{calib}:{samples}" if calib.startswith("fmnist") else calib,
               "--search", "ip", "--budget-bits", "4.5", "--sens-samples", str(samples), "--sens-bits", bits,
               "--act-candidates", "none", "--sens-cache", os.path.join(d, "t.json"), "--json", "-q"] + extra
        env = dict(os.environ)
        if mode == "full":
            env["MIXQ_PROBE_FULL"] = "1"
        load0 = os.getloadavg()[0]
        t0 = time.time()
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.time() - t0
        load = f"{load0:.1f}-{os.getloadavg()[0]:.1f}"
        if p.returncode != 0:
            return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"}
        j = json.loads(p.stdout)
        layers = sum(1 for L in j["layers"] if not L.get("pinned"))
        cands = len([b for b in bits.split(",") if int(b) != 8])
        sec = j["allocation"]["sensitivity_seconds"]
        return {"layers": layers, "candidates": cands, "sens_seconds": sec, "seconds_total": j["seconds_total"],
                "wall": wall, "load": load, "ms_per_layer_candidate": 1000 * sec / max(1, layers * cands),
                "ms_per_layer_candidate_sample": 1000 * sec / max(1, layers * cands * samples)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mixq", default=os.path.join(ROOT, "build", "mixq"))
    ap.add_argument("--models", default=",".join(f"{m}={ROOT}/models/fmnist-{m}.onnx" for m in ("resnet", "mobilenetv2", "vit")))
    ap.add_argument("--samples", default="64,128,256")
    ap.add_argument("--bits", default="2,3,4,5,6,7,8")
    ap.add_argument("--bits-small", default="2,4,8", help="second candidate set at the largest sample count")
    ap.add_argument("--modes", default="full,cut")
    ap.add_argument("--imagenet", default="", help="comma list of model names fed fmnist resized with ImageNet mean/std")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "sens_cost.jsonl"))
    ap.add_argument("--before", default="", help="an older mixq build: compare it with --mixq (see above)")
    ap.add_argument("--repeat", type=int, default=1, help="with --before: runs of each build per setting")
    a = ap.parse_args()
    cpu = cpu_summary()
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    rows = []
    imagenet = set(filter(None, a.imagenet.split(",")))
    for spec in a.models.split(","):
        name, path = spec.split("=", 1)
        calib = "fmnist:train"
        if ":" in path and not path.startswith("/"):
            path, calib = path.split(":", 1)
        extra = IMAGENET if name in imagenet else []
        samples = [int(s) for s in a.samples.split(",")]
        configs = [(s, a.bits) for s in samples] + ([(samples[-1], a.bits_small)] if a.bits_small else [])
        for s, bits in configs:
            # Side by side: full then cut for each setting, or the two builds alternately.
            runs = [(a.mixq, m) for m in a.modes.split(",")]
            if a.before:
                runs = [(b, m) for _ in range(a.repeat) for b, m in ((a.before, "before"), (a.mixq, "after"))]
            for mixq, mode in runs:
                r = run(mixq, path, calib, s, bits, "cut" if a.before else mode, extra)
                r.update({"model": name, "samples": s, "bits": bits, "mode": mode, "cpu": cpu, "commit": commit,
                          "date": time.strftime("%Y-%m-%d")})
                rows.append(r)
                with open(a.out, "a") as f:
                    f.write(json.dumps(r) + "\n")
                print(json.dumps(r), file=sys.stderr, flush=True)
    print(f"CPU: {cpu}; commit {commit}\n")
    print("| model | samples | candidate bits | layers | mode | table s | total s | ms / (layer x candidate) | us / (layer x candidate x sample) | load avg |")
    print("|---|---:|---|---:|---|---:|---:|---:|---:|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['model']} | {r['samples']} | {r['bits']} | | {r['mode']} | error: {r['error']} | | | | |")
            continue
        print(f"| {r['model']} | {r['samples']} | {r['bits']} | {r['layers']} | {r['mode']} | {r['sens_seconds']:.1f} | "
              f"{r['seconds_total']:.1f} | {r['ms_per_layer_candidate']:.1f} | {1000 * r['ms_per_layer_candidate_sample']:.1f} | "
              f"{r['load']} |")


if __name__ == "__main__":
    main()
