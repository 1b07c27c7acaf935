#!/usr/bin/python3
"""Train the mixq fixture models on Fashion-MNIST and export them to ONNX.

Usage (Debian's interpreter, which has torch + onnx):

    /usr/bin/python3 models/make_fixtures.py [--only NAME] [--threads N]

Writes, next to this script (or to --out-dir):
    fmnist-<name>.onnx   opset 13, input `input` [N,1,28,28] f32, output
                         `logits` [N,10], BatchNormalization kept unfused,
                         mixq.* metadata_props
    state/<name>.pt      trained state_dict (see fixture_models.build)
    fixtures.json        accuracy, params, op types, reference logits ...

Data: /usr/share/datasets/fashion-mnist/*.gz (IDX).  Only the training set is
used for training; the test set only for the final top-1 and the reference
logits.  The test inputs are prepared exactly like the C++ side does it:
    x = float32(u8) * float32(1/255); x = (x - float32(mean)) / float32(std)
(each step one correctly rounded float32 operation, done in numpy).
"""

import argparse
import gzip
import io
import json
import os
import re
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True          # no __pycache__ in models/
sys.path.insert(0, HERE)
from fixture_models import build  # noqa: E402

DATA_DIR = "/usr/share/datasets/fashion-mnist"
SCALE = 1.0 / 255.0                      # 0.00392156862745098
FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530
ORDER = ("x = float32(u8) * float32(scale); x = (x - float32(mean)) / "
         "float32(std); each step one IEEE float32 op (no FMA)")
N_REF = 64

# name -> training recipe.  norm: True = (x-mean)/std, False = x in [0,1].
CONFIGS = {
    "fmnist-resnet": dict(
        seed=1, norm=True, epochs=15, batch=128, opt="sgd", lr=0.1, wd=5e-4,
        warmup=1, flip=True, crop=2, channels_last=True),
    "fmnist-mobilenetv2": dict(
        seed=2, norm=True, epochs=12, batch=128, opt="sgd", lr=0.1, wd=4e-5,
        warmup=1, flip=True, crop=2, channels_last=True),
    "fmnist-vit": dict(
        seed=3, norm=True, epochs=20, batch=128, opt="adamw", lr=2e-3,
        wd=0.05, warmup=2, flip=True, crop=0, clip=1.0),
    "fmnist-mlp": dict(
        seed=4, norm=True, epochs=20, batch=128, opt="adamw", lr=1e-3,
        wd=1e-4, warmup=1, flip=False, crop=0),
    "fmnist-embedbag": dict(
        seed=5, norm=False, epochs=10, batch=128, opt="adamw", lr=3e-3,
        wd=1e-5, warmup=1, flip=False, crop=0),
}


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------
def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    assert magic >> 8 == 0x08, "expected unsigned-byte IDX"
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big")
            for i in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    return arr.reshape(dims)


def load_split(split):
    img = read_idx(os.path.join(DATA_DIR, f"{split}-images-idx3-ubyte.gz"))
    lab = read_idx(os.path.join(DATA_DIR, f"{split}-labels-idx1-ubyte.gz"))
    return img.reshape(-1, 1, 28, 28), lab.astype(np.int64)


def preprocess(u8, mean, std):
    """Exactly the C++ order, float32 throughout."""
    x = u8.astype(np.float32) * np.float32(SCALE)
    x = (x - np.float32(mean)) / np.float32(std)
    return x.astype(np.float32)


def norm_params(cfg):
    return (FMNIST_MEAN, FMNIST_STD) if cfg["norm"] else (0.0, 1.0)


# --------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------
def augment(x, cfg, gen, pad_value):
    b = x.shape[0]
    if cfg["flip"]:
        flip = torch.rand(b, generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    p = cfg["crop"]
    if p:
        xp = F.pad(x, (p, p, p, p), value=pad_value)
        oy = torch.randint(0, 2 * p + 1, (b,), generator=gen)
        ox = torch.randint(0, 2 * p + 1, (b,), generator=gen)
        ar = torch.arange(28)
        rows = (oy[:, None] + ar)[:, :, None]          # [B, 28, 1]
        cols = (ox[:, None] + ar)[:, None, :]          # [B, 1, 28]
        x = xp[torch.arange(b)[:, None, None], 0, rows, cols].unsqueeze(1)
    return x


def param_groups(model, wd):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        # no weight decay on BN/LN params, biases, position embedding
        if p.ndim <= 1 or name.endswith("pos_embed"):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": wd},
            {"params": no_decay, "weight_decay": 0.0}]


def lr_at(step, total, warm, peak):
    if step < warm:
        return peak * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return peak * 0.5 * (1.0 + np.cos(np.pi * t))


def evaluate(model, x, y, batch=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out = model(x[i:i + batch])
            correct += int((out.argmax(1) == y[i:i + batch]).sum())
    return correct


def train(name, cfg, xtr, ytr, args):
    torch.manual_seed(cfg["seed"])
    gen = torch.Generator().manual_seed(1000 + cfg["seed"])
    model = build(name)
    cl = cfg.get("channels_last", False)
    if cl:
        model = model.to(memory_format=torch.channels_last)
    if cfg["opt"] == "sgd":
        opt = torch.optim.SGD(param_groups(model, cfg["wd"]), lr=cfg["lr"],
                              momentum=0.9, nesterov=True)
    else:
        opt = torch.optim.AdamW(param_groups(model, cfg["wd"]), lr=cfg["lr"])
    mean, std = norm_params(cfg)
    pad_value = float((np.float32(0) - np.float32(mean)) / np.float32(std))
    n, bs = len(xtr), cfg["batch"]
    epochs = cfg["epochs"]
    steps_per_epoch = n // bs                       # drop last partial batch
    if args.max_batches:
        steps_per_epoch = min(steps_per_epoch, args.max_batches)
    total = epochs * steps_per_epoch
    warm = cfg["warmup"] * steps_per_epoch
    step = 0
    t0 = time.time()
    for ep in range(epochs):
        model.train()
        te = time.time()
        perm = torch.randperm(n, generator=gen)
        loss_sum, correct, seen = 0.0, 0, 0
        for i in range(steps_per_epoch):
            idx = perm[i * bs:(i + 1) * bs]
            xb, yb = xtr[idx], ytr[idx]
            xb = augment(xb, cfg, gen, pad_value)
            if cl:
                xb = xb.contiguous(memory_format=torch.channels_last)
            lr = lr_at(step, total, warm, cfg["lr"])
            for g in opt.param_groups:
                g["lr"] = lr
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.get("clip"):
                nn.utils.clip_grad_norm_(model.parameters(), cfg["clip"])
            opt.step()
            step += 1
            loss_sum += float(loss) * len(yb)
            correct += int((out.argmax(1) == yb).sum())
            seen += len(yb)
        print(f"  [{name}] epoch {ep + 1}/{epochs} loss {loss_sum / seen:.4f} "
              f"train_acc {100.0 * correct / seen:.2f}% lr_end {lr:.5f} "
              f"time {time.time() - te:.1f}s", flush=True)
    train_seconds = time.time() - t0
    model = model.to(memory_format=torch.contiguous_format).eval()
    return model, train_seconds, epochs


# --------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------
def export_onnx(model, name, cfg, path):
    model.eval()
    dummy = torch.zeros(2, 1, 28, 28)
    buf = io.BytesIO()
    # TrainingMode.PRESERVE with an eval-mode model: BatchNorm is exported as
    # inference BatchNormalization (one output, running stats) and the
    # eval-mode Conv+BN fusion pass (only run for TrainingMode.EVAL) is
    # skipped, so the BN nodes stay in the graph.
    torch.onnx.export(
        model, dummy, buf, opset_version=13,
        training=torch.onnx.TrainingMode.PRESERVE,
        do_constant_folding=True,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    m = onnx.load_from_string(buf.getvalue())
    remove_identities(m)
    meta = {
        "mixq.dataset": "fmnist",
        "mixq.input_scale": repr(SCALE),
        "mixq.input_mean": "0.2860" if cfg["norm"] else "0",
        "mixq.input_std": "0.3530" if cfg["norm"] else "1",
        "mixq.fixture": name,
    }
    keep = [p for p in m.metadata_props if p.key not in meta]
    del m.metadata_props[:]
    m.metadata_props.extend(keep)
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(m)
    # sanity checks on the interface and BN preservation
    g = m.graph
    assert [i.name for i in g.input] == ["input"], [i.name for i in g.input]
    assert [o.name for o in g.output] == ["logits"]
    dims = g.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, 28, 28]
    odims = g.output[0].type.tensor_type.shape.dim
    assert odims[0].dim_param and odims[1].dim_value == 10
    for node in g.node:
        if node.op_type == "BatchNormalization":
            assert len(node.output) == 1, "training-mode BN exported"
    onnx.save(m, path)
    return m


def remove_identities(m):
    """The exporter de-duplicates equal initializers and re-creates the copy
    with an Identity node (e.g. a residual block's two BN biases that only
    ever appear summed, so they train identically).  Replace such nodes by a
    real initializer, and bypass any other Identity node."""
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    graph_outputs = {o.name for o in g.output}
    keep = []
    for node in g.node:
        if node.op_type != "Identity":
            keep.append(node)
            continue
        src, dst = node.input[0], node.output[0]
        if src in inits:
            t = onnx.TensorProto()
            t.CopyFrom(inits[src])
            t.name = dst
            g.initializer.append(t)
            inits[dst] = t
        elif dst not in graph_outputs:
            for other in g.node:
                for i, name in enumerate(other.input):
                    if name == dst:
                        other.input[i] = src
        else:
            keep.append(node)
    del g.node[:]
    g.node.extend(keep)


def op_types(m):
    return sorted({n.op_type for n in m.graph.node})


# --------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="train/export only this fixture "
                    "(e.g. fmnist-resnet or resnet)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out-dir", default=HERE)
    ap.add_argument("--epochs", type=int, help="override epochs (testing)")
    ap.add_argument("--max-batches", type=int,
                    help="limit batches per epoch (dry runs)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    names = list(CONFIGS)
    if args.only:
        only = args.only if args.only in CONFIGS else "fmnist-" + args.only
        if only not in CONFIGS:
            ap.error(f"unknown fixture {args.only}; one of {names}")
        names = [only]

    os.makedirs(os.path.join(args.out_dir, "state"), exist_ok=True)
    json_path = os.path.join(args.out_dir, "fixtures.json")
    if os.path.exists(json_path):
        with open(json_path) as f:
            db = json.load(f)
    else:
        db = {}
    db["generator"] = "models/make_fixtures.py"
    db["torch_version"] = torch.__version__
    db["onnx_version"] = onnx.__version__
    db.setdefault("models", {})

    tr_u8, ytr_np = load_split("train")
    te_u8, yte_np = load_split("t10k")
    ytr, yte = torch.from_numpy(ytr_np), torch.from_numpy(yte_np)
    print(f"train {tr_u8.shape} test {te_u8.shape} threads {args.threads}",
          flush=True)

    for name in names:
        cfg = dict(CONFIGS[name])
        if args.epochs:
            cfg["epochs"] = args.epochs
        mean, std = norm_params(cfg)
        xtr = torch.from_numpy(preprocess(tr_u8, mean, std))
        xte = torch.from_numpy(preprocess(te_u8, mean, std))
        print(f"== {name}: {cfg}", flush=True)
        model, secs, epochs = train(name, cfg, xtr, ytr, args)
        correct = evaluate(model, xte, yte)
        top1 = 100.0 * correct / len(yte)
        with torch.no_grad():
            ref = model(xte[:N_REF]).numpy().astype(np.float32)
        params = sum(p.numel() for p in model.parameters())
        torch.save(model.state_dict(),
                   os.path.join(args.out_dir, "state", name + ".pt"))
        path = os.path.join(args.out_dir, name + ".onnx")
        m = export_onnx(model, name, cfg, path)
        ops = op_types(m)
        n_bn = sum(n.op_type == "BatchNormalization" for n in m.graph.node)
        size = os.path.getsize(path)
        assert size < 5 * 1024 * 1024, f"{path} is {size} bytes"
        print(f"== {name}: top1 {top1:.2f}% ({correct}/10000) params {params} "
              f"train {secs:.1f}s file {size} B BN nodes {n_bn}", flush=True)
        print(f"   ops: {ops}", flush=True)
        db["models"][name] = {
            "file": name + ".onnx",
            "top1": round(top1, 2),
            "correct": correct,
            "samples": int(len(yte)),
            "params": int(params),
            "file_bytes": int(size),
            "train_seconds": round(secs, 1),
            "epochs": int(epochs),
            "threads": args.threads,
            "preprocessing": {"dataset": "fmnist", "scale": SCALE,
                              "mean": mean, "std": std, "order": ORDER},
            "ops": ops,
            "batchnorm_nodes": int(n_bn),
            "reference_logits": [[float(v) for v in row] for row in ref],
        }
        db["models"] = dict(sorted(db["models"].items(),
                                   key=lambda kv: list(CONFIGS).index(kv[0])
                                   if kv[0] in CONFIGS else 99))
        text = json.dumps(db, indent=1)
        # one line per innermost list of numbers (reference_logits rows)
        text = re.sub(r"\[\s+([-+0-9.eE,\s]+?)\s+\]",
                      lambda mo: "[" + " ".join(mo.group(1).split()) + "]",
                      text)
        with open(json_path, "w") as f:
            f.write(text + "\n")
    print("done", flush=True)


if __name__ == "__main__":
    main()
