"""PyTorch definitions of the mixq fixture models (Fashion-MNIST, 28x28 grey).

Every model takes ``input`` float32 [N, 1, 28, 28] and returns ``logits``
float32 [N, 10].  resnet / mobilenetv2 / vit / mlp expect normalized pixels
``x = (u8 * (1/255) - 0.2860) / 0.3530``; embedbag expects ``u8 * (1/255)``
in [0, 1] and tokenizes it itself.

Rebuilding a trained eager model (e.g. for a benchmark script)::

    import sys, torch
    sys.path.insert(0, "models")
    from fixture_models import build
    m = build("fmnist-resnet")          # or the short name "resnet"
    m.load_state_dict(torch.load("models/state/fmnist-resnet.pt"))
    m.eval()

The trained weights are written by ``models/make_fixtures.py`` to
``models/state/<name>.pt`` (a plain state_dict).

The modules are written so that the ONNX export is simple: shapes that do not
depend on the batch size are constants (reshape with -1 for the batch axis),
so no Shape/Gather/Concat subgraphs appear.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_CLASSES = 10


# --------------------------------------------------------------------------
# ResNet: Conv+BN+ReLU, basic blocks, identity / 1x1-conv+BN shortcuts
# --------------------------------------------------------------------------
class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, 0, bias=False),
                nn.BatchNorm2d(cout))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """Stem 3x3 conv, three stages (28x28 / 14x14 / 7x7), GAP, Linear."""

    def __init__(self, widths=(16, 32, 64), blocks=(1, 1, 2)):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        layers = []
        cin = widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(BasicBlock(cin, w, stride))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, NUM_CLASSES)

    def forward(self, x):
        x = self.layers(self.stem(x))
        x = torch.flatten(self.pool(x), 1)
        return self.fc(x)


# --------------------------------------------------------------------------
# MobileNetV2: inverted residual blocks with ReLU6
# --------------------------------------------------------------------------
def conv_bn(cin, cout, k, stride=1, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.block = nn.Sequential(
            conv_bn(cin, hidden, 1),                              # expand
            conv_bn(hidden, hidden, 3, stride, groups=hidden),    # depthwise
            conv_bn(hidden, cout, 1, act=False))                  # project

    def forward(self, x):
        out = self.block(x)
        return x + out if self.use_res else out


class MobileNetV2(nn.Module):
    # (expand, out_channels, repeats, first_stride)
    CFG = ((4, 24, 2, 2),   # 28 -> 14
           (4, 32, 2, 2),   # 14 -> 7
           (4, 64, 2, 1))

    def __init__(self, stem=16, last=128):
        super().__init__()
        layers = [conv_bn(1, stem, 3, 1)]
        cin = stem
        for t, c, n, s in self.CFG:
            for j in range(n):
                layers.append(InvertedResidual(cin, c, s if j == 0 else 1, t))
                cin = c
        layers.append(conv_bn(cin, last, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(last, NUM_CLASSES)

    def forward(self, x):
        x = self.features(x)
        x = torch.flatten(self.pool(x), 1)
        return self.fc(x)


# --------------------------------------------------------------------------
# ViT: conv patch embedding, learned pos-embedding, pre-LN blocks with
# explicit multi-head attention, exact GELU, mean pooling, LN + Linear head
# --------------------------------------------------------------------------
class Attention(nn.Module):
    def __init__(self, dim, heads, tokens):
        super().__init__()
        self.dim, self.heads, self.tokens = dim, heads, tokens
        self.hd = dim // heads
        self.scale = 1.0 / math.sqrt(self.hd)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x):                      # x: [N, T, D]
        T, H, hd = self.tokens, self.heads, self.hd
        q = self.q(x).reshape(-1, T, H, hd).transpose(1, 2)   # [N, H, T, hd]
        k = self.k(x).reshape(-1, T, H, hd).transpose(1, 2)
        v = self.v(x).reshape(-1, T, H, hd).transpose(1, 2)
        att = torch.matmul(q, k.transpose(2, 3)) * self.scale  # [N, H, T, T]
        att = torch.softmax(att, dim=-1)
        y = torch.matmul(att, v)                                # [N, H, T, hd]
        y = y.transpose(1, 2).reshape(-1, T, self.dim)          # merge heads
        return self.out(y)


class TransformerBlock(nn.Module):
    def __init__(self, dim, heads, tokens, mlp_ratio):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, tokens)
        self.ln2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, dim * mlp_ratio)
        self.act = nn.GELU()                   # exact (erf) GELU
        self.fc2 = nn.Linear(dim * mlp_ratio, dim)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        x = x + self.fc2(self.act(self.fc1(self.ln2(x))))
        return x


class ViT(nn.Module):
    def __init__(self, patch=4, dim=64, depth=3, heads=4, mlp_ratio=2):
        super().__init__()
        self.grid = 28 // patch
        self.tokens = self.grid * self.grid
        self.dim = dim
        self.patch_embed = nn.Conv2d(1, dim, patch, patch)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.tokens, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.Sequential(*[
            TransformerBlock(dim, heads, self.tokens, mlp_ratio)
            for _ in range(depth)])
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, NUM_CLASSES)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.patch_embed(x)                               # [N, D, g, g]
        x = x.reshape(-1, self.dim, self.tokens).transpose(1, 2)  # [N, T, D]
        x = x + self.pos_embed
        x = self.blocks(x)
        x = self.ln(x).mean(dim=1)                            # mean pooling
        return self.head(x)


# --------------------------------------------------------------------------
# MLP
# --------------------------------------------------------------------------
class MLP(nn.Module):
    def __init__(self, hidden=(256, 128)):
        super().__init__()
        dims = (28 * 28,) + tuple(hidden)
        layers = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(dims[-1], NUM_CLASSES))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(torch.flatten(x, 1))


# --------------------------------------------------------------------------
# Embedding-bag model: pixels -> (position, 16-level intensity) tokens ->
# nn.Embedding (ONNX Gather) -> sum over the 784 tokens -> small MLP
# --------------------------------------------------------------------------
class EmbedBag(nn.Module):
    LEVELS = 16
    POSITIONS = 28 * 28

    def __init__(self, dim=32, hidden=128, token_drop=0.5):
        super().__init__()
        self.token_drop = token_drop
        self.embed = nn.Embedding(self.POSITIONS * self.LEVELS, dim)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.register_buffer(
            "offset",
            (torch.arange(self.POSITIONS, dtype=torch.int64) * self.LEVELS)
            .reshape(1, self.POSITIONS),
            persistent=False)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, NUM_CLASSES)

    def tokens(self, x):                        # x in [0, 1], [N, 1, 28, 28]
        x = torch.flatten(x, 1)                 # [N, 784]
        # clamp only guards the table bounds for inputs outside [0, 1]
        level = torch.round(torch.clamp(x * float(self.LEVELS - 1),
                                        0.0, float(self.LEVELS - 1)))
        return level.to(torch.int64) + self.offset

    def forward(self, x):
        e = self.embed(self.tokens(x))          # [N, 784, D]
        if self.training and self.token_drop > 0:
            # training-only token dropout (whole tokens); the 60k-image
            # training set is otherwise memorised (100% train, ~85% test)
            keep = torch.rand(e.shape[0], e.shape[1], 1) >= self.token_drop
            e = e * keep.float() / (1.0 - self.token_drop)
        h = e.sum(dim=1)                        # sum pooling, [N, D]
        return self.fc2(F.relu(self.fc1(h)))


# --------------------------------------------------------------------------
BUILDERS = {
    "fmnist-resnet": ResNet,
    "fmnist-mobilenetv2": MobileNetV2,
    "fmnist-vit": ViT,
    "fmnist-mlp": MLP,
    "fmnist-embedbag": EmbedBag,
}


def build(name):
    """Return a freshly initialised model for a fixture name
    ("fmnist-resnet" or short "resnet", etc.)."""
    if name not in BUILDERS:
        name = "fmnist-" + name
    return BUILDERS[name]()
