#!/usr/bin/env python3
"""`brats_recipe score` against MONAI, an implementation Strata did not write.

Synthetic BraTS label volumes (anisotropic voxels, 0.9 x 1.1 x 2.5 mm), predictions made
by perturbing them, and the empty cases (a region empty in both, in the prediction only,
in the truth only) are written as NIfTI files; `score --json` scores them. For every case
and region (ET = {4}, TC = {1, 4}, WT = {1, 2, 4}):
  - Dice equals MONAI's DiceMetric within 1e-6;
  - HD95 equals MONAI's compute_hausdorff_distance(percentile=95, spacing) within 1e-3 mm;
  - sensitivity and specificity equal their definitions counted here with numpy;
  - empty regions follow the BraTS conventions (Dice 1 and HD95 0 when both are empty,
    Dice 0 and HD95 373.13 mm when exactly one is).
Usage: score_reference_test.py BRATS_RECIPE WORKDIR
"""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import torch
from monai.metrics import DiceMetric, compute_hausdorff_distance

SPACING = (0.9, 1.1, 2.5)  # mm along i, j, k
SHAPE = (40, 36, 24)       # nx, ny, nz
REGIONS = {"ET": (4,), "TC": (1, 4), "WT": (1, 2, 4)}


def write_nii(path, labels_xyz, spacing):
    """A minimal NIfTI-1 single file: uint8, qform = scanner, voxel sizes `spacing`."""
    nx, ny, nz = labels_xyz.shape
    hdr = bytearray(352)
    struct.pack_into("<i", hdr, 0, 348)
    struct.pack_into("<8h", hdr, 40, 3, nx, ny, nz, 1, 1, 1, 1)
    struct.pack_into("<hh", hdr, 70, 2, 8)  # DT_UINT8, 8 bits
    struct.pack_into("<8f", hdr, 76, 1.0, *spacing, 0, 0, 0, 0)
    struct.pack_into("<f", hdr, 108, 352.0)  # vox_offset
    hdr[123] = 2  # xyzt_units: mm
    struct.pack_into("<hh", hdr, 252, 1, 0)  # qform_code scanner, sform_code 0
    hdr[344:348] = b"n+1\0"
    with open(path, "wb") as f:
        f.write(hdr)
        f.write(np.ascontiguousarray(labels_xyz.transpose(2, 1, 0)).tobytes())  # i fastest


def blob(rng, centre, radius):
    x, y, z = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    d = ((x - centre[0]) * SPACING[0]) ** 2 + ((y - centre[1]) * SPACING[1]) ** 2 + ((z - centre[2]) * SPACING[2]) ** 2
    wobble = rng.normal(0, 0.15 * radius ** 2, SHAPE)
    return d + wobble < radius ** 2


def tumour(rng, shift=(0, 0, 0), scale=1.0):
    c = np.array([20, 18, 12]) + np.array(shift)
    lab = np.zeros(SHAPE, np.uint8)
    lab[blob(rng, c, 11 * scale)] = 2          # edema
    lab[blob(rng, c, 7 * scale)] = 4           # enhancing rim
    lab[blob(rng, c, 4 * scale)] = 1           # necrotic core
    return lab


def cases(rng):
    out = {}
    for k in range(4):  # ordinary cases: the prediction is a shifted, rescaled, noisy truth
        truth = tumour(rng)
        pred = tumour(rng, shift=rng.integers(-2, 3, 3), scale=rng.uniform(0.8, 1.2))
        noise = rng.random(SHAPE) < 0.002
        pred[noise] = rng.choice([1, 2, 4], noise.sum())
        out[f"case_{k}"] = (pred, truth)
    truth = tumour(rng)
    truth[truth == 4] = 2
    pred = truth.copy()
    out["et_empty_in_both"] = (pred, truth)
    truth = tumour(rng)
    pred = truth.copy()
    pred[pred == 4] = 2
    out["et_missed"] = (pred, truth)
    pred = tumour(rng)
    truth = pred.copy()
    truth[truth == 4] = 2
    out["et_only_predicted"] = (pred, truth)
    return out


def main():
    recipe, work = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(7)
    data = cases(rng)
    os.makedirs(f"{work}/pred", exist_ok=True)
    os.makedirs(f"{work}/truth", exist_ok=True)
    for name, (pred, truth) in data.items():
        write_nii(f"{work}/pred/{name}.nii", pred, SPACING)
        write_nii(f"{work}/truth/{name}.nii", truth, SPACING)
    subprocess.run([recipe, "score", "--pred", f"{work}/pred", "--truth", f"{work}/truth", "--json",
                    f"{work}/scores.json"], check=True, stdout=subprocess.DEVNULL)
    got = {c["case"]: c for c in json.load(open(f"{work}/scores.json"))["cases"]}
    assert set(got) == set(data), (set(got), set(data))

    dice_metric = DiceMetric(include_background=True, reduction="none")
    worst_dice = worst_hd = 0.0
    checked = 0
    for name, (pred, truth) in data.items():
        for region, labels in REGIONS.items():
            p, t = np.isin(pred, labels), np.isin(truth, labels)
            mine = got[name][region]
            tp, fp, fn = (p & t).sum(), (p & ~t).sum(), (~p & t).sum()
            tn = p.size - tp - fp - fn
            assert abs(mine["specificity"] - tn / (tn + fp)) < 1e-9, (name, region, mine)
            if not t.any() or not p.any():
                both = not t.any() and not p.any()
                assert mine["dice"] == (1.0 if both else 0.0), (name, region, mine)
                assert abs(mine["hd95"] - (0.0 if both else 373.13)) < 1e-9, (name, region, mine)
                assert mine["sensitivity"] == (1.0 if both else 0.0 if not t.any() else 0.0), (name, region, mine)
                checked += 1
                continue
            assert abs(mine["sensitivity"] - tp / (tp + fn)) < 1e-9, (name, region, mine)
            yp = torch.from_numpy(p[None, None].astype(np.float32))
            yt = torch.from_numpy(t[None, None].astype(np.float32))
            dice = dice_metric(y_pred=yp, y=yt).item()
            hd = compute_hausdorff_distance(yp, yt, percentile=95, spacing=SPACING).item()
            worst_dice = max(worst_dice, abs(mine["dice"] - dice))
            worst_hd = max(worst_hd, abs(mine["hd95"] - hd))
            assert abs(mine["dice"] - dice) < 1e-6, (name, region, mine["dice"], dice)
            assert abs(mine["hd95"] - hd) < 1e-3, (name, region, mine["hd95"], hd)
            checked += 1
    print(f"score agrees with MONAI on {checked} case-regions: largest Dice difference {worst_dice:.2e}, "
          f"largest HD95 difference {worst_hd:.2e} mm")


if __name__ == "__main__":
    main()
