#!/usr/bin/python3
"""BRECQ's reference code, unmodified, on a Fashion-MNIST ResNet: the other side of issue 23's table.

Runs the public BRECQ implementation (github.com/yhhhli/BRECQ, commit e455d62; its `quant/`
package imported as it is) the way its `main_imagenet.py` does, on CPU with Debian's torch:

  QuantModel (BatchNorm folded) -> first and last layer 8-bit -> weight quantizers initialised on
  64 calibration images -> block / layer reconstruction of the rounding (asym, 20,000 iterations,
  lambda 0.01, beta 20 -> 2, warm-up 0.2) -> weight-only accuracy -> activation quantizers
  initialised on 64 images, network output left float -> reconstruction of the activation steps
  (5,000 iterations, lr 4e-4, p 2.4) -> full accuracy.

The only things not the reference's own: (1) its loops move every batch to a hard-coded 'cuda'
device; Tensor.to is wrapped so that 'cuda' means the CPU; (2) the data: the calibration images
are drawn at random from the Fashion-MNIST training split (a seeded torch.randperm, as the
reference's shuffled loader does, without its ImageNet augmentation), and written to an .npz that
mixq reads (`--calib FILE.npz`), so both tools see the same images; (3) the model: a network of
the reference's own `BasicBlock` (models/resnet.py) carrying the weights of a Fashion-MNIST ResNet
(`--model resnet`: the fmnist-resnet fixture, whose blocks are the same structure;
`--model refnet`: models/state/fmnist-refnet.pt from models/make_refnet.py).

  /usr/bin/python3 bench/brecq_reference.py --ref-dir DIR --model resnet --wbits 2 --abits 4
      --seed 0 [--iters-w 20000 --iters-a 5000] [--threads 2] [--calib-out calib.npz] [--json]

DIR is a checkout of the reference (bench/brecq_parity.py makes one from `fetch`'s mirror).
Prints one JSON line: weight-only and full accuracy on the 10,000 test images, seconds.
"""
import argparse
import contextlib
import gzip
import json
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FMNIST = os.environ.get("MIXQ_FMNIST_DIR", "/usr/share/datasets/fashion-mnist")
MEAN, STD = 0.286, 0.353  # the fixtures' preprocessing (models/fixtures.json)


def load_u8(split):
    with gzip.open(os.path.join(FMNIST, f"{split}-images-idx3-ubyte.gz")) as f:
        x = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(os.path.join(FMNIST, f"{split}-labels-idx1-ubyte.gz")) as f:
        y = np.frombuffer(f.read(), dtype=np.uint8, offset=8).astype(np.int64)
    return x, y


def normalize(u8):
    """mixq's fmnist preprocessing, one float32 operation at a time."""
    x = u8.astype(np.float32) * np.float32(1.0 / 255.0)
    return torch.from_numpy((x - np.float32(MEAN)) / np.float32(STD))


def redirect_cuda_to_cpu():
    """The reference's loops say `.to('cuda')`; on this machine that is the CPU."""
    orig = torch.Tensor.to

    def to(self, *args, **kwargs):
        args = tuple("cpu" if (isinstance(a, str) and a.startswith("cuda")) else a for a in args)
        if isinstance(kwargs.get("device"), str) and kwargs["device"].startswith("cuda"):
            kwargs["device"] = "cpu"
        return orig(self, *args, **kwargs)

    torch.Tensor.to = to


def seed_all(seed):
    """main_imagenet.py's seed_all."""
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_net(kind, BasicBlock):
    """A Fashion-MNIST ResNet of the reference's BasicBlock (models/make_refnet.py resnet_of) with the
    trained weights of `kind`: the fmnist-resnet fixture (its blocks have the same structure; its
    parameter names are mapped) or fmnist-refnet."""
    sys.path.insert(0, os.path.join(ROOT, "models"))
    from make_refnet import resnet_of
    if kind == "resnet":
        net = resnet_of(BasicBlock, widths=(16, 32, 64), blocks=(1, 1, 2))
        sd = torch.load(os.path.join(ROOT, "models", "state", "fmnist-resnet.pt"), map_location="cpu")
        ren = {"stem.0": "conv1", "stem.1": "bn1", ".shortcut.0": ".downsample.0", ".shortcut.1": ".downsample.1"}
        out = {}
        for k, v in sd.items():
            for a, b in ren.items():
                k = k.replace(a, b)
            out[k] = v
        sd = out
    else:
        net = resnet_of(BasicBlock)
        sd = torch.load(os.path.join(ROOT, "models", "state", "fmnist-refnet.pt"), map_location="cpu")
    net.load_state_dict(sd)
    return net.eval()


@torch.no_grad()
def accuracy(model, x, y, batch=500):
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        correct += int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    return 100.0 * correct / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ref-dir", required=True)
    ap.add_argument("--model", choices=["resnet", "refnet"], default="resnet")
    ap.add_argument("--wbits", type=int, default=4)
    ap.add_argument("--abits", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num-samples", type=int, default=1024)
    ap.add_argument("--iters-w", type=int, default=20000)
    ap.add_argument("--iters-a", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calib-out", help="write the calibration images (uint8) and labels here (.npz)")
    ap.add_argument("--test-samples", type=int, default=10000)
    ap.add_argument("--init-accuracy", action="store_true",
                    help="also the accuracy with the activation steps as initialised, before their reconstruction")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    sys.path.insert(0, os.path.abspath(args.ref_dir))
    redirect_cuda_to_cpu()
    from models.resnet import BasicBlock
    from quant import BaseQuantBlock, QuantModel, QuantModule, block_reconstruction, layer_reconstruction

    seed_all(args.seed)
    xtr, ytr = load_u8("train")
    idx = torch.randperm(len(xtr))[: args.num_samples].numpy()  # the shuffled loader's first batch(es)
    if args.calib_out:
        tmp = args.calib_out + ".tmp.npz"
        np.savez(tmp, x=xtr[idx], y=ytr[idx])
        os.replace(tmp, args.calib_out)
    cali_data = normalize(xtr[idx])
    xte, yte = load_u8("t10k")
    xte, yte = normalize(xte[: args.test_samples]), torch.from_numpy(yte[: args.test_samples])

    cnn = build_net(args.model, BasicBlock)
    float_top1 = accuracy(cnn, xte, yte)
    t0 = time.time()
    # main_imagenet.py from here on, with its defaults.
    wq = {"n_bits": args.wbits, "channel_wise": True, "scale_method": "mse"}
    aq = {"n_bits": args.abits, "channel_wise": False, "scale_method": "mse", "leaf_param": True}
    qnn = QuantModel(model=cnn, weight_quant_params=wq, act_quant_params=aq)
    qnn.eval()
    qnn.set_first_last_layer_to_8bit()
    qnn.set_quant_state(True, False)
    _ = qnn(cali_data[:64])
    kwargs = dict(cali_data=cali_data, iters=args.iters_w, weight=0.01, asym=True, b_range=(20, 2), warmup=0.2,
                  act_quant=False, opt_mode="mse")

    def recon_model(model):
        for _, module in model.named_children():
            if isinstance(module, QuantModule):
                if not module.ignore_reconstruction:
                    layer_reconstruction(qnn, module, **kwargs)
            elif isinstance(module, BaseQuantBlock):
                if not module.ignore_reconstruction:
                    block_reconstruction(qnn, module, **kwargs)
            else:
                recon_model(module)

    with contextlib.redirect_stdout(sys.stderr):  # its loss printouts
        recon_model(qnn)
    t_w = time.time() - t0
    qnn.set_quant_state(weight_quant=True, act_quant=False)
    top1_w = accuracy(qnn, xte, yte)
    t1 = time.time()
    qnn.set_quant_state(True, True)
    with torch.no_grad():
        _ = qnn(cali_data[:64])
    qnn.disable_network_output_quantization()
    t_init = time.time()
    top1_init = accuracy(qnn, xte, yte) if args.init_accuracy else None  # activation steps as initialised
    t1 += time.time() - t_init
    kwargs = dict(cali_data=cali_data, iters=args.iters_a, act_quant=True, opt_mode="mse", lr=4e-4, p=2.4)
    with contextlib.redirect_stdout(sys.stderr):
        recon_model(qnn)
    t_a = time.time() - t1
    qnn.set_quant_state(weight_quant=True, act_quant=True)
    top1 = accuracy(qnn, xte, yte)
    print(json.dumps({"tool": "reference", "model": args.model, "setting": f"W{args.wbits}A{args.abits}",
                      "seed": args.seed, "iters_w": args.iters_w, "iters_a": args.iters_a,
                      "threads": args.threads, "top1_float": float_top1, "top1_weights_only": top1_w,
                      "top1": top1, "top1_act_init": top1_init, "seconds": t_w + t_a, "seconds_weights": t_w, "seconds_acts": t_a,
                      "test_samples": len(xte)}))


if __name__ == "__main__":
    main()
