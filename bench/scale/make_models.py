#!/usr/bin/python3
"""ImageNet-size models for the scale benchmark (issue 24): torchvision's ResNet-50 and ViT-B/16 with
random weights (seeded; time and memory do not depend on the values), exported with Debian's torch
(python3-torch 1.13, python3-torchvision 0.14), and a batch of 224x224 inputs.

  /usr/bin/python3 bench/scale/make_models.py [--out bench/results/scale] [--samples 32]

Writes resnet50.onnx, vit_b_16.onnx and inputs.npy (N x 3 x 224 x 224 float32, uniform noise
normalised like ImageNet images) into --out. Nothing is downloaded (weights=None).
"""
import argparse
import os

import numpy as np
import torch
import torchvision

ap = argparse.ArgumentParser()
ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "results", "scale"))
ap.add_argument("--samples", type=int, default=32)
ap.add_argument("--only", default="resnet50,vit_b_16")
a = ap.parse_args()
os.makedirs(a.out, exist_ok=True)
torch.manual_seed(0)
for name in [n for n in a.only.split(",") if n]:
    m = getattr(torchvision.models, name)(weights=None).eval()
    path = os.path.join(a.out, name + ".onnx")
    # With autograd on, nn.MultiheadAttention takes its exportable path (torch 1.13's fused
    # _native_multi_head_attention, used under no_grad in eval mode, has no ONNX symbolic).
    torch.onnx.export(m, torch.randn(1, 3, 224, 224), path, opset_version=14, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}})
    n = sum(p.numel() for p in m.parameters())
    print(f"{path}: {n / 1e6:.1f} M parameters, {os.path.getsize(path) / 1e6:.1f} MB")
rng = np.random.RandomState(0)
x = rng.uniform(0, 1, size=(a.samples, 3, 224, 224)).astype(np.float32)
mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
std = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)
np.save(os.path.join(a.out, "inputs.npy"), (x - mean) / std)
print(f"{os.path.join(a.out, 'inputs.npy')}: {a.samples} samples")
