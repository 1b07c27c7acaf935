#!/usr/bin/python3
"""Builds the torch-exported members of mixq's model zoo and the realistic inputs of every member.

Run with Debian's Python (python3-torch 1.13, python3-torchvision 0.14, python3-onnx, python3-pil):

  /usr/bin/python3 models/zoo/make_zoo.py                  # everything (see below)
  /usr/bin/python3 models/zoo/make_zoo.py --out DIR --only resnet18,mobilenet_v2   # just these .onnx

Without --only it writes, into models/zoo/, every *committed* model and every `<data>.in.npz`
input file, and into --gen-dir (default build/zoo) every *generated* model (torchvision
architectures too large to commit; the tests regenerate them with --only and check their sha256
against models/zoo/manifest.json). With --only it writes only the named models' .onnx files into
--out (default: models/zoo for committed members, --gen-dir for generated ones).

Then `bench/zoo_ref.py` runs ONNX Runtime on every model and writes `<name>.ort.npz` and the
manifest's measured fields (sha256, opsets, inputs, outputs).

Reproducibility: weights are drawn with NumPy's RandomState (MT19937 + its own normal/uniform
transforms: the same numbers on every CPU), one seed per model; BatchNorm statistics are
estimated in float64 on Fashion-MNIST *training* images (train-mode forward passes, cumulative
average) and then rounded to float32, so ISA-dependent summation order (~1e-16) almost never
changes a stored bit. Nothing is downloaded: torchvision constructors are called with
weights=None. Weights are random (the float-equality tests need real architectures, not trained
ones); the pretrained members come from packages (SOURCES.md).
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FMNIST = os.environ.get("MIXQ_FMNIST_DIR", "/usr/share/datasets/fashion-mnist")
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"           # fonts-dejavu-core
FONT_MONO = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
TEXT = "/usr/share/common-licenses/Apache-2.0"                      # base-files

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


# --------------------------------------------------------------------------------------------
# realistic data (NumPy only; PIL for text rendering)
# --------------------------------------------------------------------------------------------
def fmnist(split="t10k"):
    with gzip.open(os.path.join(FMNIST, f"{split}-images-idx3-ubyte.gz")) as f:
        return np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)


def resize_bilinear(img, h, w):
    """img [H, W] float -> [h, w], align_corners=False (half-pixel), like PIL/OpenCV bilinear."""
    H, W = img.shape
    ys = np.clip((np.arange(h) + 0.5) * H / h - 0.5, 0, H - 1)
    xs = np.clip((np.arange(w) + 0.5) * W / w - 0.5, 0, W - 1)
    y0 = np.floor(ys).astype(int); y1 = np.minimum(y0 + 1, H - 1); fy = (ys - y0)[:, None]
    x0 = np.floor(xs).astype(int); x1 = np.minimum(x0 + 1, W - 1); fx = (xs - x0)[None, :]
    a = img[y0][:, x0] * (1 - fx) + img[y0][:, x1] * fx
    b = img[y1][:, x0] * (1 - fx) + img[y1][:, x1] * fx
    return a * (1 - fy) + b * fy


# A fixed tint per garment so the 3-channel pictures are not grey copies.
TINTS = np.array([[0.9, 0.5, 0.3], [0.3, 0.5, 0.9], [0.4, 0.8, 0.4], [0.8, 0.8, 0.3],
                  [0.7, 0.3, 0.7], [0.3, 0.8, 0.8], [0.9, 0.9, 0.9], [0.6, 0.4, 0.2]], np.float32)


def fmnist_rgb(idx, h, w, images):
    """Fashion-MNIST image `idx`, resized to h x w, tinted, in [0,1], [3, h, w]."""
    g = resize_bilinear(images[idx].astype(np.float32) / 255.0, h, w)
    tint = TINTS[idx % len(TINTS)]
    bg = 0.15 + 0.1 * ((idx * 7) % 5) / 4.0            # a dim, uniform background
    return np.stack([bg + (tint[c] - bg) * g for c in range(3)]).astype(np.float32)


def imagenet_norm(x):
    return ((x - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None]).astype(np.float32)


def image_batch(indices, h, w, images):
    return np.stack([imagenet_norm(fmnist_rgb(i, h, w, images)) for i in indices])


def collage(rs, n_items, h, w, images, with_mask=False):
    """Several Fashion-MNIST items pasted at random scales/places on a noisy background."""
    canvas = (0.35 + 0.05 * rs.standard_normal((3, h, w))).astype(np.float32)
    mask = np.zeros((h, w), np.int64)
    for _ in range(n_items):
        idx = int(rs.randint(len(images)))
        s = int(rs.randint(min(h, w) // 4, min(h, w) // 2 + 1))
        y, x = int(rs.randint(0, h - s + 1)), int(rs.randint(0, w - s + 1))
        item = fmnist_rgb(idx, s, s, images)
        g = resize_bilinear(images[idx].astype(np.float32) / 255.0, s, s)
        alpha = (g > 0.05).astype(np.float32)
        canvas[:, y:y + s, x:x + s] = alpha * item + (1 - alpha) * canvas[:, y:y + s, x:x + s]
        mask[y:y + s, x:x + s][alpha > 0] = 1 + idx % 3
    canvas = np.clip(canvas, 0, 1)
    return (imagenet_norm(canvas), mask) if with_mask else imagenet_norm(canvas)


def license_sentences(n, min_words=6, max_words=1000):
    """Real English sentences: the Apache-2.0 text Debian ships in base-files."""
    text = open(TEXT, encoding="utf-8").read()
    words = text.replace("\n", " ").split()
    sents, cur = [], []
    for wd in words:
        cur.append(wd)
        if wd.endswith("."):
            if min_words <= len(cur) <= max_words:
                sents.append(" ".join(cur))
            cur = []
    return sents[:n]


def tokenize(sentences, vocab, max_len):
    """A word-level hashing tokenizer: [CLS]=1 w... [SEP]=2, PAD=0, words 4 + crc32 % (vocab-4)."""
    rows = []
    for s in sentences:
        ids = [1] + [4 + zlib.crc32(w.lower().strip('.,;:()"').encode()) % (vocab - 4)
                     for w in s.split()][:max_len - 2] + [2]
        rows.append(ids)
    S = max(len(r) for r in rows)
    ids = np.zeros((len(rows), S), np.int64)
    mask = np.zeros((len(rows), S), np.int64)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = r
        mask[i, :len(r)] = 1
    return ids, mask


def render_text(lines, h, w, size, rotate180=False, font=FONT):
    from PIL import Image, ImageDraw, ImageFont
    img = Image.new("RGB", (w, h), (250, 248, 240))
    d = ImageDraw.Draw(img)
    f = ImageFont.truetype(font, size)
    y = max(2, (h - len(lines) * int(size * 1.4)) // 2)
    for ln in lines:
        d.text((6, y), ln, fill=(20, 20, 30), font=f)
        y += int(size * 1.4)
    if rotate180:
        img = img.rotate(180)
    return np.asarray(img)[:, :, ::-1].copy()   # BGR, as cv2.imread gives RapidOCR


def ocr_norm(bgr):
    """RapidOCR/PaddleOCR: x/255, (x-0.5)/0.5, HWC->CHW (BGR order kept)."""
    return ((bgr.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1).astype(np.float32)


def resize_img(bgr, h, w):
    from PIL import Image
    return np.asarray(Image.fromarray(bgr).resize((w, h), Image.BILINEAR))


def magika_features(path, beg=1024, end=1024, block=4096, pad=256):
    """Magika 1.0.3 feature extraction v2 (magika/magika.py: _extract_features_from_seekable)."""
    data = open(path, "rb").read()
    n = min(block, len(data))
    b = data[:n].lstrip()[:beg]
    e = data[len(data) - n:].rstrip()
    e = e[max(0, len(e) - end):]
    return np.array(list(b) + [pad] * (beg - len(b)) + [pad] * (end - len(e)) + list(e), np.int32)


# --------------------------------------------------------------------------------------------
# inputs: one .in.npz per data set; arrays named after the graph inputs
# --------------------------------------------------------------------------------------------
def make_inputs():
    te = fmnist("t10k")
    out = {}
    # ImageNet-style classifiers at 224x224 (shared by the torchvision members), batch 2.
    out["images224"] = {"image": image_batch([0, 1], 224, 224, te)}
    # ResNet-18 is exported with dynamic H/W: feed it a non-square size.
    out["resnet18"] = {"image": image_batch([2, 3], 160, 192, te)}
    rs = np.random.RandomState(1701)
    out["det_fpn"] = {"image": np.stack([collage(rs, 4, 128, 192, te) for _ in range(2)])}
    rs = np.random.RandomState(1702)
    out["unet_seg"] = {"image": np.stack([collage(rs, 3, 96, 128, te) for _ in range(2)])}
    sents = license_sentences(40, max_words=34)   # padded batches: lengths differ
    ids, mask = tokenize(sents[0:4], 2048, 40)
    out["bert_tiny"] = {"input_ids": ids, "attention_mask": mask}
    ids, mask = tokenize(sents[4:8], 2048, 40)
    out["sent_embed"] = {"input_ids": ids, "attention_mask": mask}
    ids, _ = tokenize(sents[8:12], 2048, 24)
    out["lstm_text"] = {"input_ids": ids}
    rows = (te[10:14].astype(np.float32) / 255.0 - 0.2860) / 0.3530
    out["gru_rows"] = {"rows": rows.astype(np.float32)}
    # PaddleOCR text detection: two rendered document snippets (sides multiples of 32).
    import textwrap
    lines = textwrap.wrap(" ".join(open(TEXT, encoding="utf-8").read().split()[40:140]), 38)
    out["ocr_det"] = {"x": np.stack([ocr_norm(render_text(lines[0:4], 128, 384, 18)),
                                     ocr_norm(render_text(lines[4:8], 128, 384, 16, font=FONT_MONO))])}
    # PaddleOCR direction classifier: six text-line crops, every other one upside down; resized
    # to height 48 keeping the aspect ratio, width <= 192, zero padded (RapidOCR's resize_norm_img).
    crops = []
    for i, ln in enumerate(lines[:6]):
        words = ln.split()[: 3 + i % 3]
        txt = " ".join(words)
        from PIL import ImageFont
        w = 12 + int(ImageFont.truetype(FONT, 22).getlength(txt))
        bgr = render_text([txt], 40, w, 22, rotate180=(i % 2 == 1))
        h0, w0 = bgr.shape[:2]
        rw = min(192, int(np.ceil(48 * w0 / h0)))
        img = ocr_norm(resize_img(bgr, 48, rw))
        pad = np.zeros((3, 48, 192), np.float32)
        pad[:, :, :rw] = img
        crops.append(pad)
    out["ocr_cls"] = {"x": np.stack(crops)}
    # Magika: real files (from this repository and Debian's base system).
    files = ["README.md", "models/make_fixtures.py", "src/exec/executor.cpp", "CMakeLists.txt",
             "models/fmnist-mlp.onnx", os.path.join(FMNIST, "t10k-labels-idx1-ubyte.gz")]
    out["magika"] = {"bytes": np.stack([magika_features(f if os.path.isabs(f) else os.path.join(ROOT, f))
                                        for f in files])}
    return out


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------
def torch_imports():
    import torch  # noqa: F401
    import torch.nn as nn  # noqa: F401
    return torch


def init_weights(model, seed):
    """Deterministic, CPU-independent random init (NumPy MT19937) with sensible scales."""
    import torch
    import torch.nn as nn
    rs = np.random.RandomState(seed)
    owner = {}
    for mname, m in model.named_modules():
        for pname, _ in m.named_parameters(recurse=False):
            owner[(mname + "." if mname else "") + pname] = (m, pname)
    with torch.no_grad():
        for name, p in model.named_parameters():
            m, pname = owner[name]
            shape = tuple(p.shape)
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                v = rs.uniform(0.7, 1.3, shape) if pname == "weight" else rs.uniform(-0.2, 0.2, shape)
            elif isinstance(m, nn.LayerNorm):
                v = rs.uniform(0.8, 1.2, shape) if pname == "weight" else rs.uniform(-0.1, 0.1, shape)
            elif isinstance(m, nn.Embedding):
                v = rs.normal(0.0, 0.5, shape)
            elif isinstance(m, (nn.LSTM, nn.GRU)):
                b = 1.0 / np.sqrt(m.hidden_size)
                v = rs.uniform(-b, b, shape)
            elif len(shape) >= 2:
                fan_in = int(np.prod(shape[1:]))
                gain = 6.0 if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)) else 3.0
                b = np.sqrt(gain / fan_in)
                v = rs.uniform(-b, b, shape)
            else:
                v = rs.uniform(-0.1, 0.1, shape)
            p.copy_(torch.from_numpy(np.asarray(v, np.float32)))
    return model


def calibrate_bn(model, batches):
    """BatchNorm running statistics from train-mode float64 forward passes (cumulative average)."""
    import torch
    import torch.nn as nn
    bns = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    if not bns:
        return model
    model.double().train()
    for m in model.modules():        # no dropout / stochastic depth while measuring
        if m.__class__.__name__ in ("Dropout", "StochasticDepth"):
            m.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    with torch.no_grad():
        for x in batches:
            model(torch.from_numpy(x).double())
    return model.float().eval()


def calib_images(h, w, n=16, batch=8):
    tr = fmnist("train")
    return [image_batch(range(i, i + batch), h, w, tr) for i in range(0, n, batch)]


def calib_collages(seed, h, w, n=16, batch=8):
    tr = fmnist("train")
    rs = np.random.RandomState(seed)
    return [np.stack([collage(rs, 4, h, w, tr) for _ in range(batch)]) for _ in range(n // batch)]


def build_torchvision(name, ctor_kwargs=None):
    def build():
        import torchvision
        m = getattr(torchvision.models, name)(weights=None, **(ctor_kwargs or {}))
        return m.eval()
    return build


# ---- detection-style net: small residual backbone + torchvision FPN + split/sigmoid heads ----
def build_det_fpn():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from torchvision.ops import FeaturePyramidNetwork

    def cbr(cin, cout, s):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, s, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    class Block(nn.Module):
        def __init__(self, cin, cout, s):
            super().__init__()
            self.a = cbr(cin, cout, s)
            self.b = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
            self.sc = nn.Sequential(nn.Conv2d(cin, cout, 1, s, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            return F.relu(self.b(self.a(x)) + self.sc(x))

    class DetFPN(nn.Module):
        """Anchor-free detector (FCOS/YOLOX-like) plus a DB-style text/objectness map."""
        def __init__(self, num_classes=3):
            super().__init__()
            self.stem = cbr(3, 16, 2)                              # /2
            self.c2, self.c3, self.c4 = Block(16, 32, 2), Block(32, 64, 2), Block(64, 96, 2)  # /4 /8 /16
            self.fpn = FeaturePyramidNetwork([32, 64, 96], 48)     # nearest Resize to the finer size
            self.head = nn.Sequential(cbr(48, 48, 1), nn.Conv2d(48, 4 + 1 + num_classes, 1))
            self.nc = num_classes
            # heat-map branch: 2x ConvTranspose back to /1 (as PaddleOCR's DB head does)
            self.up = nn.Sequential(nn.ConvTranspose2d(48, 24, 2, 2), nn.BatchNorm2d(24), nn.ReLU(),
                                    nn.ConvTranspose2d(24, 1, 2, 2))

        def forward(self, image):
            x = self.stem(image)
            c2 = self.c2(x); c3 = self.c3(c2); c4 = self.c4(c3)
            feats = self.fpn({"c2": c2, "c3": c3, "c4": c4})
            boxes, scores = [], []
            for lvl, f in enumerate(feats.values()):
                out = self.head(f)
                reg, obj, cls = torch.split(out, [4, 1, self.nc], dim=1)
                b = torch.cat([torch.sigmoid(reg[:, :2]), torch.exp(reg[:, 2:].clamp(max=4.0)) * (4 << lvl)], 1)
                boxes.append(b.flatten(2).transpose(1, 2))
                scores.append((torch.sigmoid(obj) * torch.sigmoid(cls)).flatten(2).transpose(1, 2))
            p2 = feats["c2"]
            heat = torch.sigmoid(self.up(F.interpolate(p2, scale_factor=0.5, mode="bilinear", align_corners=False)))
            return torch.cat(boxes, 1), torch.cat(scores, 1), heat

    return DetFPN().eval()


# ---- UNet segmentation ----
def build_unet():
    import torch
    import torch.nn as nn

    def double(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                             nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    class UNet(nn.Module):
        def __init__(self, c=16, classes=4):
            super().__init__()
            self.e1, self.e2, self.e3 = double(3, c), double(c, 2 * c), double(2 * c, 4 * c)
            self.mid = double(4 * c, 8 * c)
            self.pool = nn.MaxPool2d(2)
            self.u3, self.d3 = nn.ConvTranspose2d(8 * c, 4 * c, 2, 2), double(8 * c, 4 * c)
            self.u2, self.d2 = nn.ConvTranspose2d(4 * c, 2 * c, 2, 2), double(4 * c, 2 * c)
            self.u1, self.d1 = nn.ConvTranspose2d(2 * c, c, 2, 2), double(2 * c, c)
            self.out = nn.Conv2d(c, classes, 1)

        def forward(self, image):
            e1 = self.e1(image); e2 = self.e2(self.pool(e1)); e3 = self.e3(self.pool(e2))
            m = self.mid(self.pool(e3))
            d3 = self.d3(torch.cat([self.u3(m), e3], 1))
            d2 = self.d2(torch.cat([self.u2(d3), e2], 1))
            d1 = self.d1(torch.cat([self.u1(d2), e1], 1))
            return self.out(d1)

    return UNet().eval()


# ---- BERT-style encoder, written out (nn.LayerNorm, nn.GELU, explicit attention) ----
def build_bert_tiny():
    import torch
    import torch.nn as nn

    class Layer(nn.Module):
        def __init__(self, d, heads, ff):
            super().__init__()
            self.h, self.dh = heads, d // heads
            self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
            self.ln1, self.ln2 = nn.LayerNorm(d, eps=1e-12), nn.LayerNorm(d, eps=1e-12)
            self.ff1, self.ff2, self.act = nn.Linear(d, ff), nn.Linear(ff, d), nn.GELU()

        def split(self, x):
            n, s, _ = x.shape
            return x.view(n, s, self.h, self.dh).transpose(1, 2)

        def forward(self, x, bias):
            q, k, v = self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x))
            att = torch.matmul(q, k.transpose(-1, -2)) / (self.dh ** 0.5) + bias
            ctx = torch.matmul(att.softmax(-1), v).transpose(1, 2).reshape(x.shape)
            x = self.ln1(x + self.o(ctx))
            return self.ln2(x + self.ff2(self.act(self.ff1(x))))

    class Bert(nn.Module):
        def __init__(self, vocab=2048, d=128, layers=3, heads=4, ff=512, max_pos=128):
            super().__init__()
            self.tok, self.pos, self.typ = nn.Embedding(vocab, d), nn.Embedding(max_pos, d), nn.Embedding(2, d)
            self.ln = nn.LayerNorm(d, eps=1e-12)
            self.layers = nn.ModuleList(Layer(d, heads, ff) for _ in range(layers))
            self.pool = nn.Linear(d, d)

        def forward(self, input_ids, attention_mask):
            s = input_ids.shape[1]
            pos = torch.arange(s, device=input_ids.device).unsqueeze(0)
            x = self.ln(self.tok(input_ids) + self.pos(pos) + self.typ(torch.zeros_like(input_ids)))
            bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0
            for layer in self.layers:
                x = layer(x, bias)
            return x, torch.tanh(self.pool(x[:, 0]))

    return Bert().eval()


# ---- sentence embedding: nn.TransformerEncoder + masked mean pooling + L2 normalisation ----
def build_sent_embed():
    import torch
    import torch.nn as nn

    class SentEmbed(nn.Module):
        def __init__(self, vocab=2048, d=96, layers=2, heads=4, ff=256, out=64, max_pos=128):
            super().__init__()
            self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(max_pos, d)
            layer = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, activation="gelu",
                                               batch_first=True, norm_first=True)
            self.enc = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d), enable_nested_tensor=False)
            self.proj = nn.Linear(d, out)

        def forward(self, input_ids, attention_mask):
            pos = torch.arange(input_ids.shape[1]).unsqueeze(0)
            x = self.tok(input_ids) + self.pos(pos)
            x = self.enc(x, src_key_padding_mask=attention_mask == 0)
            m = attention_mask.unsqueeze(-1).to(x.dtype)
            pooled = (x * m).sum(1) / m.sum(1).clamp(min=1.0)
            e = self.proj(pooled)
            return e / e.norm(dim=-1, keepdim=True).clamp(min=1e-6)

    return SentEmbed().eval()


# ---- recurrent ----
def build_lstm_text():
    import torch
    import torch.nn as nn

    class LSTMText(nn.Module):
        def __init__(self, vocab=2048, d=64, h=96, classes=4):
            super().__init__()
            self.emb = nn.Embedding(vocab, d)
            self.lstm = nn.LSTM(d, h, num_layers=2, batch_first=True, bidirectional=True)
            self.fc = nn.Linear(2 * h, classes)

        def forward(self, input_ids):
            _, (hn, _) = self.lstm(self.emb(input_ids))
            return self.fc(torch.cat([hn[-2], hn[-1]], 1))

    return LSTMText().eval()


def build_gru_rows():
    import torch.nn as nn

    class GRURows(nn.Module):
        """Reads a Fashion-MNIST image row by row and predicts the next row (sequence regression)."""
        def __init__(self, h=128):
            super().__init__()
            self.gru = nn.GRU(28, h, num_layers=2, batch_first=True)
            self.fc = nn.Linear(h, 28)

        def forward(self, rows):
            y, _ = self.gru(rows)
            return self.fc(y)

    return GRURows().eval()


# name -> spec. `data`: the input file's stem; `dynamic`: per input, {axis: name}.
IMG = {"image": {0: "batch"}}
IMG_HW = {"image": {0: "batch", 2: "height", 3: "width"}}
TOK = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
TORCH_MODELS = {
    "mobilenet_v2": dict(family="MobileNetV2 (torchvision 0.14, depthwise-separable, inverted residual, ReLU6)",
                         build=build_torchvision("mobilenet_v2"), seed=11, opset=11, committed=False,
                         inputs=["image"], outputs=["logits"], output_kinds=["classes"],
                         dynamic={**IMG, "logits": {0: "batch"}}, data="images224", bn="images224", keep_bn=True),
    "shufflenet_v2_x0_5": dict(family="ShuffleNetV2 x0.5 (torchvision 0.14, channel split + shuffle)",
                               build=build_torchvision("shufflenet_v2_x0_5"), seed=13, opset=13, committed=False,
                               inputs=["image"], outputs=["logits"], output_kinds=["classes"],
                               dynamic={**IMG, "logits": {0: "batch"}}, data="images224", bn="images224", keep_bn=True),
    "mobilenet_v3_small": dict(family="MobileNetV3-Small (torchvision 0.14, squeeze-excite, hard-swish)",
                               build=build_torchvision("mobilenet_v3_small"), seed=14, opset=14, committed=False,
                               inputs=["image"], outputs=["logits"], output_kinds=["classes"],
                               dynamic={**IMG, "logits": {0: "batch"}}, data="images224", bn="images224", keep_bn=False),
    "efficientnet_b0": dict(family="EfficientNet-B0 (torchvision 0.14, MBConv, squeeze-excite, SiLU)",
                            build=build_torchvision("efficientnet_b0"), seed=15, opset=15, committed=False,
                            inputs=["image"], outputs=["logits"], output_kinds=["classes"],
                            dynamic={**IMG, "logits": {0: "batch"}}, data="images224", bn="images224", keep_bn=True),
    "resnet18": dict(family="ResNet-18 (torchvision 0.14)", build=build_torchvision("resnet18"), seed=17, opset=17,
                     committed=False, inputs=["image"], outputs=["logits"], output_kinds=["classes"],
                     dynamic={**IMG_HW, "logits": {0: "batch"}}, data="resnet18", bn="resnet18", keep_bn=True),
    "det_fpn": dict(family="detector: residual backbone + torchvision FeaturePyramidNetwork (Resize), "
                           "Split/Sigmoid/Exp box+class heads, ConvTranspose heat-map head",
                    build=build_det_fpn, seed=21, opset=12, committed=True, inputs=["image"],
                    outputs=["boxes", "scores", "heatmap"], output_kinds=["boxes", "scores", "segmentation map"],
                    dynamic={**IMG_HW, "boxes": {0: "batch", 1: "anchors"}, "scores": {0: "batch", 1: "anchors"},
                             "heatmap": {0: "batch", 2: "height", 3: "width"}},
                    data="det_fpn", bn="collage", keep_bn=True),
    "unet_seg": dict(family="UNet segmentation (MaxPool, ConvTranspose, Concat skips)", build=build_unet, seed=22,
                     opset=16, committed=True, inputs=["image"], outputs=["mask_logits"],
                     output_kinds=["segmentation map"],
                     dynamic={**IMG_HW, "mask_logits": {0: "batch", 2: "height", 3: "width"}},
                     data="unet_seg", bn="collage", keep_bn=True),
    "bert_tiny": dict(family="BERT-style encoder (nn.LayerNorm, nn.GELU decomposed at opset 14; explicit attention "
                             "with padding mask)", build=build_bert_tiny, seed=31, opset=14, committed=True,
                      inputs=["input_ids", "attention_mask"], outputs=["last_hidden_state", "pooler_output"],
                      output_kinds=["sequence", "embedding"],
                      dynamic={**TOK, "last_hidden_state": {0: "batch", 1: "sequence"}, "pooler_output": {0: "batch"}},
                      data="bert_tiny"),
    "sent_embed": dict(family="sentence embedding (nn.TransformerEncoder pre-LN, GELU, masked mean pooling, "
                              "L2 normalisation)", build=build_sent_embed, seed=32, opset=16, committed=True,
                       inputs=["input_ids", "attention_mask"], outputs=["embedding"], output_kinds=["embedding"],
                       dynamic={**TOK, "embedding": {0: "batch"}}, data="sent_embed"),
    "lstm_text": dict(family="text classifier: Embedding + 2-layer bidirectional LSTM + Linear", build=build_lstm_text,
                      seed=41, opset=11, committed=True, inputs=["input_ids"], outputs=["logits"],
                      output_kinds=["classes"],
                      dynamic={"input_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch"}}, data="lstm_text"),
    "gru_rows": dict(family="sequence regression: 2-layer GRU over image rows, next-row prediction",
                     build=build_gru_rows, seed=42, opset=15, committed=True, inputs=["rows"], outputs=["next_rows"],
                     output_kinds=["sequence"],
                     dynamic={"rows": {0: "batch", 1: "time"}, "next_rows": {0: "batch", 1: "time"}},
                     data="gru_rows"),
}


def trace_inputs(spec, inputs):
    """The export's example inputs: shaped unlike the test data on every dynamic axis (batch 1,
    16 tokens or time steps, 64x64 pictures), so the tests run the graphs at sizes the tracer
    never saw and a shape the exporter baked in shows up as a failure."""
    out = []
    for n in spec["inputs"]:
        a = inputs[n][:1]
        for axis, what in spec["dynamic"][n].items():
            if what in ("sequence", "time"):
                a = a.take(range(min(16, a.shape[axis])), axis=axis)
            elif what in ("height", "width"):
                a = a.take(range(64), axis=axis)
        out.append(np.ascontiguousarray(a))
    return out


def export(name, spec, path, inputs):
    import torch
    model = init_weights(spec["build"](), spec["seed"])
    bn = spec.get("bn")
    if bn == "images224":
        model = calibrate_bn(model, calib_images(224, 224))
    elif bn == "resnet18":
        model = calibrate_bn(model, calib_images(160, 192))
    elif bn == "collage":
        model = calibrate_bn(model, calib_collages(spec["seed"], 128, 160))
    model.eval()
    args = tuple(torch.from_numpy(a) for a in trace_inputs(spec, inputs))
    buf = io.BytesIO()
    mode = torch.onnx.TrainingMode.PRESERVE if spec.get("keep_bn", True) else torch.onnx.TrainingMode.EVAL
    torch.onnx.export(model, args, buf, opset_version=spec["opset"], input_names=spec["inputs"],
                      output_names=spec["outputs"], dynamic_axes=spec["dynamic"], training=mode,
                      do_constant_folding=True)
    data = buf.getvalue()
    import onnx
    m = onnx.load_from_string(data)
    onnx.checker.check_model(m)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp%d" % os.getpid()
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)   # atomic: concurrent test processes may generate the same file
    return hashlib.sha256(data).hexdigest(), len(data)


def load_inputs(stem):
    with np.load(os.path.join(HERE, stem + ".in.npz")) as z:
        return {k: z[k] for k in z.files}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated model names: write just these .onnx files")
    ap.add_argument("--out", default="", help="output folder for --only (default: models/zoo or --gen-dir)")
    ap.add_argument("--gen-dir", default=os.path.join(ROOT, "build", "zoo"),
                    help="where generated (not committed) models go")
    ap.add_argument("--no-inputs", action="store_true", help="do not rewrite the .in.npz files")
    ap.add_argument("--inputs-only", action="store_true", help="only rewrite the .in.npz files")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    names = [n for n in args.only.split(",") if n] or list(TORCH_MODELS)
    unknown = [n for n in names if n not in TORCH_MODELS]
    if unknown:
        sys.exit(f"make_zoo.py: unknown or not torch-built model(s): {', '.join(unknown)} "
                 f"(known: {', '.join(TORCH_MODELS)})")

    if not args.only and not args.no_inputs:
        for stem, arrays in make_inputs().items():
            np.savez_compressed(os.path.join(HERE, stem + ".in.npz"), **arrays)
            print(f"inputs {stem}.in.npz: " + ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in arrays.items()))
    if args.inputs_only:
        return

    for name in names:
        spec = TORCH_MODELS[name]
        out_dir = args.out or (HERE if spec["committed"] else args.gen_dir)
        path = os.path.join(out_dir, name + ".onnx")
        sha, size = export(name, spec, path, load_inputs(spec["data"]))
        print(f"{name}: {path} {size / 1e6:.2f} MB sha256 {sha}", flush=True)


if __name__ == "__main__":
    main()
