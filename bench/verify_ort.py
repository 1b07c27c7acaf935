#!/usr/bin/env python3
"""Runs mixq's exported QDQ models in ONNX Runtime and compares top-1 with mixq's simulation.

For every fixture and several plans (uniform W8A8 per-tensor and per-channel, W4A8 MSE, W2A8 MSE,
per-group W4, MixQuant at a 4-bit average, W4A4), `mixq quantize -o` writes the QDQ model and
reports mixq's simulated top-1; ONNX Runtime then evaluates the same file on the full
Fashion-MNIST test set twice: with graph optimizations off (ORT_DISABLE_ALL: every
QuantizeLinear/DequantizeLinear/float op runs as written, the semantics the QDQ file states and the
simulation computes) and with ORT's default optimizations (QDQ pairs fused into integer kernels
such as QLinearConv, which requantize in their own arithmetic, so they are a second
implementation, not the file's meaning). Acceptance: |mixq - ORT as written| <= 0.1 points
everywhere; the fused column is reported beside it.

ONNX Runtime is a verification tool only (never a mixq dependency): this script installs it into
a private virtualenv (bench/.venv) from PyPI on first use.

  python3 bench/verify_ort.py [--mixq build/mixq] [--models fmnist-resnet,...]
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, "bench", ".venv")
FMNIST = os.environ.get("MIXQ_FMNIST_DIR", "/usr/share/datasets/fashion-mnist")

PLANS = [
    ("W8A8 per-tensor", ["--wbits", "8", "--granularity", "per_tensor"]),
    ("W8A8 per-channel", ["--wbits", "8"]),
    ("W4A8 mse", ["--wbits", "4", "--method", "mse"]),
    ("W2A8 mse", ["--wbits", "2", "--method", "mse"]),
    ("W4A8 per-group 16", ["--wbits", "4", "--granularity", "per_group", "--group-size", "16"]),
    ("W4A4 mse", ["--wbits", "4", "--abits", "4", "--method", "mse"]),
    ("MixQuant avg 4b", ["--search", "mixquant", "--budget-bits", "4", "--method", "mse"]),
]


def ensure_venv():
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "onnxruntime", "numpy"], check=True)
    return py


def ort_top1(py, model, meta):
    code = f"""
import gzip, json, numpy as np, onnxruntime as ort
with gzip.open({os.path.join(FMNIST, 't10k-images-idx3-ubyte.gz')!r}) as f:
    x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
with gzip.open({os.path.join(FMNIST, 't10k-labels-idx1-ubyte.gz')!r}) as f:
    y = np.frombuffer(f.read(), np.uint8, offset=8)
x = x.astype(np.float32) * np.float32({meta['scale']!r})
x = (x - np.float32({meta['mean']!r})) / np.float32({meta['std']!r})
out = {{}}
for key, level in [('default', ort.GraphOptimizationLevel.ORT_ENABLE_ALL),
                   ('qdq', ort.GraphOptimizationLevel.ORT_DISABLE_ALL)]:
    so = ort.SessionOptions(); so.intra_op_num_threads = 2; so.graph_optimization_level = level
    s = ort.InferenceSession({model!r}, so, providers=['CPUExecutionProvider'])
    name = s.get_inputs()[0].name
    correct = 0
    for i in range(0, len(x), 500):
        correct += int((s.run(None, {{name: x[i:i+500]}})[0].argmax(1) == y[i:i+500]).sum())
    out[key] = 100.0 * correct / len(x)
print(json.dumps(out))
"""
    return json.loads(subprocess.run([py, "-c", code], check=True, capture_output=True, text=True).stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mixq", default=os.path.join(ROOT, "build", "mixq"))
    ap.add_argument("--models", default="")
    args = ap.parse_args()
    py = ensure_venv()
    fixtures = json.load(open(os.path.join(ROOT, "models", "fixtures.json")))["models"]
    names = args.models.split(",") if args.models else list(fixtures)
    worst = worst_default = 0.0
    print("| model | plan | mixq top-1 | ORT, QDQ as written | difference | ORT, default (fused int8 kernels) "
          "| difference |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            for label, extra in PLANS:
                out = os.path.join(tmp, "q.onnx")
                cmd = [args.mixq, "quantize", os.path.join(ROOT, "models", fixtures[name]["file"]),
                       "--calib", "fmnist:train:1024", "--eval", "fmnist:test", "--no-float-eval",
                       "-o", out, "--json", "-q"] + extra
                p = subprocess.run(cmd, capture_output=True, text=True)
                if p.returncode != 0:  # e.g. a budget that pinned layers make infeasible
                    msg = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"
                    print(f"| {name} | {label} | not run: {msg.replace('|', '/')} | | | | |", flush=True)
                    continue
                r = json.loads(p.stdout)
                ort = ort_top1(py, out, fixtures[name]["preprocessing"])
                diff = r["top1_quant"] - ort["qdq"]
                diff_default = r["top1_quant"] - ort["default"]
                worst = max(worst, abs(diff))
                worst_default = max(worst_default, abs(diff_default))
                print(f"| {name} | {label} | {r['top1_quant']:.2f} | {ort['qdq']:.2f} | {diff:+.2f} | "
                      f"{ort['default']:.2f} | {diff_default:+.2f} |", flush=True)
    print(f"\nlargest |difference|: {worst:.2f} points against the QDQ graph as written "
          f"({'PASS' if worst <= 0.1 else 'FAIL'}: goal <= 0.1); {worst_default:.2f} against ORT's default "
          "optimized session")
    sys.exit(0 if worst <= 0.1 else 1)


if __name__ == "__main__":
    main()
