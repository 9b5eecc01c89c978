#!/usr/bin/env python3
"""The PyTorch side of benchmarks/accuracy_twin.sh statistical: the reference notebook's
recipe at the CPU recipe's scale, on a Strata packed file (read with h5py).

    twin_statistical.py --data FILE.h5 --seed S --json OUT.json [--epochs 5] [--ft-epochs 2]
                        [--batch 32] [--lr 3e-3] [--ft-lr 5e-5] [--widths 8,16,32,64]

1. Baseline: benchmarks/pytorch_reference.py's U-Net, multi-class Dice loss, Adam,
   ReduceLROnPlateau on the validation mean Dice (factor 0.5, patience 1, as
   recipes/cpu_smoke.yaml), augmentation as Strata's defaults (horizontal and vertical
   flips and a rot90 each with p 0.5, a rotation of up to 15 degrees with p 0.5: bilinear
   image, nearest label); the best epoch by validation mean Dice is kept.
2. Fine-tune from it: Dice weighted [0.1, 4, 1, 1], lr 5e-5, plateau factor 0.2,
   patience 2 (recipes/brats_necrotic_finetune.yaml).
3. Evaluation of the fine-tuned best: softmax averaged over 6 views (identity, the three
   flips, rot90 and rot270, as Strata's flips+rot90), Dice per class from counts over the
   whole validation split.
"""
import argparse
import json
import math
import os
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_reference import UNet2d  # noqa: E402


def dice_loss(logits, target, weights, smooth=1e-5):
    probs = logits.float().softmax(1)
    onehot = F.one_hot(target, probs.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    inter = (probs * onehot).sum((0, 2, 3))
    denom = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    per_class = 1 - (2 * inter + smooth) / (denom + smooth)
    return (per_class * weights).sum() / weights.sum()


def augment(x, y, gen):
    """Strata's default augmentation, per sample."""
    out_x, out_y = x.clone(), y.clone()
    for i in range(x.shape[0]):
        xi, yi = out_x[i], out_y[i]
        if torch.rand(1, generator=gen).item() < 0.5:
            xi, yi = xi.flip(-1), yi.flip(-1)
        if torch.rand(1, generator=gen).item() < 0.5:
            xi, yi = xi.flip(-2), yi.flip(-2)
        if torch.rand(1, generator=gen).item() < 0.5:
            k = int(torch.randint(1, 4, (1,), generator=gen))
            xi, yi = xi.rot90(k, (-2, -1)), yi.rot90(k, (-2, -1))
        if torch.rand(1, generator=gen).item() < 0.5:
            a = math.radians(float(torch.empty(1).uniform_(-15, 15, generator=gen)))
            theta = torch.tensor([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0]],
                                 dtype=torch.float32).unsqueeze(0)
            grid = F.affine_grid(theta, (1, 1) + tuple(xi.shape[-2:]), align_corners=False)
            xi = F.grid_sample(xi.unsqueeze(0), grid, mode="bilinear", padding_mode="zeros",
                               align_corners=False)[0]
            yi = F.grid_sample(yi[None, None].float(), grid, mode="nearest", padding_mode="zeros",
                               align_corners=False)[0, 0].long()
        out_x[i], out_y[i] = xi, yi
    return out_x, out_y


def confusion(pred, target, classes=4):
    return torch.bincount((target * classes + pred).flatten(), minlength=classes * classes).view(classes, classes)


def dice_from(conf):
    tp = conf.diag().double()
    fp = conf.sum(0).double() - tp
    fn = conf.sum(1).double() - tp
    return [float(2 * tp[c] / (2 * tp[c] + fp[c] + fn[c])) if (2 * tp[c] + fp[c] + fn[c]) > 0 else 1.0
            for c in range(conf.shape[0])]


VIEWS = [  # (forward, inverse) on [N, C, H, W]
    (lambda t: t, lambda t: t),
    (lambda t: t.flip(-1), lambda t: t.flip(-1)),
    (lambda t: t.flip(-2), lambda t: t.flip(-2)),
    (lambda t: t.flip(-2, -1), lambda t: t.flip(-2, -1)),
    (lambda t: t.rot90(1, (-2, -1)), lambda t: t.rot90(-1, (-2, -1))),
    (lambda t: t.rot90(-1, (-2, -1)), lambda t: t.rot90(1, (-2, -1))),
]


@torch.no_grad()
def evaluate(model, x, y, tta, batch=64):
    model.eval()
    conf = torch.zeros(4, 4, dtype=torch.long)
    for i in range(0, x.shape[0], batch):
        xb, yb = x[i:i + batch], y[i:i + batch]
        views = VIEWS if tta else VIEWS[:1]
        p = sum(inv(model(fwd(xb)).softmax(1)) for fwd, inv in views) / len(views)
        conf += confusion(p.argmax(1), yb)
    model.train()
    return dice_from(conf)


def fit(model, x, y, vx, vy, epochs, lr, weights, factor, patience, batch, gen, log):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=factor, patience=patience)
    best, best_state = -1.0, None
    w = torch.tensor(weights, dtype=torch.float32)
    for epoch in range(epochs):
        t0 = time.time()
        order = torch.randperm(x.shape[0], generator=gen)
        losses = []
        for i in range(0, x.shape[0], batch):
            idx = order[i:i + batch]
            xb, yb = augment(x[idx], y[idx], gen)
            opt.zero_grad(set_to_none=True)
            loss = dice_loss(model(xb), yb, w)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        d = evaluate(model, vx, vy, tta=False)
        mean = sum(d[1:]) / 3
        sched.step(mean)
        if mean > best:
            best, best_state = mean, {k: v.clone() for k, v in model.state_dict().items()}
        log(f"epoch {epoch + 1}/{epochs}: loss {np.mean(losses):.4f}, val Dice {d[1]:.4f}/{d[2]:.4f}/{d[3]:.4f} "
            f"(mean {mean:.4f}), lr {opt.param_groups[0]['lr']:.3g}, {time.time() - t0:.1f} s")
    model.load_state_dict(best_state)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--ft-epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--ft-lr", type=float, default=5e-5)
    ap.add_argument("--widths", default="8,16,32,64")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    f = h5py.File(a.data, "r")
    tr, va = np.asarray(f["splits/train"]), np.asarray(f["splits/val"])
    images, labels = np.asarray(f["images"]), np.asarray(f["labels"])
    x, y = torch.from_numpy(images[tr].astype(np.float32)), torch.from_numpy(labels[tr].astype(np.int64))
    vx, vy = torch.from_numpy(images[va].astype(np.float32)), torch.from_numpy(labels[va].astype(np.int64))
    log = lambda s: print(f"[pytorch seed {a.seed}] {s}", flush=True)  # noqa: E731
    model = UNet2d(in_channels=4, classes=4, widths=tuple(int(w) for w in a.widths.split(",")))
    t0 = time.time()
    fit(model, x, y, vx, vy, a.epochs, a.lr, [1, 1, 1, 1], 0.5, 1, a.batch, gen, log)
    fit(model, x, y, vx, vy, a.ft_epochs, a.ft_lr, [0.1, 4, 1, 1], 0.2, 2, a.batch, gen, log)
    d = evaluate(model, vx, vy, tta=True)
    result = {"side": "pytorch", "seed": a.seed, "dice": {"necrotic": d[1], "edema": d[2], "enhancing": d[3]},
              "mean_dice": sum(d[1:]) / 3, "seconds": time.time() - t0}
    log(f"TTA evaluation: Dice {d[1]:.4f}/{d[2]:.4f}/{d[3]:.4f} (mean {result['mean_dice']:.4f})")
    with open(a.json, "w") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    main()
