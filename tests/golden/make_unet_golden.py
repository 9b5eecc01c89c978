#!/usr/bin/env python3
"""Writes unet_golden.pt: one forward and backward pass of a small U-Net in PyTorch,
the reference that tests/unit/unet_golden_test.cpp checks Strata's UNet2d against.

The model is the architecture of the project's PyTorch baseline (shared/reference/
pytorch_unet_baseline.py: 3x3 conv without bias + BatchNorm + ReLU twice per level,
2x2 max-pool down, 2x2 transposed conv up, [up, skip] concatenation, 1x1 head), with
small widths (4, 8, 16) and a 2x4x8x16 input so that the file stays small.

What the file holds (a dict of tensors, torch.save; read in C++ with torch::pickle_load):
  param.<name>        the float32 weights under Strata's names (enc.0.conv1.weight, ...;
                      see unet.h); BatchNorm buffers start at their defaults (0, 1)
  input, target       float32 [2,4,8,16] and int64 [2,8,16]
  logits              train-mode forward (batch statistics)
  loss                weighted Dice (weights [0.1,4,1,1], smooth 1e-5) + 0.5 * cross-entropy
  dice                soft Dice per class [4]
  grad_norms          L2 norm of every parameter's gradient, in the order of the list
  grad_norm_names     (their Strata names)
  grad.<name>         full gradients of enc.0.conv1.weight, dec.1.up.weight, head.weight
  input_grad          gradient of the loss with respect to the input
  after.<name>        running_mean/var of three BatchNorms after the train-mode forward
  eval_logits         eval-mode forward (running statistics) after that
The weights are drawn in float32 (PyTorch's default init, seed 0; BatchNorm affine
parameters perturbed so they matter), then the reference pass runs in float64 on those
exact values, so the C++ test's tolerance measures Strata's float32 error alone.
Scalars are stored in float64, tensors rounded to float32 (half an ulp, far below
the tolerances) to keep the file small.

Regenerate (any CPU machine with torch; numpy is not needed) from the repository root:
    python3 tests/golden/make_unet_golden.py tests/golden/unet_golden.pt
The file changes only if this script or PyTorch's init/RNG changes; commit both. CI
regenerates it into the build folder and compares it with the committed file within
compare_golden.py's tolerance (tests/golden/regen_test.sh), on this machine's CPU code
path and on emulated older ones: another CPU gives other last bits.
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

WIDTHS = (4, 8, 16)
CLASSES = 4
IN_CHANNELS = 4
SHAPE = (2, IN_CHANNELS, 8, 16)
CLASS_WEIGHTS = [0.1, 4.0, 1.0, 1.0]
SMOOTH = 1e-5
CE_WEIGHT = 0.5
FULL_GRADS = ["enc.0.conv1.weight", "dec.1.up.weight", "head.weight"]
RUNNING_STATS = ["enc.0.norm1", "enc.2.norm2", "dec.1.block.norm2"]


def block(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ReferenceUNet(nn.Module):
    """The baseline's U-Net, written out again here so the test data does not depend on
    a file outside the repository."""

    def __init__(self, cin, ncls, widths):
        super().__init__()
        self.down = nn.ModuleList()
        c = cin
        for w in widths:
            self.down.append(block(c, w))
            c = w
        self.up, self.dec = nn.ModuleList(), nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(c, w, 2, stride=2))
            self.dec.append(block(2 * w, w))
            c = w
        self.head = nn.Conv2d(c, ncls, 1)

    def forward(self, x):
        skips = []
        for i, b in enumerate(self.down):
            x = b(x)
            if i < len(self.down) - 1:
                skips.append(x)
                x = F.max_pool2d(x, 2)
        for up, dec in zip(self.up, self.dec):
            x = dec(torch.cat([up(x), skips.pop()], 1))
        return self.head(x)


def strata_name(name):
    """Reference parameter name -> Strata's (see framework/nn/include/strata/nn/unet.h)."""
    parts = name.split(".")
    layer = {"0": "conv1", "1": "norm1", "3": "conv2", "4": "norm2"}
    if parts[0] == "down":
        return ".".join(["enc", parts[1], layer[parts[2]]] + parts[3:])
    if parts[0] == "up":
        return ".".join(["dec", parts[1], "up"] + parts[2:])
    if parts[0] == "dec":
        return ".".join(["dec", parts[1], "block", layer[parts[2]]] + parts[3:])
    return name


def dice_per_class(logits, target):
    p = logits.softmax(1)
    onehot = F.one_hot(target, CLASSES).permute(0, 3, 1, 2).to(p.dtype)
    inter = (p * onehot).sum((0, 2, 3))
    denom = p.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    return (2 * inter + SMOOTH) / (denom + SMOOTH)


def main(path):
    torch.manual_seed(0)
    model = ReferenceUNet(IN_CHANNELS, CLASSES, WIDTHS)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(1 + 0.2 * torch.randn_like(m.weight))
                m.bias.copy_(0.1 * torch.randn_like(m.bias))
    x32 = torch.randn(SHAPE)
    target = torch.randint(0, CLASSES, (SHAPE[0],) + SHAPE[2:])
    # Make the necrotic class rare, as in BraTS, so its weight matters.
    target[target == 1] = torch.where(torch.rand(int((target == 1).sum())) < 0.3, 1, 2)

    out = {}
    for n, p in model.named_parameters():
        out["param." + strata_name(n)] = p.detach().clone()
    out["input"] = x32.clone()
    out["target"] = target.clone()

    model = model.double().train()
    x = x32.double().requires_grad_(True)
    logits = model(x)
    dice = dice_per_class(logits, target)
    w = torch.tensor(CLASS_WEIGHTS, dtype=torch.float64)
    loss = ((1 - dice) * w).sum() / w.sum() + CE_WEIGHT * F.cross_entropy(logits, target)
    loss.backward()

    out["logits"] = logits.detach().float()
    out["loss"] = loss.detach()
    out["dice"] = dice.detach()
    out["input_grad"] = x.grad.detach().float()
    names = [strata_name(n) for n, _ in model.named_parameters()]
    # Exactly rounded sums (math.fsum), so that the file is byte-identical on every CPU:
    # torch's norm reduces in an order that depends on the vector width, and AVX2 and
    # AVX-512 machines differ in the last bit of a float64 norm.
    out["grad_norms"] = torch.tensor(
        [math.sqrt(math.fsum(v * v for v in p.grad.double().flatten().tolist())) for p in model.parameters()],
        dtype=torch.float64)
    out["grad_norm_names"] = names
    for n, p in zip(names, model.parameters()):
        if n in FULL_GRADS:
            out["grad." + n] = p.grad.detach().float()
    for n, b in model.named_buffers():
        n = strata_name(n)
        if n.rsplit(".", 1)[0] in RUNNING_STATS and n.rsplit(".", 1)[1] in ("running_mean", "running_var"):
            out["after." + n] = b.detach().float()
    model.eval()
    with torch.no_grad():
        out["eval_logits"] = model(x.detach()).float()

    tmp = path + ".tmp"
    torch.save(out, tmp)
    os.replace(tmp, path)
    print(f"wrote {path}: {len(out)} entries, {os.path.getsize(path)} bytes, loss {loss.item():.10f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "unet_golden.pt"))
