#!/usr/bin/env bash
# Training and evaluation across namespace hosts, each checked against one host:
#   - cpu_smoke at 2 hosts x 1 rank and 2 hosts x 2 ranks: bitwise the weights of the same
#     world size on one host; rank-to-host mapping and local ranks as logged;
#   - a preemption (SIGUSR1) that reaches one rank on the second host, then --resume
#     across the hosts: the parameters of the uninterrupted run;
#   - evaluate across the hosts: the numbers of np 1;
#   - the start-up checks: a data.path, a run.dir and a recipe that differ between hosts
#     (node-local storage) stop every rank with one message naming the host.
# Checkpoints, metrics and data live in one folder every host sees (a shared file system).
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../fault/lib.sh"
require_python torch
B=$BRATS_RECIPE
smoke_args
# One intra-op thread per rank everywhere: by default a rank takes its share of its host's
# cores, which differs between one host and two (here the same 2 cores), and the sum
# order of a threaded reduction changes the last bits.
common+=(--set train.epochs=1 --set run.threads=1)
export_weights() { "$B" export --checkpoint "$1/last.pt" --out "$1/weights.pt" >"$1/export.log" 2>&1; }
same_weights() {  # NAME A B [RTOL]: the exported weights of runs A and B are equal
  local rtol=${4:-0}
  export_weights "$2" && export_weights "$3" || { LOG=$2/export.log; fail "$1: export failed"; return; }
  "$STRATA_PYTHON" "$mn_here/compare_weights.py" "$2/weights.pt" "$3/weights.pt" --buffers-rtol "$rtol" \
    >"$OUT/$1.cmp" 2>&1 || { LOG=$OUT/$1.cmp; fail "$1: the weights differ"; return; }
  echo "$1: $(cat "$OUT/$1.cmp")"
}

# 1. Same world size, one host against two.
run one_2 on_one_host 2 "$B" train "${common[@]}" --set "run.dir=$OUT/one_2"
expect_rc 0
run hosts_2x1 on_hosts h1:1,h2:1 "$B" train "${common[@]}" --set "run.dir=$OUT/hosts_2x1"
expect_rc 0
expect_log "world: 2 ranks on h1: rank 0 (local 0); h2: rank 1 (local 0)"
expect_log "training done: 1 epochs"
same_weights "2 hosts x 1 = 1 host x 2" "$OUT/one_2" "$OUT/hosts_2x1"

run one_4 on_one_host 4 "$B" train "${common[@]}" --set "run.dir=$OUT/one_4"
expect_rc 0
run hosts_2x2 on_hosts h1:2,h2:2 "$B" train "${common[@]}" --set "run.dir=$OUT/hosts_2x2"
expect_rc 0
expect_log "world: 4 ranks on h1: ranks 0, 2 (local 0, 1); h2: ranks 1, 3 (local 0, 1)"
same_weights "2 hosts x 2 = 1 host x 4" "$OUT/one_4" "$OUT/hosts_2x2"

# 2. Preemption on the second host mid-run, resumed across the hosts.
pre=$OUT/pre
LOG=$OUT/pre.log
on_hosts h1:1,h2:1 "$B" train "${common[@]}" --set "run.dir=$pre" --set train.epochs=3 --set run.sample_log=true \
  >"$LOG" 2>&1 &
job=$!
if wait_for_lines "$pre/samples/rank-1.txt" 12 120; then
  pid=$(for p in $(ip netns pids "${HOSTS_PREFIX}h2"); do
          grep -qa brats_recipe "/proc/$p/cmdline" 2>/dev/null && echo "$p"; done | head -1)
  [ -n "$pid" ] && kill -USR1 "$pid" || fail "no training rank found on h2"
else
  fail "the preemption run logged no steps"
fi
wait $job; RC=$?
expect_rc 0; expect_log "stop requested (SIGUSR1)"
[ -f "$pre/PREEMPTED" ] || fail "no PREEMPTED marker after SIGUSR1 on h2"
run pre_resume on_hosts h1:1,h2:1 "$B" train "${common[@]}" --set "run.dir=$pre" --set train.epochs=3 --resume
expect_rc 0; expect_log "resumed from $pre/last.pt"; expect_log "training done: 3 epochs"
run full on_one_host 2 "$B" train "${common[@]}" --set "run.dir=$OUT/full" --set train.epochs=3
expect_rc 0
# BatchNorm running statistics are averaged once more at the stop: equal up to rounding.
same_weights "preempted on h2 + resumed = uninterrupted" "$OUT/full" "$pre" 1e-6

# 3. evaluate across the hosts gives np 1's numbers.
eval_args=(--config "$SOURCE_DIR/recipes/brats_tta_eval.yaml" --checkpoint "$OUT/pre/last.pt"
           --set "data.path=$STRATA_TEST_DATA" --set data.batch_size=8 --set eval.batch_size=8 --set data.workers=1
           --tta flips)
run eval_1 "$B" evaluate "${eval_args[@]}" --json "$OUT/eval_1.json"
expect_rc 0
run eval_hosts on_hosts h1:1,h2:1 "$B" evaluate "${eval_args[@]}" --json "$OUT/eval_hosts.json"
expect_rc 0
python3 - "$OUT/eval_1.json" "$OUT/eval_hosts.json" >"$OUT/eval_cmp.log" 2>&1 <<'PY' \
  || { LOG=$OUT/eval_cmp.log; fail "evaluate across hosts differs from np 1"; }
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert (a["ranks"], b["ranks"]) == (1, 2), (a["ranks"], b["ranks"])
for k in ("per_class", "mean_dice", "mean_iou", "regions", "confusion", "slices", "cases"):
    assert a[k] == b[k], (k, a[k], b[k])
assert a["checkpoint"]["weights_hash"] == b["checkpoint"]["weights_hash"]
print("np 1 == 2 hosts: mean Dice", a["mean_dice"], "confusion", a["confusion"]["pixels"])
PY
echo "evaluate: $(tail -1 "$OUT/eval_cmp.log")"

# 4. Node-local paths: each host sees its own $OUT/local (netns_agent.sh binds
#    $OUT/local/<host> there), as /scratch or /tmp on a real cluster.
export STRATA_NODE_LOCAL=$OUT/local
mkdir -p "$OUT/local/h1" "$OUT/local/h2"
cp "$STRATA_TEST_DATA" "$OUT/local/h1/train.h5"
run local_data on_hosts h1:1,h2:1 "$B" train "${common[@]}" --set "data.path=$OUT/local/train.h5" \
  --set "run.dir=$OUT/r_local_data"
expect_rc 1
expect_log "the packed slice file (data.path) '$OUT/local/train.h5' does not exist on host h2"
[ "$(grep -c "does not exist on host h2" "$LOG")" -eq 1 ] || fail "the error is printed once"

run local_run on_hosts h1:1,h2:1 "$B" train "${common[@]}" --set "run.dir=$OUT/local/run"
expect_rc 1
expect_log "run.dir '$OUT/local/run' is not shared storage: host h2 does not see the file that rank 0 wrote there on host h1"
[ ! -f "$OUT/local/h1/run/last.pt" ] || fail "training started on node-local storage"

cp "$SOURCE_DIR/recipes/cpu_smoke.yaml" "$OUT/local/h1/recipe.yaml"
sed 's/^\( *lr:\).*/\1 0.002/' "$SOURCE_DIR/recipes/cpu_smoke.yaml" >"$OUT/local/h2/recipe.yaml"
grep -q "lr: 0.002" "$OUT/local/h2/recipe.yaml" || { LOG=/dev/null; fail "could not edit the recipe's lr"; }
recipe_args=("${common[@]}")
recipe_args[1]=$OUT/local/recipe.yaml
run local_recipe on_hosts h1:1,h2:1 "$B" train "${recipe_args[@]}" --set "run.dir=$OUT/r_local_recipe"
expect_rc 1
expect_log "rank 1 on h2 differs from rank 0 on h1 in train.lr"
unset STRATA_NODE_LOCAL
finish
