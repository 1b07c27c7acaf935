#!/usr/bin/python3
"""Calibration and evaluation sets for the zoo quality table (bench/zoo_table.py).

Run with Debian's Python (NumPy + PIL; make_zoo.py's generators): for each model it writes
`<out>/<data>.calib.npz` and `<out>/<data>.eval.npz`, arrays named after the graph inputs, made
by the same generators make_zoo.py uses for `models/zoo/<data>.in.npz` but from other sources:

  images224, resnet18   Fashion-MNIST images upscaled, tinted, ImageNet-normalised: calibration
                        from the *training* set (from index 1000: make_zoo's BatchNorm statistics
                        used 0..15), evaluation from the *test* set (from index 100: the .in.npz
                        has 0..3)
  det_fpn, unet_seg     collages of garments on noise: calibration pastes training images,
                        evaluation test images, other seeds than the .in.npz
  bert_tiny, sent_embed, lstm_text
                        sentences hashed into the 2,048-word vocabulary: calibration from GPL-3,
                        evaluation from MPL-2.0/LGPL-2.1/Artistic (the .in.npz used Apache-2.0)
  gru_rows              Fashion-MNIST rows: training images (calibration), test images from 100
  ocr_det               rendered text 128x384 (DejaVu Sans / Mono, 14-20 px): calibration GPL-3,
                        evaluation MPL-2.0 text
  ocr_cls               48x192 text-line crops, every other one rotated 180 degrees (same split)
  magika                real files: calibration from this repository (git ls-files), evaluation
                        from the system (/usr/share, /usr/include, /etc, /usr/lib/python3)

  /usr/bin/python3 bench/zoo_data.py --out DIR --calib-n 32 --eval-n 32 [--only images224,magika]
"""
import argparse
import glob
import os
import subprocess
import sys
import textwrap

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "models", "zoo"))
import make_zoo as mz  # noqa: E402

LIC = "/usr/share/common-licenses/"


def sentences(files, n, max_words=34):
    out = []
    for f in files:
        text = open(LIC + f, encoding="utf-8", errors="replace").read()
        cur = []
        for wd in text.replace("\n", " ").split():
            cur.append(wd)
            if wd.endswith("."):
                if 6 <= len(cur) <= max_words:
                    out.append(" ".join(cur))
                cur = []
    if len(out) < n:
        out = (out * (n // max(len(out), 1) + 1))
    return out[:n]


CALIB_TEXT = ["GPL-3", "GPL-2"]
EVAL_TEXT = ["MPL-2.0", "LGPL-2.1", "Artistic", "Apache-2.0"]


def text_lines(files, width):
    words = []
    for f in files:
        words += open(LIC + f, encoding="utf-8", errors="replace").read().split()
    return textwrap.wrap(" ".join(words), width)


def ocr_det_set(files, n, seed):
    rs = np.random.RandomState(seed)
    lines = text_lines(files, 38)
    out = []
    for i in range(n):
        k = int(rs.randint(0, len(lines) - 5))
        size = int(rs.randint(14, 21))
        font = mz.FONT if i % 2 == 0 else mz.FONT_MONO
        nl = 4 if size >= 17 else 5
        out.append(mz.ocr_norm(mz.render_text(lines[k:k + nl], 128, 384, size, font=font)))
    return {"x": np.stack(out)}


def ocr_cls_set(files, n, seed):
    from PIL import ImageFont
    rs = np.random.RandomState(seed)
    lines = text_lines(files, 38)
    crops = []
    for i in range(n):
        ln = lines[int(rs.randint(0, len(lines)))]
        txt = " ".join(ln.split()[: 2 + int(rs.randint(0, 4))]) or "text"
        w = 12 + int(ImageFont.truetype(mz.FONT, 22).getlength(txt))
        bgr = mz.render_text([txt], 40, w, 22, rotate180=(i % 2 == 1))
        h0, w0 = bgr.shape[:2]
        rw = min(192, int(np.ceil(48 * w0 / h0)))
        pad = np.zeros((3, 48, 192), np.float32)
        pad[:, :, :rw] = mz.ocr_norm(mz.resize_img(bgr, 48, rw))
        crops.append(pad)
    return {"x": np.stack(crops)}


def magika_files(which, n):
    if which == "calib":
        files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.split()
        files = [os.path.join(ROOT, f) for f in files]
    else:
        files = []
        for pat in ["/usr/share/doc/*/copyright", "/usr/share/doc/*/*.gz", "/usr/include/*.h",
                    "/etc/*.conf", "/usr/lib/python3/dist-packages/*/*.py", "/usr/share/*/*.xml",
                    "/usr/share/*/*.json", "/usr/share/*/*.html", "/usr/bin/*", "/usr/share/*/*.png",
                    "/usr/share/*/*.svg", "/usr/share/*/*.pdf", "/usr/share/*/*.js", "/usr/share/*/*.css"]:
            files += sorted(glob.glob(pat))[:40]
    files = sorted({f for f in files if os.path.isfile(f) and os.path.getsize(f) > 64})
    # Spread over the kinds: group by extension, take round-robin.
    by_ext = {}
    for f in files:
        by_ext.setdefault(os.path.splitext(f)[1] or ("bin" if f.startswith("/usr/bin/") else os.path.basename(f)), []).append(f)
    picked, k = [], 0
    while len(picked) < n and any(k < len(v) for v in by_ext.values()):
        for ext in sorted(by_ext):
            if k < len(by_ext[ext]) and len(picked) < n:
                picked.append(by_ext[ext][k])
        k += 1
    return picked


def make(stem, which, n):
    """One set: which = 'calib' (training-side sources) or 'eval' (test-side sources)."""
    calib = which == "calib"
    if stem in ("images224", "resnet18"):
        h, w = (224, 224) if stem == "images224" else (160, 192)
        imgs = mz.fmnist("train" if calib else "t10k")
        start = 1000 if calib else 100
        return {"image": mz.image_batch(range(start, start + n), h, w, imgs)}
    if stem in ("det_fpn", "unet_seg"):
        imgs = mz.fmnist("train" if calib else "t10k")
        h, w, items = (128, 192, 4) if stem == "det_fpn" else (96, 128, 3)
        rs = np.random.RandomState((2701 if stem == "det_fpn" else 2702) + (0 if calib else 100))
        return {"image": np.stack([mz.collage(rs, items, h, w, imgs) for _ in range(n)])}
    if stem in ("bert_tiny", "sent_embed", "lstm_text"):
        sents = sentences(CALIB_TEXT if calib else EVAL_TEXT, n)
        ids, mask = mz.tokenize(sents, 2048, 24 if stem == "lstm_text" else 40)
        return {"input_ids": ids} if stem == "lstm_text" else {"input_ids": ids, "attention_mask": mask}
    if stem == "gru_rows":
        imgs = mz.fmnist("train" if calib else "t10k")
        start = 1000 if calib else 100
        return {"rows": ((imgs[start:start + n].astype(np.float32) / 255.0 - 0.2860) / 0.3530).astype(np.float32)}
    if stem == "ocr_det":
        return ocr_det_set(CALIB_TEXT if calib else ["MPL-2.0", "Apache-2.0"], n, 3101 if calib else 3102)
    if stem == "ocr_cls":
        return ocr_cls_set(CALIB_TEXT if calib else ["MPL-2.0", "Apache-2.0"], n, 3201 if calib else 3202)
    if stem == "magika":
        return {"bytes": np.stack([mz.magika_features(f) for f in magika_files(which, n)])}
    raise SystemExit(f"zoo_data.py: no generator for '{stem}'")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", required=True, help="comma-separated data stems (make_zoo.py's `data`)")
    ap.add_argument("--calib-n", type=int, default=32)
    ap.add_argument("--eval-n", type=int, default=32)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for stem in args.only.split(","):
        for which, n in (("calib", args.calib_n), ("eval", args.eval_n)):
            path = os.path.join(args.out, f"{stem}.{which}.npz")
            arrays = make(stem, which, n)
            np.savez(path, **arrays)
            print(f"{path}: " + ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in arrays.items()), flush=True)


if __name__ == "__main__":
    main()
