#!/usr/bin/env python3
"""Executor throughput vs PyTorch eager, side by side in one run.

For every fixture and batch size, alternates rounds of mixq's executor (bench/exec_bench.cpp,
a subprocess) and PyTorch eager (the same trained nn.Module from models/fixture_models.py with
models/state/<name>.pt, under torch.inference_mode) on the same images and thread count, and
reports the median images/s of each and their ratio (mixq / torch; goal >= 0.9).

Run with Debian's interpreter:  /usr/bin/python3 bench/exec_vs_torch.py [--threads 2] [--rounds 3]
Prints a markdown table for BENCHMARKS.md.
"""
import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "models"))
from fixture_models import build  # noqa: E402

FMNIST = os.environ.get("MIXQ_FMNIST_DIR", "/usr/share/datasets/fashion-mnist")


def test_images(n, meta):
    with gzip.open(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz")) as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16)[: n * 784].reshape(n, 1, 28, 28)
    x = torch.from_numpy(raw.copy()).to(torch.float32) * torch.tensor(meta["scale"], dtype=torch.float32)
    return (x - torch.tensor(meta["mean"], dtype=torch.float32)) / torch.tensor(meta["std"], dtype=torch.float32)


def time_torch(model, x, iters, warmup):
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return x.shape[0] / statistics.median(times)


def time_mixq(exe, path, batch, threads, iters, warmup):
    out = subprocess.run([exe, "--model", path, "--batch", str(batch), "--threads", str(threads),
                          "--iters", str(iters), "--warmup", str(warmup)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["images_per_second"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batches", default="1,256")
    ap.add_argument("--exe", default=os.path.join(ROOT, "build", "bench", "mixq_exec_bench"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    fixtures = json.load(open(os.path.join(ROOT, "models", "fixtures.json")))["models"]
    print(f"| model | batch | mixq img/s | PyTorch eager img/s | ratio |")
    print(f"|---|---|---|---|---|")
    for name, fx in fixtures.items():
        model = build(name)
        model.load_state_dict(torch.load(os.path.join(ROOT, "models", "state", name + ".pt")))
        model.eval()
        path = os.path.join(ROOT, "models", fx["file"])
        for batch in [int(b) for b in args.batches.split(",")]:
            x = test_images(batch, fx["preprocessing"])
            iters = 200 if batch == 1 else 10
            warmup = 20 if batch == 1 else 2
            ours, theirs = [], []
            for _ in range(args.rounds):
                ours.append(time_mixq(args.exe, path, batch, args.threads, iters, warmup))
                theirs.append(time_torch(model, x, iters, warmup))
            a, b = statistics.median(ours), statistics.median(theirs)
            print(f"| {name} | {batch} | {a:.0f} | {b:.0f} | {a / b:.2f} |", flush=True)


if __name__ == "__main__":
    main()
