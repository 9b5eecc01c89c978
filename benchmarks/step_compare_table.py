#!/usr/bin/env python3
"""The summary of benchmarks/step_compare.sh: reads the JSON every run left in --dir and
prints the comparison table (min / median / max, ratio of medians, median of paired
ratios, Strata ahead in k of n), the peak RSS per rank of every side and torch.compile's
warm-up; writes it all as JSON (--json).

Files in --dir, one per side, row, precision and run (run 1..n):
  strata-ROW-P-K.json    brats_recipe bench, 1 rank      strataR-ROW-P-K.json  the same at --ranks
  eager-ROW-P-K.json     pytorch_reference.py            eagerpipe-ROW-P-K.json pytorch_pipeline.py
  compile-ROW-P-K.json   pytorch_reference.py _compile   maxautotune-ROW-P-K.json  _maxautotune
  ddpstep-ROW-P-K.json   pytorch_ddp.py --what step      ddppipe-ROW-P-K.json  --what pipeline
"""
import argparse
import json
import os
import platform
import statistics


def last_json(path):
    """A JSON file, or the last JSON line of a file (the scripts may log before it)."""
    text = open(path).read()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    lines = [line for line in text.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(f"step_compare: no JSON line in {path}")
    return json.loads(lines[-1])


def stats(values):
    return dict(min=min(values), median=statistics.median(values), max=max(values), runs=values)


def three(side):  # "min / median / max", two decimals below 10 (3D patches/s on a CPU)
    return " / ".join(f"{v:.1f}" if v >= 10 else f"{v:.2f}" for v in (side["min"], side["median"], side["max"]))


def per_rank_peak(records, key="peak_rss_mib"):
    """Each rank's highest peak RSS over the runs (MiB), from lists or single values (a list
    of lists: each rank's DataLoader workers, summed per rank)."""
    lists = [r[key] if isinstance(r[key], list) else [r[key]] for r in records if r.get(key) is not None]
    lists = [[sum(v) if isinstance(v, list) else v for v in x] for x in lists]  # a rank's workers: their sum
    return [max(v) for v in zip(*lists)] if lists else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--rows", required=True)
    ap.add_argument("--against", required=True)
    ap.add_argument("--precisions", required=True)
    ap.add_argument("--ranks", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--rank-threads", type=int, required=True)
    ap.add_argument("--device", required=True)
    ap.add_argument("--pipeline", type=int, default=1)
    ap.add_argument("--bf16-native", default="none")
    ap.add_argument("--strata-layout", default="channels_last")
    ap.add_argument("--json")
    a = ap.parse_args()
    against, runs = a.against.split(","), range(1, a.runs + 1)

    def load(side, row, p):
        return [last_json(os.path.join(a.dir, f"{side}-{row}-{p}-{k}.json")) for k in runs]

    result = dict(device=a.device, threads=a.threads, ranks=a.ranks, rank_threads=a.rank_threads,
                  bf16_native=a.bf16_native, strata_layout=a.strata_layout, machine=f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
                  comparisons=[], memory=[], compile=[])
    print(f"device {a.device}; 1 rank x {a.threads} threads, and {a.ranks} ranks x {a.rank_threads} thread(s) against "
          f"DDP; bf16 native: {a.bf16_native}; Strata in {a.strata_layout}; {a.runs} interleaved runs; slices/s (patches/s for unet3d) "
          "min / median / max")
    print("| row | precision | ranks | what | against | Strata | PyTorch | ratio of medians | median of paired ratios "
          "| Strata ahead |\n| :--- | :--- | ---: | :--- | :--- | ---: | ---: | ---: | ---: | ---: |")
    for row in a.rows.split(","):
        is3d = row == "unet3d"
        for p in a.precisions.split(",")[:1] if is3d else a.precisions.split(","):
            s1 = load("strata", row, p)
            cfg = s1[0]["config"]
            size = cfg.get("patch_size", cfg.get("size"))
            shape = "x".join(map(str, size)) if isinstance(size, list) else f"{size}{'³' if is3d else '²'}"
            label = f"{row}: widths {cfg['widths'][0]}-{cfg['widths'][-1]}, {shape}, batch {cfg['batch_per_rank']}/rank"
            pairs = []  # (what, opponent, ranks, Strata's values, theirs, their records)
            memory = [("Strata", 1, s1)]

            def rate(records, *keys):
                return [next(x[k] for k in keys if k in x) for x in records]

            if "eager" in against:
                e = load("eager", row, p)
                pairs.append(("step", "eager", 1, rate(s1, "step_patches_per_s", "step_slices_per_s"), e,
                              rate(e, "patches_per_s", "slices_per_s") if all("error" not in x for x in e) else None))
                memory.append(("eager step", 1, e))
                if a.pipeline and not is3d:
                    q = load("eagerpipe", row, p)
                    pairs.append(("pipeline", "eager", 1, rate(s1, "epoch_slices_per_s"), q,
                                  rate(q, "pipeline_slices_per_s")))
                    memory.append(("eager pipeline (main process)", 1, q))
            for mode, name in (("compile", "torch.compile"), ("maxautotune", "compile max-autotune")):
                if mode in against and not is3d:
                    c = load(mode, row, p)
                    ok = all("error" not in x for x in c)
                    pairs.append(("step", name, 1, rate(s1, "step_slices_per_s"), c, rate(c, "slices_per_s") if ok else None))
                    if ok:
                        memory.append((f"{name} step", 1, c))
                        warm = [x["compile_s"] for x in c]
                        result["compile"].append(dict(row=row, precision=p, mode=mode, warmup_s=stats(warm)))
            if "ddp" in against and not is3d:
                sr, ds = load("strataR", row, p), load("ddpstep", row, p)
                pairs.append(("step", "DDP", a.ranks, rate(sr, "step_slices_per_s"), ds, rate(ds, "slices_per_s")))
                memory += [("Strata", a.ranks, sr), ("DDP step", a.ranks, ds)]
                if a.pipeline:
                    dp = load("ddppipe", row, p)
                    pairs.append(("pipeline", "DDP", a.ranks, rate(sr, "epoch_slices_per_s"), dp, rate(dp, "slices_per_s")))
                    memory.append(("DDP pipeline (ranks)", a.ranks, dp))
                    workers = per_rank_peak(dp, "worker_peak_rss_mib")
                    if workers:
                        result["memory"].append(dict(row=row, precision=p, side="DDP pipeline (loader workers)",
                                                     ranks=a.ranks, peak_rss_mib=workers))
            for what, opponent, ranks, mine, records, theirs in pairs:
                c = dict(row=row, precision=p, ranks=ranks, what=what, against=opponent, widths=cfg["widths"],
                         size=size, batch_per_rank=cfg["batch_per_rank"], unit="patches/s" if is3d else "slices/s",
                         strata=stats(mine))
                head = f"| {label} | {p} | {ranks} | {what} | {opponent} | {three(c['strata'])} |"
                if theirs is None:
                    c["error"] = next(x["error"] for x in records if "error" in x)
                    print(f"{head} failed: {c['error'][:80]} | | | |")
                else:
                    ratios = [x / y for x, y in zip(mine, theirs)]
                    c.update(pytorch=stats(theirs), ratio=c["strata"]["median"] / statistics.median(theirs),
                             paired_ratio=statistics.median(ratios), strata_ahead=sum(r > 1 for r in ratios),
                             pairs=a.runs)
                    print(f"{head} {three(c['pytorch'])} | {c['ratio']:.2f} | {c['paired_ratio']:.2f} | "
                          f"{c['strata_ahead']} of {a.runs} |")
                result["comparisons"].append(c)
            for side, ranks, records in memory:
                peak = per_rank_peak(records)
                if peak:
                    result["memory"].append(dict(row=row, precision=p, side=side, ranks=ranks, peak_rss_mib=peak))
    print("\npeak RSS per rank, MiB (highest over the runs)\n| row | precision | side | ranks | per rank |\n"
          "| :--- | :--- | :--- | ---: | :--- |")
    for m in result["memory"]:
        print(f"| {m['row']} | {m['precision']} | {m['side']} | {m['ranks']} | "
              f"{' / '.join(f'{v:.0f}' for v in m['peak_rss_mib'])} |")
    for c in result["compile"]:
        w = c["warmup_s"]
        print(f"torch.compile ({c['mode']}), {c['row']} {c['precision']}: warm-up with compilation "
              f"{w['runs'][0]:.1f} s in run 1, median {w['median']:.1f} s (Inductor's cache), outside the step figures")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
