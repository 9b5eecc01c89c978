"""PyTorch's side of tests/twin/step3d_twin_test.sh: the 3D training step of
benchmarks/pytorch_reference.py's UNet3d, replayed on the batches Strata trained on.

    step3d_twin.py make  DIR --widths 8,16,32,64 --norm instance|batch [--steps 5] [--batch 2] [--size 32]
        DIR/init.pt: a seeded reference UNet3d's state_dict (torch.save, for Strata's
        Trainer::init_weights_from); DIR/batches.pt: {"images": float32 [S, B, 4, D, H, W],
        "labels": int64 [S, B, D, H, W]}, labels 0..3 in blobs (smoothed noise cut at its
        quartiles) and images that see them through noise
    step3d_twin.py check DIR --widths ... --norm ... [--lr 1e-4] [--betas 0.9,0.999] [--eps 1e-8] [--threads 2]
        the same steps with torch.optim.Adam and multi_dice_loss (float32), compared with
        Strata's DIR/losses.txt and DIR/final.pt (strata_step3d): every step's loss within
        1e-4 (relative) and |w_strata - w_pytorch| / |w_pytorch - w_init| <= 2% (as the 2D
        exact twin, benchmarks/twin_pytorch.py) over every parameter but the conv biases
        before a norm (see cancelled_biases), which must agree within 2 x lr x steps.
        Prints a table and "PASS" or "FAIL ..."; exits 1 on FAIL.
"""
import argparse
import os
import re
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "benchmarks"))
from pytorch_reference import UNet3d, multi_dice_loss  # noqa: E402
from twin_pytorch import loss_rows, print_table, summary, weights_agreement  # noqa: E402

LOSS_TOLERANCE, WEIGHT_TOLERANCE = 1e-4, 0.02


def reference(a):
    return UNet3d(in_channels=4, classes=4, widths=tuple(int(w) for w in a.widths.split(",")), norm=a.norm)


def cancelled_biases(model):
    """The biases of the convolutions followed by a norm (positions 0 and 3 of every conv
    block): the norm subtracts the mean they add, so their gradient is zero up to rounding,
    and Adam turns that noise into steps of about lr either way, different in every run
    (PyTorch against itself with another thread count too). They are compared against
    that bound, and left out of the weights' distance."""
    return [k for k, _ in model.named_parameters() if re.fullmatch(r"(enc|decs)\.\d+\.[03]\.bias", k)]


def make(a):
    torch.manual_seed(5)
    torch.save(reference(a).state_dict(), os.path.join(a.dir, "init.pt"))
    shape = (a.steps * a.batch, 1, a.size, a.size, a.size)
    field = F.avg_pool3d(torch.randn(shape), 7, stride=1, padding=3)
    cuts = torch.quantile(field.flatten()[:: 97], torch.tensor([0.25, 0.5, 0.75]))
    labels = torch.bucketize(field, cuts).squeeze(1)  # 0..3, a quarter each
    levels = torch.randn(4, 4)  # class -> 4 channel intensities
    images = levels[labels].movedim(-1, 1) + 0.5 * torch.randn(a.steps * a.batch, 4, a.size, a.size, a.size)
    torch.save({"images": images.reshape(a.steps, a.batch, *images.shape[1:]),
                "labels": labels.reshape(a.steps, a.batch, *labels.shape[1:])}, os.path.join(a.dir, "batches.pt"))
    print(f"make: {a.steps} steps of {a.batch} x 4 x {a.size}^3, widths {a.widths}, norm {a.norm}")
    return 0


def replay(a, batches, threads):
    """PyTorch over the batches with `threads` intra-op threads: (model, step losses)."""
    torch.set_num_threads(threads)
    model = reference(a)
    model.load_state_dict(torch.load(os.path.join(a.dir, "init.pt")), strict=True)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=tuple(float(b) for b in a.betas.split(",")), eps=a.eps)
    losses = []
    for x, y in zip(batches["images"], batches["labels"]):
        opt.zero_grad(set_to_none=True)
        loss = multi_dice_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model, losses


def check(a):
    torch.use_deterministic_algorithms(True)
    batches = torch.load(os.path.join(a.dir, "batches.pt"))
    # Strata's thread count (strata_step3d --threads): the same reduction orders. With
    # another count the weights differ more (PyTorch against itself: up to about 4% of how
    # far they moved at norm batch), since Adam's first steps move every element by about
    # lr, whatever the sign rounding gives a gradient near zero.
    model, losses = replay(a, batches, a.threads)
    other, _ = replay(a, batches, 1 if a.threads > 1 else 2)
    strata = [float(line) for line in open(os.path.join(a.dir, "losses.txt"))]
    assert len(strata) == len(losses), f"Strata logged {len(strata)} steps, PyTorch took {len(losses)}"
    rows, worst = loss_rows([(k + 1, mine, theirs) for k, (mine, theirs) in enumerate(zip(losses, strata))])
    init = torch.load(os.path.join(a.dir, "init.pt"))
    final = torch.load(os.path.join(a.dir, "final.pt"))
    cancelled = cancelled_biases(model)
    result = {"steps": len(rows), "max_rel_loss_diff": worst,
              **weights_agreement(model, final, init, other, exclude=cancelled)}
    # Those biases still move by at most about lr per step on each side.
    bias_diff = max((model.state_dict()[k] - final[k]).abs().max().item() for k in cancelled)
    bias_bound = 2 * a.lr * len(rows)
    print_table(rows)
    ok = worst <= LOSS_TOLERANCE and result["params_apart_over_moved"] <= WEIGHT_TOLERANCE and bias_diff <= bias_bound
    print(f"twin step3d, norm {a.norm}, widths {a.widths}: {summary(result)}; the {len(cancelled)} conv biases "
          f"before a norm left out, max |difference| {bias_diff:.2e} (bound 2 x lr x steps = {bias_bound:.1e}) "
          + ("PASS" if ok else f"FAIL (tolerances: loss {LOSS_TOLERANCE}, weights {WEIGHT_TOLERANCE})"))
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("make", "check"))
    ap.add_argument("dir")
    ap.add_argument("--widths", default="8,16,32,64")
    ap.add_argument("--norm", default="instance")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--betas", default="0.9,0.999")
    ap.add_argument("--eps", type=float, default=1e-8)
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads, as Strata's run")
    a = ap.parse_args()
    torch.manual_seed(11)
    return make(a) if a.mode == "make" else check(a)


if __name__ == "__main__":
    sys.exit(main())
