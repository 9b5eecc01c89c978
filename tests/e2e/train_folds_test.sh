#!/usr/bin/env bash
# Cross-validation in one job as users run it: a file packed with 2 folds, `train --folds
# 2` at np 4 (two groups of 2 ranks side by side), and each fold against a separate
# 2-rank run of its own fold_k/config.yaml: the same weights to the bit and the same
# metrics.jsonl numbers. Then the summary, --resume of every fold, a stop signal (every
# fold checkpoints, no summary until they finish), and the refusals: a rank
# count that does not split, data.fold with folds, and a fold whose run.dir cannot be
# written, which ends the whole job with one message naming the fold.
source "$(dirname "$0")/lib.sh"
B=$BRATS_RECIPE
C=$STRATA_TEST_CASES
[ -n "${MPI_LAUNCH4:-}" ] || fail "MPI_LAUNCH4 is not set (tests/e2e/CMakeLists.txt)"
run pack "$B" pack --input "$C" --out "$OUT/folds.h5" --size 32 --keep-empty 0.3 --seed 5 --folds 2
expect_rc 0

small=(--config "$SOURCE_DIR/recipes/cpu_smoke.yaml" --set "data.path=$OUT/folds.h5" --set data.batch_size=4
       --set "model.widths=[4,8,16]" --set train.epochs=2)
run cv $MPI_LAUNCH4 "$B" train "${small[@]}" --set "run.dir=$OUT/cv" --folds 2
expect_rc 0
expect_log "[fold 0, rank 0/2] epoch 2/2: loss"; expect_log "[fold 1, rank 0/2] epoch 2/2: loss"
expect_log "cross-validation over 2 folds"
for k in 0 1; do
  for f in last.pt best.pt metrics.jsonl config.yaml; do
    [ -f "$OUT/cv/fold_$k/$f" ] || fail "no fold_$k/$f"
  done
  grep -q "^  fold: $k\( \|$\)" "$OUT/cv/fold_$k/config.yaml" || fail "fold_$k/config.yaml does not say data.fold $k"
done
[ -f "$OUT/cv/cv_summary.json" ] || fail "no cv_summary.json"

# Each fold alone, at 2 ranks, from the config the fold saved: the same run, bit for bit.
for k in 0 1; do
  run "sep$k" $MPI_LAUNCH2 "$B" train --config "$OUT/cv/fold_$k/config.yaml" --set "run.dir=$OUT/sep$k"
  expect_rc 0
  for d in "cv/fold_$k" "sep$k"; do
    run "hash_${d//\//_}" "$B" evaluate --checkpoint "$OUT/$d/last.pt" --tta none --json "$OUT/${d//\//_}.json"
    expect_rc 0
  done
done
"$STRATA_PYTHON" - "$OUT" >"$OUT/same_check.log" 2>&1 <<'PY' || { LOG=$OUT/same_check.log; fail "folds in one job differ from separate runs"; }
import json, statistics, sys
out = sys.argv[1]
def lines(path):
    keep = ("epoch", "step", "train_loss", "lr", "val")
    return [{k: v for k, v in json.loads(l).items() if k in keep} for l in open(path)]
vals = []
for k in (0, 1):
    a = json.load(open(f"{out}/cv_fold_{k}.json")); b = json.load(open(f"{out}/sep{k}.json"))
    ha, hb = a["checkpoint"]["weights_hash"], b["checkpoint"]["weights_hash"]
    print("fold", k, "weights", ha, hb, "val cases", a["cases"])
    assert ha == hb, (k, ha, hb)
    la, lb = lines(f"{out}/cv/fold_{k}/metrics.jsonl"), lines(f"{out}/sep{k}/metrics.jsonl")
    assert la == lb, (k, la, lb)
    vals.append(max(la, key=lambda l: l["val"]["mean_dice"])["val"])  # first of equals, as the trainer
# The two folds validate on different cases, so they are not the same run.
a = json.load(open(f"{out}/cv_fold_0.json")); b = json.load(open(f"{out}/cv_fold_1.json"))
assert a["checkpoint"]["weights_hash"] != b["checkpoint"]["weights_hash"]
assert not set(c["case"] for c in a["per_case"]) & set(c["case"] for c in b["per_case"]), "a case in both folds' val"
s = json.load(open(f"{out}/cv/cv_summary.json"))
assert s["folds"] == 2 and s["metric"] == "mean_dice" and s["folds_validated"] == 2, s
m = [v["mean_dice"] for v in vals]
assert abs(s["mean"]["mean_dice"] - statistics.mean(m)) < 1e-12, (s["mean"], m)
assert abs(s["std"]["mean_dice"] - statistics.pstdev(m)) < 1e-12, (s["std"], m)
assert [f["val"]["mean_dice"] for f in s["per_fold"]] == m
print("summary", s["mean"]["mean_dice"], s["std"]["mean_dice"])
PY

# A fold's model evaluated with a recipe that names no fold, on the file it trained on:
# its own fold's validation cases (as without --config), never the stored val.
run eval_recipe "$B" evaluate "${small[@]}" --checkpoint "$OUT/cv/fold_1/last.pt" --tta none --json "$OUT/recipe_1.json"
expect_rc 0; expect_log "data.fold: 1 from $OUT/cv/fold_1/last.pt"
"$STRATA_PYTHON" -c 'import json, sys; a, b = (json.load(open(f)) for f in sys.argv[1:]); assert [c["case"] for c in a["per_case"]] == [c["case"] for c in b["per_case"]] and a["mean_dice"] == b["mean_dice"], (a["per_case"], b["per_case"])' \
  "$OUT/recipe_1.json" "$OUT/cv_fold_1.json" >"$OUT/recipe_check.log" 2>&1 \
  || { LOG=$OUT/recipe_check.log; fail "evaluate with a recipe scored other cases than fold 1's"; }

# --resume continues every fold from its own last.pt.
run resume $MPI_LAUNCH4 "$B" train "${small[@]}" --set "run.dir=$OUT/cv" --folds 2 --set train.epochs=3 --resume
expect_rc 0
expect_log "[fold 0, rank 0/2] epoch 3/3: loss"; expect_log "[fold 1, rank 0/2] epoch 3/3: loss"
expect_no_log "epoch 1/3"

# A fold with no last.pt yet (the job ended before that fold's first checkpoint) starts
# over under --resume while the other resumes; the summary follows as usual.
rm -f "$OUT/cv/fold_1/last.pt" "$OUT/cv/fold_1/best.pt" "$OUT/cv/fold_1/metrics.jsonl" "$OUT/cv/cv_summary.json"
run resume_partial $MPI_LAUNCH4 "$B" train "${small[@]}" --set "run.dir=$OUT/cv" --folds 2 --set train.epochs=3 --resume
expect_rc 0; expect_log "fold(s) 1 have no last.pt yet and start from the beginning"
expect_log "[fold 0, rank 0/2] resumed from"; expect_log "[fold 1, rank 0/2] epoch 1/3: loss"
expect_no_log "[fold 0, rank 0/2] epoch 1/3"
[ -f "$OUT/cv/cv_summary.json" ] || fail "no summary after a fold started over under --resume"

# A stop signal reaches every fold: each checkpoints and the job exits 0 without a
# summary; --resume finishes every fold and then writes it.
LOG="$OUT/preempt.log"
$MPI_LAUNCH4 "$B" train "${small[@]}" --set "run.dir=$OUT/pre" --folds 2 --set train.epochs=500 >"$LOG" 2>&1 &
pid=$!
for _ in $(seq 1 600); do [ -s "$OUT/pre/fold_0/metrics.jsonl" ] && [ -s "$OUT/pre/fold_1/metrics.jsonl" ] && break; sleep 0.1; done
kill -USR1 "$pid"
wait "$pid"; RC=$?
expect_rc 0; expect_log "[fold 0, rank 0/2] stop requested (SIGUSR1)"; expect_log "[fold 1, rank 0/2] stop requested (SIGUSR1)"
expect_log "a stop signal ended the folds early"
[ -f "$OUT/pre/fold_0/PREEMPTED" ] && [ -f "$OUT/pre/fold_1/PREEMPTED" ] || fail "a fold has no PREEMPTED marker"
[ ! -f "$OUT/pre/cv_summary.json" ] || fail "a summary of folds that had not finished"
done_epochs=$(cat "$OUT"/pre/fold_*/metrics.jsonl | wc -l)
run resume_pre $MPI_LAUNCH4 "$B" train "${small[@]}" --set "run.dir=$OUT/pre" --folds 2 --set train.epochs=$done_epochs --resume
expect_rc 0; expect_log "cross-validation over 2 folds"
[ -f "$OUT/pre/cv_summary.json" ] || fail "no summary after the resumed folds finished"

# Refusals.
run uneven $MPI_LAUNCH3 "$B" train "${small[@]}" --set "run.dir=$OUT/uneven" --folds 2
expect_nonzero; expect_log "the job's 3 ranks do not split into 2 equal groups"
run both $MPI_LAUNCH2 "$B" train "${small[@]}" --set "run.dir=$OUT/both" --folds 2 --set data.fold=1
expect_nonzero; expect_log "data.fold 1 with train.folds 2"
# One fold fails while the other trains: the job ends at once, the fold and rank named.
mkdir -p "$OUT/broken"; touch "$OUT/broken/fold_1"
run broken $MPI_LAUNCH4 "$B" train "${small[@]}" --set "run.dir=$OUT/broken" --folds 2 --set train.epochs=50
expect_nonzero; expect_log "[fold 1, rank 0/2] config error"; expect_log "fold_1' is a file"
expect_no_log "epoch 50/50"
finish
