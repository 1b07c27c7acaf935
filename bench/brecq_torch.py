#!/usr/bin/python3
"""BRECQ block reconstruction in plain PyTorch: the speed baseline for `mixq quantize --method brecq`.

The same loop mixq runs on the ResNet fixture (src/quant/methods/brecq.cpp), written the way the
BRECQ reference code writes it: nn.Module wrappers whose forward applies the fake quantization.

  * Model: models/fixture_models.py "fmnist-resnet" with models/state/fmnist-resnet.pt, every
    BatchNorm folded into its conv.  Units: the 4 BasicBlocks (conv1 -> relu -> conv2 (+ 1x1
    shortcut conv) -> add -> relu).  Stem conv and fc stay at 8 bits (per-channel min-max weights,
    per-tensor min-max input) and are not reconstructed.
  * Calibration data: the first 1024 Fashion-MNIST training images, x = (u8/255 - 0.2860)/0.3530.
  * Weight phase (per block): cache block inputs (model with earlier blocks' weights quantized,
    activations float) and float block outputs; weights 4-bit asymmetric per-output-channel
    (min-max, range widened to include 0); AdaRound soft rounding
    W~ = s * (clamp(floor(W/s) + h(V) + z, 0, 15) - z), h(V) = clamp(1.2 sigmoid(V) - 0.1, 0, 1);
    loss = ((out - target)^2).sum(1).mean() + 0.01 * sum(1 - |2h - 1|^beta) after a 20% warm-up,
    beta 20 -> 2 linearly; Adam(lr 1e-3) on V, batch 32 from torch.randperm(1024)[:32]; then
    hard rounding (V >= 0).
  * Activation phase (per block): per-tensor 4-bit asymmetric fake quant with straight-through
    rounding at the input of every conv of the block (conv1 and the shortcut share the block input
    quantizer), learnable step (init min-max of the cached data), zero point fixed; Adam(lr 4e-4)
    with cosine annealing to 0; same loss without regulariser; inputs from the model with weights
    and earlier activations quantized.

Run with Debian's interpreter (torch 1.13):
    /usr/bin/python3 bench/brecq_torch.py --iters 1000 --threads 2 [--json]
Only the optimisation loops are timed per block (weight / activation phase); caching is reported
separately.  Ends with the W4A4 accuracy on the first 2000 test images (stderr with --json).
"""
import argparse
import contextlib
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "models"))
from fixture_models import build  # noqa: E402

FMNIST = os.environ.get("MIXQ_FMNIST_DIR", "/usr/share/datasets/fashion-mnist")
GAMMA, ZETA = -0.1, 1.1


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------
def load_images(split, n):
    with gzip.open(os.path.join(FMNIST, f"{split}-images-idx3-ubyte.gz")) as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16)[: n * 784].reshape(n, 1, 28, 28)
    x = torch.from_numpy(raw.astype(np.float32)) * (1.0 / 255.0)
    return (x - 0.2860) / 0.3530


def load_labels(split, n):
    with gzip.open(os.path.join(FMNIST, f"{split}-labels-idx1-ubyte.gz")) as f:
        return torch.from_numpy(np.frombuffer(f.read(), dtype=np.uint8, offset=8)[:n].astype(np.int64))


# ------------------------------------------------------------------------------------------------
# Quantizers
# ------------------------------------------------------------------------------------------------
def minmax_qparams(mn, mx, bits):
    """Asymmetric grid [0, 2^bits - 1] from a min/max, range widened to include 0."""
    qmax = 2 ** bits - 1
    mn = torch.clamp(mn, max=0.0)
    mx = torch.clamp(mx, min=0.0)
    s = torch.clamp((mx - mn) / qmax, min=1e-8)
    z = torch.round(-mn / s)
    return s, z


def lp_search(x, mn0, mx0, bits, p=2.4, grid=80):
    """BRECQ's range search (as mixq's "mse" ranges): shrink [min, max] by (1 - 0.01 i), i < grid,
    keep the lowest sum |DQ(Q(x)) - x|^p.  x: [C, K] rows with their own range, mn0/mx0: [C]."""
    qmax = 2 ** bits - 1
    best_err = torch.full_like(mn0, float("inf"))
    best_mn, best_mx = mn0.clone(), mx0.clone()
    for i in range(grid):
        f = 1.0 - 0.01 * i
        s, z = minmax_qparams(mn0 * f, mx0 * f, bits)
        s, z = s[:, None], z[:, None]
        d = (torch.clamp(torch.round(x / s) + z, 0, qmax) - z) * s - x
        err = d.abs().pow(p).sum(1)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_mn = torch.where(better, mn0 * f, best_mn)
        best_mx = torch.where(better, mx0 * f, best_mx)
    return best_mn, best_mx


AUTOCAST = contextlib.nullcontext


def to_cl(t):
    return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t


def round_ste(x):
    return x + (torch.round(x) - x).detach()


class ActQuantizer(nn.Module):
    """Per-tensor asymmetric fake quant, STE rounding, learnable step (LSQ-style), fixed zero."""

    def __init__(self, bits):
        super().__init__()
        self.bits = bits
        self.qmax = float(2 ** bits - 1)
        self.scale = nn.Parameter(torch.tensor(1.0), requires_grad=False)
        self.register_buffer("zero", torch.tensor(0.0))
        self.enabled = False

    @torch.no_grad()
    def init_range(self, x, method):
        mn, mx = x.min().reshape(1), x.max().reshape(1)
        if method == "mse":
            flat = x.reshape(1, -1)
            if flat.shape[1] > 1 << 18:  # a fixed subsample keeps the search cheap
                flat = flat[:, torch.linspace(0, flat.shape[1] - 1, 1 << 18).long()]
            mn, mx = lp_search(flat, mn, mx, self.bits)
        s, z = minmax_qparams(mn[0], mx[0], self.bits)
        self.scale.data.copy_(s)
        self.zero.copy_(z)

    def forward(self, x):
        if not self.enabled:
            return x
        q = torch.clamp(round_ste(x / self.scale) + self.zero, 0.0, self.qmax)
        return (q - self.zero) * self.scale


class QConv(nn.Module):
    """Conv (or Linear) with BN folded in; weight 'float', 'nearest', 'soft' (AdaRound) or 'hard'."""

    def __init__(self, weight, bias, stride=1, padding=0, linear=False):
        super().__init__()
        self.register_buffer("w_fp", weight.detach().clone())
        self.register_buffer("bias", bias.detach().clone())
        self.stride, self.padding, self.linear = stride, padding, linear
        self.mode = "float"
        self.alpha = None  # AdaRound V

    def init_weight_quant(self, bits, method):
        w = self.w_fp
        flat = w.reshape(w.shape[0], -1)
        mn, mx = flat.min(1).values, flat.max(1).values
        if method == "mse":
            mn, mx = lp_search(flat, mn, mx, bits)
        s, z = minmax_qparams(mn, mx, bits)
        shape = (-1,) + (1,) * (w.dim() - 1)
        self.register_buffer("s", s.reshape(shape))
        self.register_buffer("z", z.reshape(shape))
        self.qmax = float(2 ** bits - 1)
        t = w / self.s
        self.register_buffer("w_floor", torch.floor(t))
        rest = t - self.w_floor
        # h(V) = rest  <=>  sigmoid(V) = (rest - gamma) / (zeta - gamma)
        self.alpha = nn.Parameter(-torch.log((ZETA - GAMMA) / (rest - GAMMA) - 1.0))
        self.mode = "nearest"

    def h(self):
        return torch.clamp(torch.sigmoid(self.alpha) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)

    def reg(self, beta):
        return (1.0 - (2.0 * self.h() - 1.0).abs().pow(beta)).sum()

    def weight(self):
        if self.mode == "float":
            return self.w_fp
        if self.mode == "soft":
            r = self.h()
        elif self.mode == "hard":
            r = (self.alpha >= 0).float()
        else:  # nearest
            r = torch.round(self.w_fp / self.s - self.w_floor)
        return self.s * (torch.clamp(self.w_floor + r + self.z, 0.0, self.qmax) - self.z)

    def forward(self, x):
        if self.linear:
            return F.linear(x, self.weight(), self.bias)
        return F.conv2d(x, self.weight(), self.bias, self.stride, self.padding)


def fold(conv, bn):
    std = torch.sqrt(bn.running_var + bn.eps)
    g = bn.weight / std
    w = conv.weight * g.reshape(-1, 1, 1, 1)
    b = bn.bias - bn.running_mean * g
    if conv.bias is not None:
        b = b + conv.bias * g
    return QConv(w, b, conv.stride, conv.padding)


class QBlock(nn.Module):
    def __init__(self, blk, abits):
        super().__init__()
        self.conv1 = fold(blk.conv1, blk.bn1)
        self.conv2 = fold(blk.conv2, blk.bn2)
        self.shortcut = fold(blk.shortcut[0], blk.shortcut[1]) if isinstance(blk.shortcut, nn.Sequential) else None
        self.act_in = ActQuantizer(abits)   # block input: read by conv1 and the shortcut conv
        self.act_mid = ActQuantizer(abits)  # conv2 input
        self.pool = False  # last block: mixq's unit also holds GlobalAveragePool + Flatten

    def convs(self):
        return [c for c in (self.conv1, self.conv2, self.shortcut) if c is not None]

    def forward(self, x):
        xq = self.act_in(x)
        out = self.conv2(self.act_mid(F.relu(self.conv1(xq))))
        sc = self.shortcut(xq) if self.shortcut is not None else x  # identity add reads the float input
        out = F.relu(out + sc)
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1) if self.pool else out


class QResNet(nn.Module):
    def __init__(self, m, abits, pin_bits=8):
        super().__init__()
        self.stem = fold(m.stem[0], m.stem[1])
        self.stem_act = ActQuantizer(pin_bits)
        self.blocks = nn.ModuleList([QBlock(b, abits) for b in m.layers])
        self.blocks[-1].pool = True
        self.fc = QConv(m.fc.weight, m.fc.bias, linear=True)
        self.fc_act = ActQuantizer(pin_bits)

    def forward_to(self, x, k):
        """Input of block k (k = len(blocks): the pooled features, input of fc)."""
        x = F.relu(self.stem(self.stem_act(x)))
        for b in self.blocks[:k]:
            x = b(x)
        return x

    def forward(self, x):
        return self.fc(self.fc_act(self.forward_to(x, len(self.blocks))))


@torch.no_grad()
def run_batched(fn, x, bs=256):
    return torch.cat([fn(x[i:i + bs]) for i in range(0, x.shape[0], bs)])


# ------------------------------------------------------------------------------------------------
# BRECQ
# ------------------------------------------------------------------------------------------------
def recon_loss(out, tgt):
    return (out - tgt).pow(2).sum(1).mean()


def reconstruct_weights(blk, xin, tgt, iters, lr=1e-3, batch=32, lam=0.01, warmup=0.2, b_start=20.0, b_end=2.0):
    convs = blk.convs()
    for c in convs:
        c.mode = "soft"
        c.alpha.requires_grad_(True)
    opt = torch.optim.Adam([c.alpha for c in convs], lr=lr)
    n = xin.shape[0]
    warm = int(warmup * iters)
    t0 = time.perf_counter()
    for it in range(iters):
        idx = torch.randperm(n)[:batch]
        with AUTOCAST():
            out = blk(xin[idx]).float()
        loss = recon_loss(out, tgt[idx])
        if it >= warm:
            ratio = (it - warm) / max(1.0, iters - warm)
            beta = b_end + (b_start - b_end) * max(0.0, 1.0 - ratio)
            loss = loss + lam * sum(c.reg(beta) for c in convs)
        opt.zero_grad()
        loss.backward()
        opt.step()
    secs = time.perf_counter() - t0
    for c in convs:
        c.mode = "hard"
        c.alpha.requires_grad_(False)
    return secs


def learn_act_steps(blk, xin, tgt, iters, lr=4e-4, batch=32):
    qs = [blk.act_in, blk.act_mid]
    for q in qs:
        q.scale.requires_grad_(True)
    opt = torch.optim.Adam([q.scale for q in qs], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=iters, eta_min=0.0)
    n = xin.shape[0]
    t0 = time.perf_counter()
    for _ in range(iters):
        idx = torch.randperm(n)[:batch]
        with AUTOCAST():
            out = blk(xin[idx]).float()
        loss = recon_loss(out, tgt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for q in qs:
                q.scale.clamp_(min=1e-8)  # a step must stay positive
        sched.step()
    secs = time.perf_counter() - t0
    for q in qs:
        q.scale.requires_grad_(False)
    return secs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=20000, help="weight (rounding) iterations per block")
    ap.add_argument("--act-iters", type=int, default=None, help="activation-step iterations per block (default iters/4)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calib", type=int, default=1024)
    ap.add_argument("--wbits", type=int, default=4)
    ap.add_argument("--abits", type=int, default=4)
    ap.add_argument("--ranges", choices=["mse", "minmax"], default="mse",
                    help="initial weight / activation ranges: BRECQ's Lp grid search (mixq's brecq default) or min-max")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval", type=int, default=2000, help="test images for the accuracy check (0: skip)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--channels-last", action="store_true",
                    help="keep cached block inputs/targets in channels-last memory format")
    ap.add_argument("--autocast", choices=["none", "bf16"], default="none",
                    help="run the reconstruction loops' convolutions under CPU autocast (bf16)")
    args = ap.parse_args()
    global AUTOCAST
    if args.autocast == "bf16":
        AUTOCAST = lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    act_iters = args.act_iters if args.act_iters is not None else args.iters // 4
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print

    m = build("fmnist-resnet")
    m.load_state_dict(torch.load(os.path.join(ROOT, "models", "state", "fmnist-resnet.pt")))
    m.eval()
    calib = load_images("train", args.calib)

    with torch.no_grad():
        fp = QResNet(m, args.abits)       # float, BN folded
        q = QResNet(m, args.abits)        # the model being quantized
        q.stem.init_weight_quant(8, args.ranges)       # pinned first / last layer: 8-bit, nearest
        q.fc.init_weight_quant(8, args.ranges)
        for b in q.blocks:
            for c in b.convs():
                c.init_weight_quant(args.wbits, args.ranges)  # nearest until reconstructed
        for p in q.parameters():
            p.requires_grad_(False)

    blocks = [{"name": f"layers.{k}", "weight_s": 0.0, "act_s": 0.0} for k in range(len(q.blocks))]
    cache_s = 0.0

    # ---- phase 1: learned rounding, block by block --------------------------------------------
    for k, blk in enumerate(q.blocks):
        t0 = time.perf_counter()
        xin = run_batched(lambda x: q.forward_to(x, k), calib)
        tgt = run_batched(lambda x: fp.forward_to(x, k + 1), calib)
        with torch.no_grad():
            loss_near = recon_loss(blk(xin), tgt).item()
        cache_s += time.perf_counter() - t0
        if args.channels_last:
            xin, tgt = to_cl(xin), to_cl(tgt)
        blocks[k]["weight_s"] = reconstruct_weights(blk, xin, tgt, args.iters)
        with torch.no_grad():
            loss_hard = recon_loss(blk(xin), tgt).item()
        log(f"weights {blocks[k]['name']}: rec loss nearest {loss_near:.4g} -> learned {loss_hard:.4g} "
            f"({blocks[k]['weight_s']:.2f} s)")

    # ---- phase 2: activation steps, block by block --------------------------------------------
    t0 = time.perf_counter()
    with torch.no_grad():
        q.stem_act.init_range(calib, args.ranges)
        q.stem_act.enabled = True
        q.fc_act.init_range(run_batched(lambda x: q.forward_to(x, len(q.blocks)), calib), args.ranges)
    cache_s += time.perf_counter() - t0
    if act_iters > 0:
        for k, blk in enumerate(q.blocks):
            t0 = time.perf_counter()
            xin = run_batched(lambda x: q.forward_to(x, k), calib)   # earlier blocks' activations quantized
            tgt = run_batched(lambda x: fp.forward_to(x, k + 1), calib)
            with torch.no_grad():
                blk.act_in.init_range(xin, args.ranges)
                blk.act_in.enabled = True
                blk.act_mid.init_range(run_batched(lambda x: F.relu(blk.conv1(blk.act_in(x))), xin), args.ranges)
                blk.act_mid.enabled = True
                loss_cal = recon_loss(blk(xin), tgt).item()
            cache_s += time.perf_counter() - t0
            if args.channels_last:
                xin, tgt = to_cl(xin), to_cl(tgt)
            blocks[k]["act_s"] = learn_act_steps(blk, xin, tgt, act_iters)
            with torch.no_grad():
                loss_learned = recon_loss(blk(xin), tgt).item()
            log(f"act steps {blocks[k]['name']}: rec loss calibrated {loss_cal:.4g} -> learned {loss_learned:.4g} "
                f"({blocks[k]['act_s']:.2f} s)")
    q.fc_act.enabled = True

    for b in blocks:
        b["weight_s_per_1000"] = b["weight_s"] * 1000.0 / args.iters if args.iters else 0.0
        b["act_s_per_1000"] = b["act_s"] * 1000.0 / act_iters if act_iters else 0.0
    total = sum(b["weight_s"] + b["act_s"] for b in blocks)

    res = {"blocks": blocks, "total_s": total, "cache_s": cache_s, "iters": args.iters, "act_iters": act_iters,
           "threads": args.threads, "torch": torch.__version__}
    if args.eval > 0:
        x = load_images("t10k", args.eval)
        y = load_labels("t10k", args.eval)
        with torch.no_grad():
            acc_fp = (run_batched(fp, x).argmax(1) == y).float().mean().item()
            acc_q = (run_batched(q, x).argmax(1) == y).float().mean().item()
        res["accuracy_float"], res["accuracy_w4a4"] = acc_fp, acc_q
        log(f"accuracy on the first {args.eval} test images: float {100 * acc_fp:.2f}%, "
            f"W{args.wbits}A{args.abits} {100 * acc_q:.2f}%")
    if args.json:
        print(json.dumps(res))
    else:
        for b in blocks:
            log(f"{b['name']}: weights {b['weight_s_per_1000']:.2f} s/1000 it, acts {b['act_s_per_1000']:.2f} s/1000 it")
        log(f"total loops {total:.2f} s, caching {cache_s:.2f} s")


if __name__ == "__main__":
    main()
