#!/usr/bin/env python3
"""The DDP side of benchmarks/step_compare.sh at several ranks: the U-Net step of
benchmarks/pytorch_reference.py wrapped in DistributedDataParallel, as a PyTorch user runs
data parallelism, launched by torchrun (gloo on the CPU, NCCL on a GPU). Same model,
per-rank batch, soft multi-class Dice (batch-wide sums per rank) and fused Adam as
`launch/mpirun.sh -np N brats_recipe bench`. Two measurements, as Strata's bench:

  step      one batch already on the device, stepped over and over (DDP's gradient
            all-reduce in its buckets, overlapped with backward);
  pipeline  a DataLoader with a DistributedSampler over the same Strata packed HDF5 file
            (benchmarks/pytorch_pipeline.py's dataset: h5py, per-sample augmentation in the
            workers), feeding the same step.

Rank 0 prints one JSON line: slices/s over all ranks (per-rank batch x ranks x steps over
the slowest rank's time) and each rank's peak RSS in MiB (the rank's process; for the
pipeline, its DataLoader workers' peaks too, listed apart).

  torchrun --standalone --nproc_per_node 2 benchmarks/pytorch_ddp.py --data brats64.h5 \\
      --widths 8 16 32 64 --batch 16 --threads 1 --steps 30 --what step
"""
import argparse
import json
import os
import resource
import sys
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_pipeline import PackedSlices  # noqa: E402
from pytorch_reference import UNet2d, multi_dice_loss  # noqa: E402


def peak_rss_mib(pid="self"):
    """VmHWM of a process in MiB (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def child_pids():
    """This process's children (the DataLoader's workers)."""
    me, out = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == me:
                        out.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a Strata packed file (brats_recipe pack)")
    ap.add_argument("--widths", type=int, nargs="+", default=[8, 16, 32, 64])
    ap.add_argument("--batch", type=int, default=16, help="per rank")
    ap.add_argument("--what", choices=("step", "pipeline"), default="step")
    ap.add_argument("--workers", type=int, default=1, help="DataLoader workers per rank (pipeline)")
    ap.add_argument("--prefetch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads per rank")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--amp", choices=("off", "bf16"), default="off", help="bf16 autocast of the forward")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = DistributedDataParallel(UNet2d(widths=tuple(a.widths)).to(device),
                                    device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
    autocast = dict(device_type=device.type, dtype=torch.bfloat16, enabled=a.amp == "bf16")

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        with torch.autocast(**autocast):
            logits = model(x)
        multi_dice_loss(logits, y).backward()
        opt.step()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()
        dist.barrier()

    data = PackedSlices(a.data)
    workers = []
    if a.what == "step":
        sampler = torch.utils.data.DistributedSampler(data, shuffle=True, seed=0, drop_last=True)
        x, y = next(iter(torch.utils.data.DataLoader(data, batch_size=a.batch, sampler=sampler, drop_last=True)))
        x, y = x.to(device), y.to(device)
        for _ in range(a.warmup):
            step(x, y)
        sync()
        start = time.perf_counter()
        for _ in range(a.steps):
            step(x, y)
        sync()
    else:
        sampler = torch.utils.data.DistributedSampler(data, shuffle=True, seed=0, drop_last=True)
        loader = torch.utils.data.DataLoader(
            data, batch_size=a.batch, sampler=sampler, drop_last=True, num_workers=a.workers,
            prefetch_factor=a.prefetch if a.workers > 0 else None, persistent_workers=a.workers > 0,
            pin_memory=device.type == "cuda")
        done, start, epoch = -a.warmup, None, 0
        while done < a.steps:
            sampler.set_epoch(epoch)
            epoch += 1
            for x, y in loader:
                if done == 0:
                    sync()
                    start = time.perf_counter()
                step(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
                done += 1
                if done >= a.steps:
                    break
        sync()
        workers = [peak_rss_mib(p) for p in child_pids()]
    seconds = torch.tensor([time.perf_counter() - start], dtype=torch.float64)
    dist.all_reduce(seconds, op=dist.ReduceOp.MAX)
    rss = [None] * world
    dist.all_gather_object(rss, dict(rank=peak_rss_mib(), workers=[w for w in workers if w is not None]))
    if rank == 0:
        rate = a.batch * world * a.steps / float(seconds)
        print(json.dumps(dict(impl="pytorch-ddp", what=a.what, ranks=world, backend=dist.get_backend(),
                              slices_per_s=round(rate, 2), batch_per_rank=a.batch, threads=torch.get_num_threads(),
                              widths=a.widths, amp=a.amp, steps=a.steps, workers=a.workers if a.what == "pipeline" else 0,
                              peak_rss_mib=[r["rank"] for r in rss], worker_peak_rss_mib=[r["workers"] for r in rss],
                              torch=torch.__version__)), flush=True)
    # Both ranks past every collective, then out without the interpreter's teardown: gloo's
    # worker threads there (destroy_process_group or not) end in std::terminate now and
    # then ("terminate called without an active exception", about one run in ten here),
    # which would fail a measurement already printed.
    dist.barrier()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
