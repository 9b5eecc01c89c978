#!/usr/bin/env python3
"""The tables of benchmarks/gpu_compare.sh, from the result files in its results folder.

  gpu_compare_table.py RES header            the table's head (device named)
  gpu_compare_table.py RES row SIZE NAME     one Strata-vs-PyTorch row, as soon as both are measured
  gpu_compare_table.py RES row3d             the 3D row (pt3d.json, strata3d.json), in patches/s
  gpu_compare_table.py RES final OUT         every row again, the goals, and OUT/table.md + OUT/compare.json

Result files (each one JSON object): pt_<size>_<config>.json (benchmarks/pytorch_reference.py),
strata_<size>_<name>.json (`brats_recipe bench --json`), train.json and eval.json (the
one-epoch training and the TTA evaluation). A missing or failed measurement shows as '-',
never as a number. Figures are slices per second; goals are the issue's, vs PyTorch in the
same command on the same device.
"""
import json
import os
import sys

# (size, Strata config, PyTorch config to compare with, goal ratio)
GOALS = [
    (128, "bf16_cl", "bf16_cl", 1.25),
    (128, "bf16_cl", "bf16_cl_compile", 1.0),
    (240, "bf16_cl", "bf16_cl", 1.25),
]
PIPELINE_GOAL = 0.95  # end to end (HDF5 -> prefetcher -> augment -> step) over the step rate

HEAD = ("| size | config | Strata step | PyTorch step | ratio | Strata pipeline | pipeline/step | data-wait "
        "| Strata peak GiB | PyTorch peak GiB |")
RULE = "|---|---|---|---|---|---|---|---|---|---|"


def load(res, name):
    try:
        with open(os.path.join(res, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fmt(v, digits=0):
    return "-" if v is None else f"{v:.{digits}f}"


def strata(res, size, name):
    s = load(res, f"strata_{size}_{name}.json")
    return s if s and "step_slices_per_s" in s else None


def pytorch(res, size, config):
    p = load(res, f"pt_{size}_{config}.json")
    return p if p and "slices_per_s" in p else None


def device(res):
    # The results first, then the smoke benches beside them (the header comes before any row).
    for folder in (res, os.path.dirname(os.path.abspath(res))):
        for f in sorted(os.listdir(folder)):
            j = load(folder, f) if f.endswith(".json") else None
            if isinstance(j, dict) and (j.get("gpu") or j.get("device")):
                return j.get("gpu") or j.get("device")
    return "?"


def row_of(res, size, name, versus=None):
    s, p = strata(res, size, name), pytorch(res, size, versus or name)
    ratio = s["step_slices_per_s"] / p["slices_per_s"] if s and p else None
    pipe = s["epoch_slices_per_s"] / s["step_slices_per_s"] if s else None
    return dict(size=size, config=name, pytorch_config=versus or name,
                strata_step=s and s["step_slices_per_s"], pytorch_step=p and p["slices_per_s"], ratio=ratio,
                strata_pipeline=s and s["epoch_slices_per_s"], pipeline_over_step=pipe,
                data_wait=s and s["data_wait"], strata_peak_gib=(s and s["peak_memory_gib"]) or None,  # 0 on the CPU
                pytorch_peak_gib=p and p.get("peak_gib"),
                strata_error=None if s else "no result (see logs.tar.gz)",
                pytorch_error=(load(res, f"pt_{size}_{versus or name}.json") or {}).get("error") if not p else None)


HEAD3D = ("| 3D patch | config | Strata step | PyTorch step | ratio | Strata pipeline | pipeline/step | data-wait "
          "| Strata peak GiB | PyTorch peak GiB |")


def first(j, *keys):
    """The first of `keys` that `j` has (a 3D bench may name its rate after patches or slices)."""
    return next((j[k] for k in keys if k in j), None) if j else None


def row3d_of(res):
    """The 3D row: UNet3d patches/s, Strata's bench against PyTorch's at bf16_cl."""
    s, p = load(res, "strata3d.json"), load(res, "pt3d.json")
    step, pt = first(s, "step_patches_per_s", "step_slices_per_s"), first(p, "patches_per_s")
    pipe = first(s, "epoch_patches_per_s", "epoch_slices_per_s")
    return dict(patch=p and p.get("size"), batch=p and p.get("batch"), config="bf16_cl", strata_step=step,
                pytorch_step=pt, ratio=step / pt if step and pt else None, strata_pipeline=pipe,
                pipeline_over_step=pipe / step if pipe and step else None, data_wait=s and s.get("data_wait"),
                strata_peak_gib=(s and s.get("peak_memory_gib")) or None, pytorch_peak_gib=p and p.get("peak_gib"),
                strata_error=None if step else "no result (see logs.tar.gz)", pytorch_error=p and p.get("error"))


def line3d(r):
    wait = "-" if r["data_wait"] is None else f"{100 * r['data_wait']:.1f}%"
    patch = "-" if r["patch"] is None else f"{r['patch']}³ x {r['batch']}"
    return (f"| {patch} | {r['config']} | {fmt(r['strata_step'], 2)} | {fmt(r['pytorch_step'], 2)} | "
            f"{fmt(r['ratio'], 2)} | {fmt(r['strata_pipeline'], 2)} | {fmt(r['pipeline_over_step'], 2)} | {wait} | "
            f"{fmt(r['strata_peak_gib'], 2)} | {fmt(r['pytorch_peak_gib'], 2)} |")


def line(r):
    label = r["config"] if r["pytorch_config"] == r["config"] else f"{r['config']} vs PyTorch {r['pytorch_config']}"
    wait = "-" if r["data_wait"] is None else f"{100 * r['data_wait']:.1f}%"
    return (f"| {r['size']} | {label} | {fmt(r['strata_step'])} | {fmt(r['pytorch_step'])} | {fmt(r['ratio'], 2)} | "
            f"{fmt(r['strata_pipeline'])} | {fmt(r['pipeline_over_step'], 2)} | {wait} | "
            f"{fmt(r['strata_peak_gib'], 2)} | {fmt(r['pytorch_peak_gib'], 2)} |")


def measured_rows(res):
    rows = []
    names = sorted({f[len("strata_"):-len(".json")] for f in os.listdir(res) if f.startswith("strata_")},
                   key=lambda n: (int(n.split("_", 1)[0]), n))
    for key in names:
        size, name = key.split("_", 1)
        rows.append(row_of(res, int(size), name))
    for size, name, versus, _ in GOALS:
        if versus != name and (strata(res, size, name) or pytorch(res, size, versus)):
            rows.append(row_of(res, size, name, versus))
    return rows


def final(res, out):
    rows = measured_rows(res)
    goals = []
    for size, name, versus, goal in GOALS:
        r = row_of(res, size, name, versus)
        goals.append(dict(what=f"{size}x{size} {name} step vs PyTorch {versus}", goal=goal, value=r["ratio"],
                          met=None if r["ratio"] is None else r["ratio"] >= goal))
    for r in rows:
        if r["pytorch_config"] == r["config"] and r["pipeline_over_step"] is not None:
            goals.append(dict(what=f"{r['size']}x{r['size']} {r['config']} pipeline over step", goal=PIPELINE_GOAL,
                              value=r["pipeline_over_step"], met=r["pipeline_over_step"] >= PIPELINE_GOAL))
    train, ev = load(res, "train.json"), load(res, "eval.json")
    dev = device(res)
    batch = next((s["config"]["batch_per_rank"] for s in (strata(res, r["size"], r["config"]) for r in rows) if s), "?")
    text = [f"device: {dev}; batch {batch} per GPU; figures in slices/s; PyTorch measured in the same command", "",
            HEAD, RULE] + [line(r) for r in rows] + ["", "| goal | wanted | measured | met |", "|---|---|---|---|"]
    for g in goals:
        met = "-" if g["met"] is None else ("yes" if g["met"] else "no")
        text.append(f"| {g['what']} | >= {g['goal']:.2f} | {fmt(g['value'], 2)} | {met} |")
    text.append("")
    if train:
        text.append(f"training, one epoch at {train.get('size', '?')}x{train.get('size', '?')}: "
                    f"{fmt(train.get('slices_per_s'))} slices/s, data-wait {fmt(100 * train.get('data_wait', 0), 1)}%, "
                    f"{train.get('skipped_steps', '-')} skipped fp16 step(s), val mean Dice "
                    f"{fmt(train.get('mean_dice'), 4)}")
    else:
        text.append("training, one epoch: no result (see logs.tar.gz)")
    if ev:
        text.append(f"evaluation, TTA {ev['tta']} ({ev['views']} views): {fmt(ev['slices_per_s'])} slices/s "
                    f"({ev['slices']} slices in {ev['seconds']:.2f} s, HD95 off)")
    else:
        text.append("evaluation with TTA: no result (see logs.tar.gz)")
    unet3d = row3d_of(res)
    text += ["", "3D: UNet3d (recipes/brats_unet3d.yaml), patches/s", HEAD3D, RULE, line3d(unet3d)]
    exact = {n: load(res, f"exact_{n}.json") for n in ("local", "global", "sync_batch", "accumulate2")}
    exact = {n: j["step_ms"] for n, j in exact.items() if j and "step_ms" in j}
    if exact:
        base = exact.get("local")
        text.append("exact global-batch options, ms per step (vs loss.reduce local, BatchNorm): " + ", ".join(
            f"{n} {ms:.1f}" + (f" ({ms / base:.2f}x)" if base and n != "local" else "") for n, ms in exact.items()))
    table = "\n".join(text) + "\n"
    print(table, end="")
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(table)
    with open(os.path.join(out, "compare.json"), "w") as f:
        json.dump(dict(device=dev, batch=batch, rows=rows, goals=goals, train=train, eval=ev, exact_step_ms=exact,
                       unet3d=unet3d), f, indent=2)
        f.write("\n")


def main():
    res, what = sys.argv[1], sys.argv[2]
    if what == "header":
        print(f"device: {device(res)}\n{HEAD}\n{RULE}", flush=True)
    elif what == "row":
        print(line(row_of(res, int(sys.argv[3]), sys.argv[4], sys.argv[5] if len(sys.argv) > 5 else None)),
              flush=True)
    elif what == "row3d":
        print(f"3D: UNet3d, patches/s\n{HEAD3D}\n{RULE}\n{line3d(row3d_of(res))}", flush=True)
    elif what == "final":
        final(res, sys.argv[3])
    else:
        sys.exit(f"gpu_compare_table.py: unknown command {what}")


if __name__ == "__main__":
    main()
