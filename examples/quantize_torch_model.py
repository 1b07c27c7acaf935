#!/usr/bin/env python3
"""Train a small CNN on Fashion-MNIST with PyTorch, quantize it with mixq under a byte budget,
and run the packed result on mixq's runtime.

    scripts/setup.sh                                        # builds build/python too
    PYTHONPATH=build/python /usr/bin/python3 examples/quantize_torch_model.py

(or, after `pip install .` into a virtualenv with --system-site-packages, just `python
examples/quantize_torch_model.py`). About a minute on 2 cores. Nothing is downloaded: the data is
Debian's dataset-fashion-mnist."""

import gzip
import os
import sys
import tempfile
import time

import mixq  # first: it sets OpenBLAS's variables for this CPU before numpy / torch load it

import numpy as np  # noqa: E402
import torch  # noqa: E402

FMNIST = os.environ.get("MIXQ_FMNIST_DIR", "/usr/share/datasets/fashion-mnist")


def load(images, labels):
    raw = gzip.open(os.path.join(FMNIST, images), "rb").read()
    x = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 1, 28, 28)
    y = np.frombuffer(gzip.open(os.path.join(FMNIST, labels), "rb").read(), np.uint8, offset=8).astype(np.int64)
    return x.astype(np.float32) / 255.0, y


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        c = torch.nn.Conv2d
        self.features = torch.nn.Sequential(
            c(1, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
            c(16, 32, 3, stride=2, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
            c(32, 32, 3, stride=2, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
            torch.nn.Flatten())
        self.fc = torch.nn.Linear(32 * 7 * 7, 10)

    def forward(self, x):
        return self.fc(self.features(x))


def main():
    torch.manual_seed(0)
    xtr, ytr = load("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
    xte, yte = load("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

    # 1. A float model: two epochs on 20,000 training images.
    net = Net()
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    t0 = time.time()
    for epoch in range(2):
        perm = torch.randperm(20000)
        for i in range(0, 20000, 128):
            idx = perm[i:i + 128]
            loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(xtr[idx])), torch.from_numpy(ytr[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        float_top1 = (net(torch.from_numpy(xte)).argmax(1).numpy() == yte).mean() * 100
    print(f"float model: top-1 {float_top1:.2f}% after {time.time() - t0:.0f} s of training")

    # 2. Quantize under a byte budget: the integer program picks each layer's bits from the
    #    measured sensitivity table; 512 calibration images (from the training set, not the test set).
    calib = xtr[20000:20512]
    float_bytes = 4 * sum(p.numel() for p in net.parameters())
    r = mixq.quantize(net, example_input=torch.from_numpy(calib[:1]), calib=calib,
                      eval=(xte, yte), search="ip", budget_bytes=float_bytes // 6, method="mse")
    print(f"quantized: top-1 {r.report['top1_quant']:.2f}% (float {r.report['top1_float']:.2f}%), "
          f"{r.report['size_bytes']} bytes = {100 * r.report['size_ratio']:.1f}% of float, "
          f"avg {r.report['avg_wbits']:.2f} weight bits")
    for layer in r.layers:
        print(f"  {layer['name']:<24} {layer['op']:<6} W{layer['wbits']} A{layer['abits']}")

    # 3. Pack at the real bit-widths and run on mixq's runtime (no libtorch there).
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "net.mxq")
        info = r.pack(path)
        rt = mixq.Runtime(path)
        t0 = time.time()
        logits = rt.run(xte)[0]
        secs = time.time() - t0
        top1 = (logits.argmax(1) == yte).mean() * 100
        print(f"packed: {info['file_bytes']} bytes; runtime top-1 {top1:.2f}% on {len(xte)} images "
              f"in {secs:.2f} s ({rt.isa})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
