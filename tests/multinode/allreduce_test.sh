#!/usr/bin/env bash
# allreduce_bench across two namespace hosts (OpenMPI over TCP on the bridge) against
# the same 2 ranks on one host (shared memory): every size's sum checked on every rank,
# the traffic seen on the hosts' links (the cross-host job must move its payload
# through them, the one-host job must not), and both bus bandwidths printed.
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/lib.sh"
A=$ALLREDUCE_BENCH
args=(--min-bytes 4096 --max-bytes $((4 << 20)) --budget-bytes $((64 << 20)))

before=$(bridge_bytes)
run one_host on_hosts h1:2 "$A" "${args[@]}"
expect_rc 0
one_host_bytes=$(( $(bridge_bytes) - before ))

before=$(bridge_bytes)
run two_hosts on_hosts h1:1,h2:1 "$A" "${args[@]}"
expect_rc 0
two_host_bytes=$(( $(bridge_bytes) - before ))

for name in one_host two_hosts; do
  LOG=$OUT/$name.log
  [ "$(grep -c '"bench": "allreduce"' "$LOG")" -eq 11 ] || fail "$name: expected 11 sizes (4 KiB .. 4 MiB)"
  grep '"bench": "allreduce"' "$LOG" | grep -qv '"errors": 0' && fail "$name: wrong sums"
  grep -q '"ranks": 2' "$LOG" || fail "$name: not 2 ranks"
done
# Each size moves at least its payload once per collective between the two ranks.
payload=$(grep -h '"bench"' "$OUT/two_hosts.log" | python3 -c '
import json, sys
print(sum(j["bytes"] * j["iters"] for j in map(json.loads, sys.stdin)))')
LOG=$OUT/two_hosts.log
[ "$two_host_bytes" -ge "$payload" ] \
  || fail "only $two_host_bytes bytes crossed the hosts' links for $payload bytes of allreduce payload"
[ "$one_host_bytes" -lt $((payload / 100)) ] \
  || fail "the one-host job sent $one_host_bytes bytes over the bridge: its ranks are not on one host"

echo "allreduce bus bandwidth (GB/s), 2 ranks: one host (shared memory) vs two hosts (TCP over a veth bridge)"
python3 - "$OUT/one_host.log" "$OUT/two_hosts.log" <<'PY'
import json, sys
rows = [{j["bytes"]: j for j in map(json.loads, (l for l in open(p) if '"bench"' in l))} for p in sys.argv[1:]]
print(f"{'bytes':>10} {'1 host x 2':>12} {'2 hosts x 1':>12}")
for b in sorted(rows[0]):
    print(f"{b:>10} {rows[0][b]['busbw_gbps']:>12.4f} {rows[1][b]['busbw_gbps']:>12.4f}")
PY
echo "bytes on the hosts' links: two hosts $two_host_bytes (payload $payload), one host $one_host_bytes"
finish
