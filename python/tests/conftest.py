"""Shared fixtures: the built CLI, the bundled models, Fashion-MNIST samples as NumPy arrays."""

import mixq  # noqa: F401 - first, so that it can set OpenBLAS's variables before numpy loads it

import gzip
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
FMNIST = Path(os.environ.get("MIXQ_FMNIST_DIR", "/usr/share/datasets/fashion-mnist"))


def cli_path():
    p = os.environ.get("MIXQ_CLI") or str(ROOT / "build" / "mixq")
    if not Path(p).exists():
        pytest.skip(f"the mixq CLI is not built ({p})")
    return p


def run_cli(*args, check=True):
    """Runs `mixq ARGS`; returns (exit code, stdout, stderr)."""
    r = subprocess.run([cli_path(), *map(str, args)], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"mixq {' '.join(map(str, args))} exited {r.returncode}: {r.stderr}")
    return r.returncode, r.stdout, r.stderr


def cli_json(*args):
    """`mixq ARGS --json`, less peak_rss_mb (the CLI adds it to every result; a process measure)."""
    j = json.loads(run_cli(*args, "--json", "-q")[1])
    j.pop("peak_rss_mb", None)
    return j


def _idx(name):
    for suffix in ("", ".gz"):
        p = FMNIST / (name + suffix)
        if p.exists():
            data = (gzip.open if suffix else open)(p, "rb").read()
            ndim = data[3]
            dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
            return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)
    pytest.skip(f"Fashion-MNIST not found in {FMNIST}")


@pytest.fixture(scope="session")
def fmnist():
    """(train images, train labels, test images, test labels): uint8 [N, 1, 28, 28] and int64 [N]."""
    xtr = _idx("train-images-idx3-ubyte")[:, None]
    ytr = _idx("train-labels-idx1-ubyte").astype(np.int64)
    xte = _idx("t10k-images-idx3-ubyte")[:, None]
    yte = _idx("t10k-labels-idx1-ubyte").astype(np.int64)
    return xtr, ytr, xte, yte


@pytest.fixture(scope="session")
def mlp():
    return str(MODELS / "fmnist-mlp.onnx")


@pytest.fixture(scope="session")
def resnet():
    return str(MODELS / "fmnist-resnet.onnx")
