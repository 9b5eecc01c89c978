"""PyTorch's and MONAI's side of tests/twin/sliding_window_twin_test.sh, with the UNet3d
of benchmarks/pytorch_reference.py.

    net3d_check.py make  STATE IO WIDTHS NORM   a seeded reference UNet3d (norm layers
        perturbed) saved with torch.save(model.state_dict()); IO gets "input" and its
        eval-mode "logits", for strata_net3d import
    net3d_check.py check STATE IO WIDTHS NORM [--sigma-scale S]   loads Strata's export
        with load_state_dict(strict=True), compares its logits on IO's "input" with
        Strata's, then runs monai.inferers.sliding_window_inference(volume, roi 16^3,
        sw_batch 3, predictor, overlap=0.5, mode="gaussian", sigma_scale=S (0.125)) with
        predictor = softmax(model(window)) (Strata blends probabilities: MONAI blends
        whatever the predictor returns) and compares with Strata's "probs"; and with a
        predictor that averages softmax over the 8 flips of D, H, W mapped back, with
        "probs_mirror"; and without on the volume cut to 37x13x29 (MONAI pads H to the
        window), with "probs_small". Exits 1 when any maximum absolute difference is above 1e-5.
"""
import argparse
import itertools
import os
import sys

import torch
from monai.inferers import sliding_window_inference

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
from pytorch_reference import UNet3d  # noqa: E402

TOLERANCE = 1e-5


def reference(widths, norm):
    return UNet3d(in_channels=4, classes=4, widths=tuple(int(w) for w in widths.split(",")), norm=norm, groups=2)


def mirrored(model):
    flips = [dims for n in range(4) for dims in itertools.combinations((2, 3, 4), n)]

    def predict(x):
        total = 0
        for dims in flips:
            p = torch.softmax(model(torch.flip(x, dims) if dims else x), 1)
            total = total + (torch.flip(p, dims) if dims else p)
        return total / len(flips)

    return predict


def check(a):
    sd = torch.load(a.state, weights_only=True)
    model = reference(a.widths, a.norm)
    model.load_state_dict(sd, strict=True)  # raises on a missing, unexpected or misshapen key
    model.eval()
    d = torch.load(a.io, weights_only=False)  # the tool's own file (torch::pickle_save, type-tagged)
    diffs = {}
    with torch.no_grad():
        diffs["logits"] = (model(d["input"]) - d["logits"]).abs().max().item()
        for key, predictor in (("probs", lambda x: torch.softmax(model(x), 1)), ("probs_mirror", mirrored(model))):
            p = sliding_window_inference(d["volume"], (16, 16, 16), 3, predictor, overlap=0.5, mode="gaussian",
                                         sigma_scale=a.sigma_scale)
            diffs[key] = (p - d[key]).abs().max().item()
        small = d["volume"][:, :, :, :13]
        p = sliding_window_inference(small, (16, 16, 16), 3, lambda x: torch.softmax(model(x), 1), overlap=0.5,
                                     mode="gaussian", sigma_scale=a.sigma_scale)
        diffs["probs_small"] = (p - d["probs_small"]).abs().max().item()
    ok = all(v <= TOLERANCE for v in diffs.values())
    print(f"check {a.norm} sigma_scale {a.sigma_scale}: " + ", ".join(f"max |{k} diff| = {v:.3g}" for k, v in diffs.items())
          + (" PASS" if ok else f" FAIL (tolerance {TOLERANCE})"))
    return 0 if ok else 1


def make(a):
    torch.manual_seed(3)
    model = reference(a.widths, a.norm)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm3d, torch.nn.InstanceNorm3d, torch.nn.GroupNorm)):
                m.weight.normal_(1, 0.2)
                m.bias.normal_(0, 0.2)
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
        torch.save(model.state_dict(), a.state)  # a collections.OrderedDict, as usual
        x = torch.randn(2, 4, 8, 8, 8)
        torch.save({"input": x, "logits": model.eval()(x)}, a.io)
    print(f"make: {a.state}: {len(model.state_dict())} tensors")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("make", "check"))
    ap.add_argument("state")
    ap.add_argument("io")
    ap.add_argument("widths")
    ap.add_argument("norm")
    ap.add_argument("--sigma-scale", type=float, default=0.125)
    a = ap.parse_args()
    return make(a) if a.mode == "make" else check(a)


if __name__ == "__main__":
    sys.exit(main())
