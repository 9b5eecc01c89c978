#!/usr/bin/env python3
"""The PyTorch side of benchmarks/accuracy_twin.sh (exact mode).

    twin_pytorch.py init  --out INIT.pt --widths 8,16,32,64 --norm batch|group [--groups 8]
        seeded initial weights of benchmarks/pytorch_reference.py's U-Net (GroupNorm in
        place of BatchNorm with --norm group), saved as a plain state_dict for Strata's
        `finetune --checkpoint`
    twin_pytorch.py train --init INIT.pt --data FILE.h5 --samples RUN/samples --events RUN/tb
                          --strata FINAL.pt --widths ... --norm ... --loss multi_dice|cross_entropy
                          --lr LR --betas B1,B2 --eps EPS --world N --json OUT.json
        replays Strata's run: every step's slices from Strata's sample log (run.sample_log;
        at N ranks one step is the concatenation of the ranks' batches, in rank order),
        read here with h5py, one Adam step each from the same initial weights. Compares
        each step's loss with Strata's (TensorBoard's step/loss: rank 0's batch) and the
        final weights with Strata's exported ones. Prints a table and writes JSON.
"""
import argparse
import json
import os
import re
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_reference import UNet2d, multi_dice_loss  # noqa: E402


def build(widths, norm, groups):
    model = UNet2d(in_channels=4, classes=4, widths=tuple(int(w) for w in widths.split(",")))
    if norm == "group":  # Strata's norm=group: GroupNorm(groups, channels) where BatchNorm was
        for parent in model.modules():
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.BatchNorm2d):
                    setattr(parent, name, nn.GroupNorm(groups, child.num_features))
    return model


def step_batches(samples_dir, world):
    """{step: [slice, ...]} with the ranks' batches of each step concatenated in rank order."""
    per_rank = []
    for r in range(world):
        steps = {}
        for line in open(os.path.join(samples_dir, f"rank-{r}.txt")):
            m = re.match(r"epoch (\d+) step (\d+):(.*)", line)
            steps[int(m.group(2))] = [int(s) for s in m.group(3).split()]
        per_rank.append(steps)
    assert all(set(p) == set(per_rank[0]) for p in per_rank), "the ranks logged different steps"
    return {s: [i for p in per_rank for i in p[s]] for s in sorted(per_rank[0])}, [len(per_rank[0][s]) for s in sorted(per_rank[0])]


def strata_step_losses(events_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(events_dir, size_guidance={"scalars": 0})
    acc.Reload()
    return {e.step: e.value for e in acc.Scalars("step/loss")}


def loss_rows(steps):
    """[(step, PyTorch's loss, Strata's loss or None)] -> (rows, worst relative difference)."""
    rows = [{"step": step, "pytorch": mine, "strata": strata,
             "rel_diff": abs(mine - strata) / max(abs(strata), 1e-12) if strata is not None else float("inf")}
            for step, mine, strata in steps]
    return rows, max(r["rel_diff"] for r in rows)


def print_table(rows):
    print(f"{'step':>5} {'PyTorch loss':>14} {'Strata loss':>14} {'rel diff':>10}")
    for r in rows:
        print(f"{r['step']:>5} {r['pytorch']:>14.8f} {r['strata'] if r['strata'] is not None else float('nan'):>14.8f} "
              f"{r['rel_diff']:>10.2e}")


def summary(result):
    return (f"{result['steps']} steps, max relative loss difference {result['max_rel_loss_diff']:.2e}; final weights: "
            f"max |difference| {result['max_abs_weight_diff']:.2e} (in {result['worst_tensor']}; largest weight "
            f"{result['max_abs_weight']:.3g}); |w_strata - w_pytorch| / |w_pytorch - w_init| = "
            f"{result['params_apart_over_moved']:.2e} (PyTorch against itself with another thread count: "
            f"{result['pytorch_vs_itself_over_moved']:.2e})")


def weights_agreement(model, final, init, other, exclude=()):
    """PyTorch's trained `model` against Strata's `final` state_dict (same keys), both from
    `init`; `other` is PyTorch's own run with another thread count (the noise floor).
    Parameters named in `exclude` are left out of the distances."""
    ours = model.state_dict()
    assert set(final) == set(ours), sorted(set(final) ^ set(ours))
    wdiff = {k: (ours[k].float() - final[k].float()).abs().max().item() for k in ours if ours[k].is_floating_point()}
    wscale = max(v.float().abs().max().item() for k, v in ours.items() if v.is_floating_point())
    # How far the two runs' parameters are apart, against how far training moved them:
    # Adam's update of an element whose gradient is below eps is decided by rounding
    # noise (up to lr per step either way), so single elements may differ by about lr
    # while the weights as a whole agree.
    names = [k for k, _ in model.named_parameters() if k not in exclude]
    other = other.state_dict()

    def distance(x, y):
        return sum(((x[k] - y[k]) ** 2).sum().item() for k in names) ** 0.5

    moved = max(distance(ours, init), 1e-30)
    return {"max_abs_weight_diff": max(wdiff.values()), "max_abs_weight": wscale, "worst_tensor": max(wdiff, key=wdiff.get),
            "params_apart_over_moved": distance(ours, final) / moved,
            "pytorch_vs_itself_over_moved": distance(ours, other) / moved}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["init", "train"])
    ap.add_argument("--out")
    ap.add_argument("--init")
    ap.add_argument("--data")
    ap.add_argument("--samples")
    ap.add_argument("--events")
    ap.add_argument("--strata")
    ap.add_argument("--widths", default="8,16,32,64")
    ap.add_argument("--norm", default="batch")
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--loss", default="multi_dice")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--betas", default="0.9,0.999")
    ap.add_argument("--eps", type=float, default=1e-8)
    ap.add_argument("--world", type=int, default=1)
    ap.add_argument("--reduce", default="global", help="Strata's loss.reduce: global logs the whole step's loss")
    ap.add_argument("--channels-last", action="store_true", help="model and batches in channels_last, as Strata's side")
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.manual_seed(11)
    torch.use_deterministic_algorithms(True)

    if a.mode == "init":
        model = build(a.widths, a.norm, a.groups)
        torch.save(dict(model.state_dict()), a.out)
        print(f"init: {a.out}: {sum(p.numel() for p in model.parameters())} parameters, norm {a.norm}")
        return

    batches, rank0_sizes = step_batches(a.samples, a.world)
    theirs = strata_step_losses(a.events)
    f = h5py.File(a.data, "r")
    images, labels = f["images"], f["labels"]
    data = [(step, n0, torch.from_numpy(np.stack([images[i] for i in sl]).astype(np.float32)),  # stored float16
             torch.from_numpy(np.stack([labels[i] for i in sl]).astype(np.int64)))
            for (step, sl), n0 in zip(batches.items(), rank0_sizes)]

    def loss_of(logits, target):
        if a.loss == "multi_dice":
            return multi_dice_loss(logits, target)
        return F.cross_entropy(logits.float(), target)

    def replay(threads):
        """PyTorch over Strata's batches with `threads` intra-op threads: (model, step losses)."""
        torch.set_num_threads(threads)
        model = build(a.widths, a.norm, a.groups)
        model.load_state_dict(torch.load(a.init), strict=True)
        layout = torch.channels_last if a.channels_last else torch.contiguous_format
        model = model.to(memory_format=layout)
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=tuple(float(b) for b in a.betas.split(",")),
                               eps=a.eps)
        losses = []
        for step, n0, x, y in data:
            opt.zero_grad(set_to_none=True)
            logits = model(x.contiguous(memory_format=layout))
            loss = loss_of(logits, y)
            loss.backward()
            opt.step()
            # Strata logs rank 0's loss: its batch is the first n0 rows of the step.
            # (with loss.reduce global, the loss of the whole step, which is this one).
            whole = a.world == 1 or a.reduce == "global"
            losses.append(loss.item() if whole else loss_of(logits[:n0].detach(), y[:n0]).item())
        return model, losses

    threads = torch.get_num_threads()
    model, losses = replay(threads)
    # PyTorch against itself with another reduction order (one thread): the noise floor
    # of the weights' agreement.
    model1, _ = replay(1 if threads > 1 else 2)
    # Strata's step counter is after the step.
    rows, worst = loss_rows([(step + 1, mine, theirs.get(step + 1)) for (step, _, _, _), mine in zip(data, losses)])
    result = {"steps": len(rows), "world": a.world, "loss": a.loss, "norm": a.norm, "max_rel_loss_diff": worst,
              **weights_agreement(model, torch.load(a.strata), torch.load(a.init), model1), "per_step": rows}
    print_table(rows)
    print(f"twin exact, np {a.world}, {a.loss}, norm {a.norm}: {summary(result)}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
