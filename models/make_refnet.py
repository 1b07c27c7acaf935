#!/usr/bin/python3
"""Train and export fmnist-refnet: a Fashion-MNIST ResNet made of BRECQ's reference `BasicBlock`.

Issue 23 compares mixq's BRECQ with the reference implementation on two ResNets: the fmnist-resnet
fixture (whose blocks have the same structure) and this one, whose blocks are the reference's own
class (models/resnet.py of github.com/yhhhli/BRECQ, commit e455d62), so that nothing in the
comparison depends on how mixq's fixtures were written. Stem 3x3 conv + BN + ReLU, three stages of
two blocks (16 / 32 / 64 channels, 28x28 / 14x14 / 7x7), global average pool, Linear. Trained with
the fixture recipe of fmnist-resnet (models/make_fixtures.py: SGD + Nesterov, cosine, flips and
2-pixel crops) for fewer epochs, exported the same way (opset 13, BatchNorm kept, mixq metadata).

    /usr/bin/python3 models/make_refnet.py --ref-dir DIR [--epochs 6] [--threads 2]

DIR is a checkout of the reference (bench/brecq_parity.py extracts one into
bench/results/brecq-reference). Writes models/fmnist-refnet.onnx, models/state/fmnist-refnet.pt
and models/fmnist-refnet.json (accuracy, parameters, training time, the reference's commit).
"""
import argparse
import json
import os
import sys

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)

WIDTHS, BLOCKS = (16, 32, 64), (2, 2, 2)
REF_COMMIT = "e455d62e93c70351961f8991c913b59435bd165f"


def resnet_of(BasicBlock, widths=WIDTHS, blocks=BLOCKS, classes=10):
    """A ResNet for 28x28 inputs out of the reference's BasicBlock, named the way the reference's
    ResNet names its parts (conv1 / bn1 / relu stem, blocks, avgpool, fc): its QuantModel then
    folds the stem's BN, gives the stem conv its ReLU and turns every block into a QuantBasicBlock."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, widths[0], 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(widths[0])
            self.relu = nn.ReLU(inplace=True)
            layers, cin = [], widths[0]
            for i, (w, n) in enumerate(zip(widths, blocks)):
                for j in range(n):
                    stride = 2 if (i > 0 and j == 0) else 1
                    down = None
                    if stride != 1 or cin != w:
                        down = nn.Sequential(nn.Conv2d(cin, w, 1, stride, 0, bias=False), nn.BatchNorm2d(w))
                    layers.append(BasicBlock(cin, w, stride, down, norm_layer=nn.BatchNorm2d))
                    cin = w
            self.layers = nn.Sequential(*layers)
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(cin, classes)

        def forward(self, x):
            x = self.layers(self.relu(self.bn1(self.conv1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return Net()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ref-dir", required=True)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.ref_dir))
    from models.resnet import BasicBlock  # the reference's  # noqa: E402
    sys.path.pop(0)
    import make_fixtures as mf  # noqa: E402

    torch.set_num_threads(args.threads)
    name = "fmnist-refnet"
    cfg = dict(mf.CONFIGS["fmnist-resnet"], seed=7, epochs=args.epochs)
    mf.build = lambda _name: resnet_of(BasicBlock)  # train() builds its model through this
    mean, std = mf.norm_params(cfg)
    tr_u8, ytr = mf.load_split("train")
    te_u8, yte = mf.load_split("t10k")
    xtr = torch.from_numpy(mf.preprocess(tr_u8, mean, std))
    xte = torch.from_numpy(mf.preprocess(te_u8, mean, std))
    targs = argparse.Namespace(max_batches=0)
    model, secs, epochs = mf.train(name, cfg, xtr, torch.from_numpy(ytr), targs)
    correct = mf.evaluate(model, xte, torch.from_numpy(yte))
    torch.save(model.state_dict(), os.path.join(HERE, "state", name + ".pt"))
    mf.export_onnx(model, name, cfg, os.path.join(HERE, name + ".onnx"))
    info = {"generator": "models/make_refnet.py", "block": f"BasicBlock of github.com/yhhhli/BRECQ@{REF_COMMIT}",
            "widths": WIDTHS, "blocks": BLOCKS, "top1": round(100.0 * correct / len(yte), 2),
            "params": int(sum(p.numel() for p in model.parameters())), "epochs": epochs,
            "train_seconds": round(secs, 1), "threads": args.threads, "torch_version": torch.__version__}
    with open(os.path.join(HERE, name + ".json"), "w") as f:
        f.write(json.dumps(info, indent=1) + "\n")
    print(json.dumps(info))


if __name__ == "__main__":
    main()
