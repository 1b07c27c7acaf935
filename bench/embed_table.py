#!/usr/bin/python3
"""Row-wise embedding-table quantization for BENCHMARKS.md (issue 19 item 4): the embedding-bag
fixture and a larger synthetic text-classification model (a 32768 x 48 table, 1.57M embedding
parameters), each table at 8/4/2 bits under every --embed-scheme (rowwise = plain min-max,
rowwise-greedy, codebook) and the ordinary affine per-row scheme (none: fp32 scale + integer zero
point), against float. Every other layer is W8A8 (per-channel, min-max) in every row, so the rows
differ only in the table. Size: the table's stored bits over its float32 bits, and the whole
model's (the plan's cost, which counts every stored bit). Quality: top-1 on the full test set
(Fashion-MNIST 10k for the fixture; 10k held-out synthetic samples for the text model) and the
agreement of the quantized model's top-1 with the float model's.

The synthetic model needs Debian's torch (/usr/bin/python3); it is trained in a few seconds and
written, with its data, to a temporary directory (--work to keep it).

  /usr/bin/python3 bench/embed_table.py [--mixq build/mixq] [--work DIR] [--only fixture|synthetic]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMES = ["rowwise", "rowwise-greedy", "codebook", "none"]
BITS = [8, 4, 2]

# Synthetic text classification: documents of SEQ tokens from a 32768-word vocabulary; each class
# has its own topic words, drawn with probability P_TOPIC, the rest from a Zipf background shared
# by every class. EmbeddingBag (mean) -> Linear 48-64 -> ReLU -> Linear 64-20.
VOCAB, DIM, CLASSES, SEQ, TOPIC_WORDS, P_TOPIC = 32768, 48, 20, 16, 1500, 0.15


def make_synthetic(work, seed=0):
    import torch
    import torch.nn as nn
    rng = np.random.default_rng(seed)
    zipf = 1.0 / np.arange(1, VOCAB + 1) ** 1.05
    zipf /= zipf.sum()
    perm = rng.permutation(VOCAB)  # background frequency is unrelated to the word id
    topics = [rng.choice(VOCAB, TOPIC_WORDS, replace=False) for _ in range(CLASSES)]

    def sample(n):
        y = rng.integers(0, CLASSES, n)
        x = perm[rng.choice(VOCAB, size=(n, SEQ), p=zipf)]
        topic = rng.random((n, SEQ)) < P_TOPIC
        # Topic words are themselves Zipf-distributed within the topic (a few frequent, many rare).
        tz = 1.0 / np.arange(1, TOPIC_WORDS + 1)
        tz /= tz.sum()
        pick = rng.choice(TOPIC_WORDS, size=(n, SEQ), p=tz)
        for c in range(CLASSES):
            m = topic & (y[:, None] == c)
            x[m] = topics[c][pick[m]]
        return x.astype(np.int64), y.astype(np.int64)

    xtr, ytr = sample(100000)
    xte, yte = sample(10000)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(VOCAB, DIM)
            nn.init.normal_(self.embed.weight, std=0.1)
            self.fc1, self.fc2 = nn.Linear(DIM, 64), nn.Linear(64, CLASSES)

        def forward(self, tokens):
            return self.fc2(torch.relu(self.fc1(self.embed(tokens).mean(1))))

    torch.manual_seed(seed)
    model = Model()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    t0 = time.time()
    X, Y = torch.from_numpy(xtr), torch.from_numpy(ytr)
    for epoch in range(3):
        order = torch.randperm(len(X))
        for b in range(0, len(X), 256):
            i = order[b:b + 256]
            loss = nn.functional.cross_entropy(model(X[i]), Y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(torch.from_numpy(xte)).argmax(1).numpy() == yte).mean() * 100
    path = os.path.join(work, "synthetic-text.onnx")
    torch.onnx.export(model, (X[:2],), path, input_names=["tokens"], output_names=["logits"],
                      dynamic_axes={"tokens": {0: "N"}, "logits": {0: "N"}}, opset_version=13)
    np.savez(os.path.join(work, "train.npz"), tokens=xtr[:2048], y=ytr[:2048])
    np.savez(os.path.join(work, "test.npz"), tokens=xte, y=yte)
    print(f"synthetic model: {VOCAB}x{DIM} table ({VOCAB * DIM:,} params), trained in {time.time() - t0:.0f} s, "
          f"torch top-1 {acc:.2f}%", file=sys.stderr)
    return path, os.path.join(work, "train.npz"), os.path.join(work, "test.npz")


def mixq(exe, args):
    p = subprocess.run([exe] + args + ["--json", "-q"], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(" ".join(args) + ": " + p.stderr.strip())
    return json.loads(p.stdout)


def table_bits(scheme, bits, rows, dim):
    codes = rows * dim * bits
    if scheme == "none":
        return codes + rows * (32 + 8)  # fp32 scale + 8-bit zero point per row
    if scheme == "codebook":
        return codes + rows * (1 << bits) * 16
    return codes + rows * 2 * 16


def bench_model(exe, name, model, calib, data, work):
    base = os.path.join(work, name + ".plan.json")
    r0 = mixq(exe, ["quantize", model, "--calib", calib, "--wbits", "8", "--plan-out", base, "--eval", data])
    plan = json.load(open(base))
    table = next(L for L in plan["layers"] if L["op"] == "Gather")
    rows, dim = table["weight_shape"]
    rows_out = [{"model": name, "config": "float", "top1": r0["top1_float"], "table_ratio": 1.0, "model_ratio": 1.0}]
    for bits in BITS:
        for scheme in SCHEMES:
            p = json.loads(json.dumps(plan))
            for L in p["layers"]:
                if L["name"] == table["name"]:
                    L["weight_quant"]["bits"] = bits
                    L["weight_quant"].pop("embed_scheme", None)
                    if scheme != "none":
                        L["weight_quant"]["embed_scheme"] = scheme
            path = os.path.join(work, f"{name}.{scheme}.{bits}.json")
            json.dump(p, open(path, "w"))
            t0 = time.time()
            r = mixq(exe, ["quantize", model, "--calib", calib, "--plan", path, "--eval", data])
            agree = r["fidelity"][0].get("top1_agreement") if r.get("fidelity") else None
            rows_out.append({"model": name, "config": f"{scheme} {bits}-bit", "top1": r["top1_quant"],
                             "drop": r["top1_float"] - r["top1_quant"], "agree": agree,
                             "table_ratio": table_bits(scheme, bits, rows, dim) / (rows * dim * 32),
                             "model_ratio": r["size_ratio"], "seconds": time.time() - t0})
            print(json.dumps(rows_out[-1]), file=sys.stderr)
    return rows_out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mixq", default=os.path.join(ROOT, "build", "mixq"))
    ap.add_argument("--work", default="")
    ap.add_argument("--only", choices=["fixture", "synthetic"], default=None)
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="mixq-embed-")
    os.makedirs(work, exist_ok=True)
    rows = []
    if a.only in (None, "fixture"):
        rows += bench_model(a.mixq, "fmnist-embedbag", os.path.join(ROOT, "models", "fmnist-embedbag.onnx"),
                            "fmnist:train:1024", "fmnist:test", work)
    if a.only in (None, "synthetic"):
        model, train, test = make_synthetic(work)
        rows += bench_model(a.mixq, "synthetic-text", model, train, test, work)
    print("| model | table scheme | top-1 % | vs float | top-1 agreement | table size / float | model size / float |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        agree = f"{r['agree']:.2f}%" if r.get("agree") is not None else ""
        drop = f"{-r['drop']:+.2f}" if "drop" in r else ""
        print(f"| {r['model']} | {r['config']} | {r['top1']:.2f} | {drop} | {agree} | "
              f"{100 * r['table_ratio']:.2f}% | {100 * r['model_ratio']:.2f}% |")


if __name__ == "__main__":
    main()
