#!/usr/bin/env bash
# Cross-validation folds as users run them: pack --folds 3 --test-fraction gives every
# case a fold (stratified by necrosis) or the test split; inspect shows the folds and
# --verify checks them, for slices and volumes; --export-splits then pack --split-file
# gives the same /case_folds; a run at np 2 with data.fold=1 validates fold 1's cases,
# and evaluate from its checkpoint (which records data.fold) scores exactly those.
# Refusals name what to do.
source "$(dirname "$0")/lib.sh"
B=$BRATS_RECIPE
S=$OUT/cases

# 12 hard cases, 3 of them without necrosis: one for each of 3 folds, if stratified.
run synth "$B" synth --out "$S" --cases 12 --shape 48,48,24 --seed 3 --difficulty hard
expect_rc 0; expect_log "3 without necrosis"

run pack "$B" pack --input "$S" --out "$OUT/f.h5" --size 32 --folds 3 --fold 1 --test-fraction 0.2 --seed 4
expect_rc 0; expect_log "pack: 3 folds stratified by necrosis, fold 1 in val; cases: fold 0:"; expect_log "test: 2 ("
expect_log "  test   "

run inspect "$B" inspect --data "$OUT/f.h5" --verify --export-splits "$OUT/splits.json"
expect_rc 0; expect_log "folds: 3 by case"; expect_log "with necrotic core"; expect_log "1 (val)"
expect_log "split: fold 1 of 3 by case, stratified by necrosis (seed 4); --test-fraction 0.2"
expect_log "verify: OK"; expect_log "class pixels per case"; expect_log "case folds against the splits"
expect_log "wrote $OUT/splits.json: 3 folds"
# The fold rows: "  <k> [(val)] cases slices with-necrosis". Every fold holds cases with
# and without necrosis, and the 10 cases not in test are 4, 3, 3.
folds=$(awk '/with necrotic core/ {t=1; next} t && $1 ~ /^[0-9]+$/ {sub(/ \(val\)/, ""); print $1, $2, $NF; next} {t=0}' "$LOG")
[ "$(echo "$folds" | wc -l)" -eq 3 ] || fail "expected 3 fold rows, got: $folds"
echo "$folds" | while read -r k cases necrosis; do
  [ "$necrosis" -ge 1 ] && [ "$necrosis" -lt "$cases" ] || echo "fold $k: $necrosis of $cases cases with necrosis"
done >"$OUT/unstratified"
[ ! -s "$OUT/unstratified" ] || fail "a fold lacks cases with or without necrosis: $(cat "$OUT/unstratified")"
[ "$(echo "$folds" | awk '{print $2}' | sort -n | tr '\n' ' ')" = "3 3 4 " ] || fail "fold sizes are not 4, 3, 3: $folds"
val=$(sed -n 's/^  val cases ([0-9]*): //p' "$LOG"); test_cases=$(sed -n 's/^  test cases ([0-9]*): //p' "$LOG")
n_val=$(echo $val | wc -w)
[ "$n_val" = "$(echo "$folds" | awk '$1 == 1 {print $2}')" ] && [ "$(echo $test_cases | wc -w)" -eq 2 ] \
  || fail "val '$val' is not fold 1 of: $folds; test '$test_cases'"

# Export, then import: the same fold of every case; the cases in no entry become test.
run pack_back "$B" pack --input "$S" --out "$OUT/back.h5" --size 32 --split-file "$OUT/splits.json" --fold 1
expect_rc 0; expect_log "2 case(s) of $S are in no entry of --split-file $OUT/splits.json: held out of every fold"
expect_log "pack: 3 folds from the split file, fold 1 in val"
h5dump -d case_folds "$OUT/f.h5" | sed 1d >"$OUT/f.folds"; h5dump -d case_folds "$OUT/back.h5" | sed 1d >"$OUT/back.folds"
grep -q -- "-1" "$OUT/f.folds" || { LOG=$OUT/f.folds; fail "no test case (-1) in /case_folds"; }
cmp -s "$OUT/f.folds" "$OUT/back.folds" || { LOG=$OUT/back.folds; fail "the split file gave other folds than $(cat "$OUT/f.folds")"; }
run inspect_back "$B" inspect --data "$OUT/back.h5" --verify
expect_rc 0; expect_log "  val cases ($n_val): $val"; expect_log "  test cases (2): $test_cases"

# Volumes: the same options, the same checks.
run pack_volumes "$B" pack --volumes --input "$S" --out "$OUT/v.h5" --folds 3 --test-fraction 0.2 --seed 4
expect_rc 0; expect_log "pack: 3 folds stratified by necrosis"
run inspect_volumes "$B" inspect --data "$OUT/v.h5" --verify
expect_rc 0; expect_log "folds: 3 by case"; expect_log "voxels  with necrotic core"; expect_log "0 (val)"
expect_log "class voxels per case"; expect_log "case folds against the splits"

# Fold 1 at np 2: the run validates fold 1's cases, and its checkpoint records data.fold.
small=(--config "$SOURCE_DIR/recipes/cpu_smoke.yaml" --set data.batch_size=8 --set "model.widths=[4,8,16]")
run train $MPI_LAUNCH2 "$B" train "${small[@]}" --set "data.path=$OUT/f.h5" --set "run.dir=$OUT/run" \
  --set train.epochs=1 --set data.fold=1
expect_rc 0; expect_log "epoch 1/1: loss"
expect_log "data: fold 1 of the 3 of '$OUT/f.h5' (data.fold) in 'val': $n_val cases; 'train': $((10 - n_val)) cases"
run evaluate "$B" evaluate --checkpoint "$OUT/run/best.pt" --csv "$OUT/eval.csv"
expect_rc 0
scored=$(tail -n +2 "$OUT/eval.csv" | cut -d, -f1 | sort | tr '\n' ' ')
[ "$scored" = "$(echo $val | tr ' ' '\n' | sort | tr '\n' ' ')" ] || fail "evaluated '$scored', fold 1 is '$val'"
# Fold 0 of the same file, at np 1: its own cases in val.
n0=$(echo "$folds" | awk '$1 == 0 {print $2}')
run train0 "$B" train "${small[@]}" --set "data.path=$OUT/f.h5" --set "run.dir=$OUT/run0" --set train.epochs=1 \
  --set data.fold=0
expect_rc 0; expect_log "data: fold 0 of the 3 of '$OUT/f.h5' (data.fold) in 'val': $n0 cases; 'train': $((10 - n0)) cases"

# Refusals.
run plain "$B" pack --input "$S" --out "$OUT/plain.h5" --size 32
expect_rc 0
run no_folds "$B" train "${small[@]}" --set "data.path=$OUT/plain.h5" --set "run.dir=$OUT/bad1" --set data.fold=1
expect_nonzero; expect_log "data error: $OUT/plain.h5: data.fold 1 asks for a cross-validation fold, but this file"
expect_log "repack it with \`brats_recipe pack --folds K\`"
run past_k "$B" train "${small[@]}" --set "data.path=$OUT/f.h5" --set "run.dir=$OUT/bad2" --set data.fold=3
expect_nonzero; expect_log "config error: data.fold 3 is not a fold of '$OUT/f.h5', which has 3 folds (0 to 2)"
run test_alone "$B" pack --input "$S" --out "$OUT/bad.h5" --size 32 --test-fraction 0.2
expect_nonzero; expect_log "--test-fraction 0.2 holds cases out of the folds of --folds K"
[ ! -e "$OUT/bad.h5" ] || fail "output written despite the error"
finish
