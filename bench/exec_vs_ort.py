#!/usr/bin/env python3
"""mixq's executor vs ONNX Runtime: float throughput, side by side in one run.

For every model, alternates rounds of mixq's libtorch executor (build/bench/mixq_exec_bench, a
subprocess) and ONNX Runtime (CPUExecutionProvider, default graph optimizations,
intra_op_num_threads = --threads, inter_op 1) on the same float model, the same input batch (a
.npy file both read) and the same thread count; each round reports the median time of `--iters`
timed runs after warmup, and the table shows the median over rounds of each engine's images/s and
ORT / mixq (how many times faster ORT is; goal <= 1.5).

Inputs: Fashion-MNIST test images preprocessed as the model's metadata says for the fixtures
(metadata mixq.dataset = fmnist), otherwise standard-normal noise (seed 0). Dynamic dims other
than the batch take their values from `--input-shape C,H,W` (the dims after the batch; e.g. the zoo
exports with dynamic height/width: `--input-shape 3,224,224`); without it they are an error.

Models: the paths given; by default the fixtures (models/fmnist-*.onnx) plus torchvision 224x224
classifiers with random weights (weights=None, eval, opset 13, dynamic batch) exported on the fly
with Debian's /usr/bin/python3 (torch + python3-torchvision) into --zoo-dir (skipped with a note
when torchvision is missing).

`--before EXE` adds a column for another build of mixq_exec_bench (e.g. a copy of the binary made
before a change), interleaved in the same rounds.

`--env "NAME=VALUE [NAME=VALUE...]"` (repeatable) adds a mixq column run with that environment
(e.g. MIXQ_EXEC_LEGACY=1: the executor without the channels-last and Conv + activation fast paths;
OMP_WAIT_POLICY=PASSIVE: libgomp threads sleep at once instead of spinning, which matters on a
shared machine), interleaved in the same rounds.

ONNX Runtime is a benchmark peer only (never a mixq dependency): run this with a Python that has
onnxruntime and numpy, or let it create bench/.venv from PyPI on first use and re-run itself there.

  python3 bench/exec_vs_ort.py [--threads 2] [--batch 32] [--rounds 5] [--env MIXQ_EXEC_LEGACY=1]
                               [--before /tmp/mixq_before_exec]
                               [model.onnx ...]

Rows are appended to bench/results/exec_vs_ort.jsonl; a Markdown table goes to stdout.
"""
import argparse
import datetime
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, "bench", ".venv")
FMNIST = os.environ.get("MIXQ_FMNIST_DIR", "/usr/share/datasets/fashion-mnist")
ZOO = ["mobilenet_v3_small", "mobilenet_v2", "resnet18", "efficientnet_b0", "shufflenet_v2_x1_0",
       "mnasnet1_0"]

EXPORT = r"""
import sys, torch, torchvision
torch.manual_seed(0)
name, path = sys.argv[1], sys.argv[2]
m = getattr(torchvision.models, name)(weights=None).eval()
torch.onnx.export(m, torch.randn(1, 3, 224, 224), path, opset_version=13, input_names=["input"],
                  output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
"""


def ensure_ort():
    try:
        import numpy  # noqa: F401
        import onnxruntime  # noqa: F401
        return
    except ImportError:
        pass
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "onnxruntime", "numpy"], check=True)
    os.execv(py, [py] + sys.argv)


def export_zoo(zoo_dir):
    os.makedirs(zoo_dir, exist_ok=True)
    paths = []
    for name in ZOO:
        path = os.path.join(zoo_dir, name + ".onnx")
        if not os.path.exists(path):
            r = subprocess.run(["/usr/bin/python3", "-c", EXPORT, name, path], capture_output=True, text=True)
            if r.returncode != 0:
                print(f"note: could not export {name} ({r.stderr.strip().splitlines()[-1:]}); skipped",
                      file=sys.stderr)
                continue
        paths.append(path)
    return paths


def make_input(sess, batch, path, fill=None):
    import numpy as np
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        sys.exit(f"{path}: {len(inputs)} inputs; this bench feeds single-input models")
    i = inputs[0]
    shape = [batch] + list(i.shape[1:])
    if fill is not None:
        if len(fill) != len(shape) - 1:
            sys.exit(f"{path}: --input-shape has {len(fill)} dims, input {i.name} {i.shape} needs {len(shape) - 1}")
        for k, d in enumerate(shape[1:], start=1):
            if isinstance(d, int) and d != fill[k - 1]:
                sys.exit(f"{path}: --input-shape dim {k} = {fill[k - 1]}, the model fixes it at {d}")
            shape[k] = fill[k - 1]
    if any(not isinstance(d, int) for d in shape):
        sys.exit(f"{path}: input {i.name} has dynamic dims {i.shape} besides the batch (give --input-shape)")
    meta = sess.get_modelmeta().custom_metadata_map
    if meta.get("mixq.dataset") == "fmnist":
        with gzip.open(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz")) as f:
            n = int(np.prod(shape))
            raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16)[:n].reshape(shape)
        x = raw.astype(np.float32) * np.float32(float(meta.get("mixq.input_scale", 1 / 255)))
        return (x - np.float32(float(meta.get("mixq.input_mean", 0)))) / np.float32(float(meta.get("mixq.input_std", 1)))
    return np.random.RandomState(0).standard_normal(shape).astype(np.float32)


def time_ort(sess, feed, iters, warmup):
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_mixq(exe, path, data, batch, threads, iters, warmup, env):
    e = dict(os.environ)
    e.update(env)
    out = subprocess.run([exe, "--model", path, "--data", data, "--batch", str(batch), "--threads", str(threads),
                          "--iters", str(iters), "--warmup", str(warmup)],
                         check=True, capture_output=True, text=True, env=e).stdout
    return json.loads(out)["median_ms"] / 1e3


def cpu_name():
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    ensure_ort()
    import numpy as np
    import onnxruntime as ort

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=0, help="timed runs per round (default: --seconds of ORT time)")
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE: an extra mixq column")
    ap.add_argument("--input-shape", help="C,H,W (dims after the batch) for inputs with dynamic dims")
    ap.add_argument("--zoo-dir", default="/tmp/mixq-speedzoo")
    ap.add_argument("--no-zoo", action="store_true")
    ap.add_argument("--exe", default=os.path.join(ROOT, "build", "bench", "mixq_exec_bench"))
    ap.add_argument("--before", help="another mixq_exec_bench binary: a 'before' column")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "exec_vs_ort.jsonl"))
    args = ap.parse_args()

    models = args.models
    if not models:
        models = sorted(os.path.join(ROOT, "models", f) for f in os.listdir(os.path.join(ROOT, "models"))
                        if f.startswith("fmnist-") and f.endswith(".onnx"))
        if not args.no_zoo:
            models += export_zoo(args.zoo_dir)
    variants = [("mixq", {}, args.exe)]
    if args.before:
        variants.append(("before", {}, args.before))
    for spec in args.env:
        variants.append((spec, dict(kv.split("=", 1) for kv in spec.split()), args.exe))

    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    cpu = cpu_name()
    print(f"CPU: {cpu}; {args.threads} threads; batch {args.batch}; {args.rounds} rounds; "
          f"onnxruntime {ort.__version__}; commit {commit}{'+dirty' if dirty else ''}; {stamp}\n")
    head = "| model | ORT img/s | " + " | ".join(f"{n} img/s | ORT / {n}" for n, _, _ in variants) + " |"
    print(head)
    print("|---" * (2 + 2 * len(variants)) + "|", flush=True)

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    tmp = os.path.join(args.zoo_dir, "inputs")
    os.makedirs(tmp, exist_ok=True)
    for path in models:
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        fill = [int(d) for d in args.input_shape.split(",")] if args.input_shape else None
        x = make_input(sess, args.batch, path, fill)
        data = os.path.join(tmp, os.path.basename(path) + f".b{args.batch}.npy")
        np.save(data, x)
        feed = {sess.get_inputs()[0].name: x}
        # Iterations: about --seconds of ORT time per round, at least 3.
        probe = time_ort(sess, feed, 3, 1)
        iters = args.iters or max(3, min(200, int(args.seconds / max(probe, 1e-6))))
        ort_t, ours = [], {n: [] for n, _, _ in variants}
        for _ in range(args.rounds):
            for n, env, exe in variants:
                ours[n].append(time_mixq(exe, path, data, args.batch, args.threads, iters, args.warmup, env))
            ort_t.append(time_ort(sess, feed, iters, args.warmup))
        name = os.path.splitext(os.path.basename(path))[0]
        ort_ips = args.batch / statistics.median(ort_t)
        cells = [f"{ort_ips:.0f}"]
        row = {"model": name, "path": path, "batch": args.batch, "threads": args.threads, "rounds": args.rounds,
               "iters": iters, "cpu": cpu, "commit": commit, "dirty": bool(dirty), "date": stamp,
               "ort_version": ort.__version__, "ort_images_per_second": ort_ips, "mixq": {}}
        for n, _, _ in variants:
            ips = args.batch / statistics.median(ours[n])
            cells += [f"{ips:.0f}", f"{ort_ips / ips:.2f}"]
            row["mixq"][n] = {"images_per_second": ips, "ort_over_mixq": ort_ips / ips}
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
