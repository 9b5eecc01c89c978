#!/usr/bin/env python3
"""The PyTorch side of benchmarks/gpu_compare.sh: the same U-Net training step as
Strata's `brats_recipe bench` step figure, in eager PyTorch (optionally torch.compile).

Model: 2D U-Net, 4 -> 4 channels, widths 32-64-128-256-512; per level two 3x3 conv
(no bias) + BatchNorm + ReLU, 2x2 max-pool down, 2x2 stride-2 transposed conv up,
concatenated skips, 1x1 head (7,763,428 parameters). Loss: soft multi-class Dice with
batch-wide sums in float32 (smooth 1e-5). Optimiser: Adam lr 1e-4, fused. One step =
zero_grad, forward under autocast, loss, (scaled) backward, step, on one batch already
on the GPU: the compute ceiling, as Strata's step_slices_per_s.

UNet3d is the reference of Strata's nn::UNet3d (framework/nn/include/strata/nn/unet3d.h):
nnU-Net's 3d_fullres PlainConvUNet without deep supervision, with the key names that
model/state_dict.h exports (tests/twin/net3d_check.py loads them with strict=True).

Prints one JSON line per configuration:
  python3 benchmarks/pytorch_reference.py --size 128 240 --batch 64 --configs fp32,bf16_cl,bf16_cl_compile
Configs: <dtype>[_cl][_compile|_maxautotune] with dtype fp32 | fp16 | bf16; _compile is
torch.compile's default mode over the model and the loss (Inductor: fused C++/OpenMP
kernels on a CPU, Triton on a GPU), _maxautotune its "max-autotune-no-cudagraphs" mode.
The first steps, where compilation happens, are timed apart: "compile_s" (the whole
warm-up; Inductor's cache in /tmp makes a second run's far shorter). "peak_rss_mib" is the
process's peak resident memory. `--device cpu --widths 4 8 16` is
the CPU smoke of benchmarks/gpu_compare.sh (tests the script, measures nothing of interest).
`--net unet3d --norm instance --size 128 --batch 2 --widths 32 64 128 256 320 320` is the same
step for the UNet3d on size^3 patches ([B, 4, D, H, W], channels_last_3d with _cl; the Dice
sums over every voxel of the batch), its rate in patches_per_s.
"""
import argparse
import json
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_block(cin, cout):
    layers = []
    for c_in in (cin, cout):
        layers += [nn.Conv2d(c_in, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class UNet2d(nn.Module):
    def __init__(self, in_channels=4, classes=4, widths=(32, 64, 128, 256, 512)):
        super().__init__()
        self.enc = nn.ModuleList()
        c = in_channels
        for w in widths:
            self.enc.append(conv_block(c, w))
            c = w
        self.ups, self.decs = nn.ModuleList(), nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.ups.append(nn.ConvTranspose2d(c, w, 2, stride=2))
            self.decs.append(conv_block(2 * w, w))
            c = w
        self.head = nn.Conv2d(c, classes, 1)

    def forward(self, x):
        skips = []
        for level, block in enumerate(self.enc):
            x = block(x)
            if level + 1 < len(self.enc):
                skips.append(x)
                x = F.max_pool2d(x, 2)
        for up, dec in zip(self.ups, self.decs):
            x = dec(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)


def norm3d(kind, channels, groups=8):
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)  # nnU-Net's: eps 1e-5, affine
    if kind == "group":
        return nn.GroupNorm(groups, channels)
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    raise ValueError(f"norm {kind!r}: instance, group or batch")


def conv_block_3d(cin, cout, stride, norm="instance", activation="leaky_relu", groups=8):
    """conv (stride `stride`), norm, act, conv, norm, act: Sequential positions 0-5."""
    layers = []
    for c_in, s in ((cin, stride), (cout, 1)):
        act = nn.LeakyReLU(0.01, inplace=True) if activation == "leaky_relu" else nn.ReLU(inplace=True)
        layers += [nn.Conv3d(c_in, cout, 3, stride=s, padding=1, bias=True), norm3d(norm, cout, groups), act]
    return nn.Sequential(*layers)


class UNet3d(nn.Module):
    """Levels of two 3x3x3 convs; levels below the first start with a stride-2 conv (no
    pooling); 2x2x2 stride-2 transposed convs up, [upsampled, skip] concatenated; 1x1x1 head."""

    def __init__(self, in_channels=4, classes=4, widths=(32, 64, 128, 256, 320, 320), norm="instance",
                 activation="leaky_relu", groups=8):
        super().__init__()
        self.enc = nn.ModuleList()
        c = in_channels
        for i, w in enumerate(widths):
            self.enc.append(conv_block_3d(c, w, 1 if i == 0 else 2, norm, activation, groups))
            c = w
        self.ups, self.decs = nn.ModuleList(), nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.ups.append(nn.ConvTranspose3d(c, w, 2, stride=2))
            self.decs.append(conv_block_3d(2 * w, w, 1, norm, activation, groups))
            c = w
        self.head = nn.Conv3d(c, classes, 1)

    def forward(self, x):
        skips = []
        for block in self.enc:
            x = block(x)
            skips.append(x)
        skips.pop()  # the bottom level's output goes up, not across
        for up, dec in zip(self.ups, self.decs):
            x = dec(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)


def multi_dice_loss(logits, target, smooth=1e-5):
    """Strata's multi_dice: logits [B, C, H, W] or [B, C, D, H, W], sums over the whole batch."""
    probs = logits.float().softmax(dim=1)
    onehot = F.one_hot(target, probs.shape[1]).movedim(-1, 1).to(probs.dtype)
    dims = (0, *range(2, probs.dim()))
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    return (1 - (2 * inter + smooth) / (denom + smooth)).mean()


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(size, batch, steps, config, device, widths, net="unet2d", norm="instance"):
    parts = config.split("_")
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[parts[0]]
    channels_last = "cl" in parts
    mode = "max-autotune-no-cudagraphs" if "maxautotune" in parts else "default" if "compile" in parts else None
    torch.manual_seed(0)
    spatial = (size,) * (3 if net == "unet3d" else 2)  # a 3D patch is size^3
    model = UNet3d(widths=widths, norm=norm) if net == "unet3d" else UNet2d(widths=widths)
    fmt = ({2: torch.channels_last, 3: torch.channels_last_3d}[len(spatial)] if channels_last
           else torch.contiguous_format)
    model = model.to(device).to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    x = torch.randn(batch, 4, *spatial, device=device).to(memory_format=fmt)
    y = torch.randint(0, 4, (batch, *spatial), device=device)
    def forward_loss(inputs, target):
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            logits = model(inputs)
        return multi_dice_loss(logits, target)

    forward = torch.compile(forward_loss, mode=mode) if mode else forward_loss

    def step():
        opt.zero_grad(set_to_none=True)
        loss = forward(x, y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    warm = time.perf_counter()
    for _ in range(min(steps, 20 if mode else 10)):
        step()
    synchronize(device)
    warmup_s = time.perf_counter() - warm
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    return batch * steps / seconds, peak, warmup_s if mode else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, nargs="+", default=[128, 240])
    ap.add_argument("--batch", type=int, nargs="+", default=[64])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--configs", default="fp32,fp16_cl,bf16_cl,bf16_cl_compile")
    ap.add_argument("--device", default="cuda", help="cuda (the comparison) or cpu (the script's smoke test)")
    ap.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128, 256, 512])
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (torch.set_num_threads; 0: torch's default)")
    ap.add_argument("--net", choices=("unet2d", "unet3d"), default="unet2d",
                    help="unet3d: the UNet3d on size^3 patches (rate in patches_per_s)")
    ap.add_argument("--norm", default="instance", help="UNet3d's norm: instance | group | batch")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    for size in a.size:
        for batch in a.batch:
            for config in a.configs.split(","):
                row = dict(impl="pytorch", gpu=name, torch=torch.__version__, net=a.net, size=size, batch=batch,
                           config=config, widths=a.widths, threads=torch.get_num_threads())
                rate = "patches_per_s" if a.net == "unet3d" else "slices_per_s"
                if a.net == "unet3d":
                    row.update(norm=a.norm)
                try:
                    sps, peak, compile_s = measure(size, batch, a.steps, config, device, tuple(a.widths), a.net,
                                                   a.norm)
                    row.update({rate: round(sps, 2), "peak_gib": None if peak is None else round(peak, 2),
                                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})
                    if compile_s is not None:
                        row["compile_s"] = round(compile_s, 2)
                except Exception as e:  # one failing config (e.g. compile) must not stop the others
                    row.update(error=str(e)[:300])
                print(json.dumps(row), flush=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
