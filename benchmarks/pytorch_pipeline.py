#!/usr/bin/env python3
"""The PyTorch side of the end-to-end figure of benchmarks/step_compare.sh: the training
step of benchmarks/pytorch_reference.py fed by a torch.utils.data.DataLoader over the
same Strata packed HDF5 file that `brats_recipe bench` reads (h5py, one handle per
worker), with Strata's default augmentation (flips and quarter turns with probability
0.5 each, a rotation of up to 15 degrees with probability 0.5) applied per sample in the
workers, as a PyTorch training script does. Same model, batch, loss (soft multi-class
Dice, batch-wide sums), Adam, threads and (--amp bf16) autocast. Prints one JSON line, with
the main process's peak RSS (the workers' are their own):
  {"impl": "pytorch", "pipeline_slices_per_s": ..., "workers": ..., ...}

  python3 benchmarks/pytorch_pipeline.py --data brats64.h5 --widths 8 16 32 64 --batch 16 --workers 1 \\
      --threads 2 --steps 30
"""
import argparse
import json
import math
import os
import resource
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_reference import UNet2d, multi_dice_loss  # noqa: E402


class PackedSlices(torch.utils.data.Dataset):
    """The train split of a Strata packed file; every item is augmented by its own draw."""

    def __init__(self, path, split="train", augment=True):
        self.path, self.augment = path, augment
        with h5py.File(path, "r") as f:
            self.index = np.asarray(f[f"splits/{split}"])
        self.file = None  # opened in each worker: h5py handles do not survive fork

    def __len__(self):
        return len(self.index)

    def __getitem__(self, i):
        if self.file is None:
            self.file = h5py.File(self.path, "r")
        s = int(self.index[i])
        x = torch.from_numpy(self.file["images"][s].astype(np.float32))
        y = torch.from_numpy(self.file["labels"][s].astype(np.int64))
        if not self.augment:
            return x, y
        if torch.rand(1).item() < 0.5:
            x, y = x.flip(-1), y.flip(-1)
        if torch.rand(1).item() < 0.5:
            x, y = x.flip(-2), y.flip(-2)
        if torch.rand(1).item() < 0.5:
            k = int(torch.randint(1, 4, (1,)))
            x, y = x.rot90(k, (-2, -1)), y.rot90(k, (-2, -1))
        if torch.rand(1).item() < 0.5:
            a = math.radians(float(torch.empty(1).uniform_(-15, 15)))
            theta = torch.tensor([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0]]).unsqueeze(0)
            grid = F.affine_grid(theta, (1, 1) + tuple(x.shape[-2:]), align_corners=False)
            x = F.grid_sample(x[None], grid, mode="bilinear", align_corners=False)[0]
            y = F.grid_sample(y[None, None].float(), grid, mode="nearest", align_corners=False)[0, 0].long()
        return x.contiguous(), y.contiguous()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--widths", type=int, nargs="+", default=[8, 16, 32, 64])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--prefetch", type=int, default=4, help="batches in flight per worker (prefetch_factor)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", choices=("off", "bf16"), default="off", help="bf16 autocast of the forward")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    torch.manual_seed(0)
    model = UNet2d(widths=tuple(a.widths)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
    data = PackedSlices(a.data)
    loader = torch.utils.data.DataLoader(
        data, batch_size=a.batch, shuffle=True, drop_last=True, num_workers=a.workers,
        prefetch_factor=a.prefetch if a.workers > 0 else None, persistent_workers=a.workers > 0,
        pin_memory=device.type == "cuda")
    done, start = -a.warmup, None
    while done < a.steps:
        for x, y in loader:
            if done == 0:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=a.amp == "bf16"):
                logits = model(x)
            loss = multi_dice_loss(logits, y)
            loss.backward()
            opt.step()
            done += 1
            if done >= a.steps:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    print(json.dumps(dict(impl="pytorch", what="pipeline", pipeline_slices_per_s=round(a.batch * a.steps / seconds, 1),
                          batch=a.batch, workers=a.workers, threads=torch.get_num_threads(), widths=a.widths,
                          steps=a.steps, size=int(x.shape[-1]), amp=a.amp, torch=torch.__version__,
                          peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))),
          flush=True)


if __name__ == "__main__":
    main()
