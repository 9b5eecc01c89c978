#!/usr/bin/env bash
# One host x 2 ranks against 2 hosts x 1 rank, on this machine: allreduce bus bandwidth
# (allreduce_bench) and the cpu_smoke training step (brats_recipe bench), the hosts made
# of network namespaces as in tests/multinode (needs root). Both layouts run the same
# processes on the same cores; only the transport between the 2 ranks differs (shared
# memory against TCP over a veth bridge), so the difference is the transport's.
#
#   benchmarks/multinode_compare.sh [--json out.json] [--steps 30] [--max-bytes 67108864]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
json="" steps=30 max_bytes=$((64 << 20))
while (($#)); do
  case $1 in
    --json) json=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --max-bytes) max_bytes=$2; shift 2 ;;
    *) echo "multinode_compare: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
source "$root/tests/multinode/netns_hosts.sh"
why=$(hosts_supported) || { echo "multinode_compare: $why" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'hosts_down; rm -rf "$tmp"' EXIT
hosts_up 2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
B=${BRATS_RECIPE:-$root/build/bin/brats_recipe}
A=${ALLREDUCE_BENCH:-$root/build/bin/allreduce_bench}
DATA=${DATA:-$root/build/testdata/train32.h5}
[ -f "$DATA" ] || { echo "multinode_compare: no $DATA (run ctest -R make_train_data, or set DATA)" >&2; exit 1; }

# launch LAYOUT CMD...: LAYOUT one (h1 x 2) or two (h1 x 1, h2 x 1)
launch() {
  local hostfile=$tmp/$1.hosts
  case $1 in one) echo "h1 slots=2" >"$hostfile" ;; two) printf 'h1 slots=1\nh2 slots=1\n' >"$hostfile" ;; esac
  shift
  hosts_mpirun "$hostfile" -np 2 "$@"
}
for layout in one two; do
  echo "multinode_compare: $layout host(s): allreduce_bench ..." >&2
  launch "$layout" "$A" --max-bytes "$max_bytes" >"$tmp/ar-$layout.log" 2>&1 || { cat "$tmp/ar-$layout.log" >&2; exit 1; }
  echo "multinode_compare: $layout host(s): bench cpu_smoke ..." >&2
  launch "$layout" "$B" bench --config "$root/recipes/cpu_smoke.yaml" --set "data.path=$DATA" --set run.threads=1 \
    --steps "$steps" --json "$tmp/bench-$layout.json" >"$tmp/bench-$layout.log" 2>&1 \
    || { cat "$tmp/bench-$layout.log" >&2; exit 1; }
done
python3 - "$tmp" "$json" <<'PY'
import json, os, sys
tmp, out = sys.argv[1], sys.argv[2]
ar = {k: {j["bytes"]: j for j in map(json.loads, (l for l in open(os.path.join(tmp, f"ar-{k}.log")) if l.startswith("{")))}
      for k in ("one", "two")}
bench = {k: json.load(open(os.path.join(tmp, f"bench-{k}.json"))) for k in ("one", "two")}
print("allreduce, 2 ranks: bus bandwidth GB/s")
print(f"| bytes | 1 host x 2 (shared memory) | 2 hosts x 1 (TCP) |\n| ---: | ---: | ---: |")
for b in sorted(ar["one"]):
    if b >= 65536:
        print(f"| {b:,} | {ar['one'][b]['busbw_gbps']:.3f} | {ar['two'][b]['busbw_gbps']:.3f} |")
keys = [k for k in ("step_slices_per_s", "epoch_slices_per_s", "exposed_comm_s_per_step") if k in bench["one"]]
print("\ncpu_smoke bench (run.threads=1)")
print("| layout | " + " | ".join(keys) + " |\n| :--- |" + " ---: |" * len(keys))
for k, name in (("one", "1 host x 2"), ("two", "2 hosts x 1")):
    print(f"| {name} | " + " | ".join(f"{bench[k][x]:.4g}" for x in keys) + " |")
if out:
    json.dump({"allreduce": {k: list(v.values()) for k, v in ar.items()}, "bench": bench}, open(out, "w"), indent=1)
PY
