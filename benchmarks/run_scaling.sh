#!/usr/bin/env bash
# Scaling of training throughput with the number of ranks: runs `brats_recipe bench`
# at np = 1, 2, ... N and prints a table (and JSON):
#   ranks | slices/s (through the input pipeline) | epoch time on the packed set |
#   epoch time extrapolated to full BraTS 2021 (193,905 axial slices) and to the
#   reference's 15,891-slice validation set | scaling efficiency (slices/s per rank vs
#   np 1) | data-wait | exposed communication per step
#
#   benchmarks/run_scaling.sh [--config recipes/cpu_smoke.yaml] [--max-ranks N] [--steps S]
#                             [--json scaling.json] [--set key=value ...]
# N defaults to the GPUs nvidia-smi lists, else the CPU cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
config=$root/recipes/cpu_smoke.yaml steps=30 json="" max="" sets=()
while (($#)); do
  case $1 in
    --config) config=$2; shift 2 ;;
    --max-ranks) max=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --json) json=$2; shift 2 ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    *) echo "run_scaling: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
if [ -z "$max" ]; then
  max=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  [ "${max:-0}" -gt 0 ] || max=$(nproc)
fi
B=${BRATS_RECIPE:-$root/build/bin/brats_recipe}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for np in $(seq 1 "$max"); do
  echo "run_scaling: np $np ..." >&2
  "$root/launch/mpirun.sh" -np "$np" "$B" bench --config "$config" --steps "$steps" "${sets[@]}" \
    --json "$tmp/np$np.json" >"$tmp/np$np.log" 2>&1 || { cat "$tmp/np$np.log" >&2; exit 1; }
done
python3 - "$tmp" "$max" "$json" <<'PY'
import json, sys, os
tmp, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = [json.load(open(os.path.join(tmp, f"np{k}.json"))) for k in range(1, n + 1)]
base = rows[0]["epoch_slices_per_s"]
def mmss(s):
    return f"{int(s // 60)}:{int(s % 60):02d}" if s < 3600 else f"{int(s // 3600)}:{int(s % 3600 // 60):02d}:{int(s % 60):02d}"
table = []
for r in rows:
    sps = r["epoch_slices_per_s"]
    table.append({
        "ranks": r["ranks"], "slices_per_s": sps, "step_slices_per_s": r["step_slices_per_s"],
        "epoch_s_packed": r["train_slices"] / sps, "epoch_s_brats2021": 193905 / sps,
        "epoch_s_ref_val": 15891 / sps, "efficiency": sps / (base * r["ranks"]),
        "data_wait": r["data_wait"], "exposed_comm_ms_per_step": 1e3 * r["exposed_comm_s_per_step"],
        "device": r["device"], "config": r["config"], "train_slices": r["train_slices"]})
print(f"device: {rows[0]['device']}, recipe: {rows[0]['config']['recipe']}, "
      f"{rows[0]['config']['size']}x{rows[0]['config']['size']}, batch {rows[0]['config']['batch_per_rank']}/rank, "
      f"amp {rows[0]['config']['amp']}, packed train split {rows[0]['train_slices']} slices")
print("| ranks | slices/s | epoch (packed) | epoch (BraTS 2021, 193,905) | 15,891 slices | efficiency | data-wait | exposed comm/step |")
print("|---|---|---|---|---|---|---|---|")
for t in table:
    print(f"| {t['ranks']} | {t['slices_per_s']:.0f} | {mmss(t['epoch_s_packed'])} | {mmss(t['epoch_s_brats2021'])} | "
          f"{mmss(t['epoch_s_ref_val'])} | {100 * t['efficiency']:.0f}% | {100 * t['data_wait']:.1f}% | "
          f"{t['exposed_comm_ms_per_step']:.1f} ms |")
if out:
    with open(out + ".tmp", "w") as f:
        json.dump({"bench": "scaling", "rows": table}, f, indent=2)
    os.replace(out + ".tmp", out)
PY
