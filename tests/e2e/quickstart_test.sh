#!/usr/bin/env bash
# The README's quick start, run as the README writes it: the ```sh block under its
# "## Quick start on BraTS 2021" heading is read from README.md itself, so the README and
# this test cannot drift. It runs on synthetic cases laid out exactly as the BraTS 2021
# download (BraTS2021_Training_Data/BraTS2021_NNNNN/BraTS2021_NNNNN_{t1,t1ce,t2,flair,seg}.nii.gz),
# with tiny sizes substituted so that it fits a 2-core machine: 2 ranks instead of 4,
# 32x32 slices, a two-level U-Net on the CPU for one epoch. Each substitution must match
# the block, so a rewritten quick start fails here until this test follows it.
source "$(dirname "$0")/lib.sh"
README=$SOURCE_DIR/README.md

# The first ```sh block of the section.
block=$(awk '/^## Quick start on BraTS 2021$/ { sec = 1; next }
             sec && /^## / { exit }
             sec && !inb && /^```sh$/ { inb = 1; next }
             inb && /^```$/ { exit }
             inb { print }' "$README")
LOG=$README
[ -n "$block" ] || { fail "README.md has no \`\`\`sh block under '## Quick start on BraTS 2021'"; finish; }
for cmd in pack train evaluate predict score; do
  n=$(grep -c "brats_recipe $cmd " <<<"$block")
  [ "$n" -eq 1 ] || fail "the quick start should run 'brats_recipe $cmd' once; it does $n times"
done

# subst FROM TO: replace every FROM in the block, which must hold at least one.
subst() {
  grep -qF -- "$1" <<<"$block" || { fail "the quick start no longer contains '$1'"; return; }
  block=${block//"$1"/"$2"}
}
subst "build/bin/brats_recipe" '"$BRATS_RECIPE"'
subst "launch/mpirun.sh -np 4" '"$SOURCE_DIR/launch/mpirun.sh" -np 2'
subst "recipes/" '"$SOURCE_DIR"/recipes/'
subst "--size 128" "--size 32"
subst "--set data.path=" "--set run.device=cpu --set train.amp=off --set train.epochs=1 --set 'model.widths=[8,16]' \
--set model.channels_last=false --set data.batch_size=8 --set data.workers=1 --set data.prefetch=2 --set data.path="
[ "$fails" -eq 0 ] || finish

# The download's layout: case folders of five volumes each, as the README shows it.
cd "$OUT" || exit 1
run synth "$BRATS_RECIPE" synth --out BraTS2021_Training_Data --cases 10 --shape 64,64,48
expect_rc 0
for m in t1 t1ce t2 flair seg; do
  [ -f "BraTS2021_Training_Data/BraTS2021_00000/BraTS2021_00000_$m.nii.gz" ] \
    || fail "synth wrote no BraTS2021_Training_Data/BraTS2021_00000/BraTS2021_00000_$m.nii.gz"
done

printf '%s\n' "set -euo pipefail" "$block" >quickstart.sh
export BRATS_RECIPE SOURCE_DIR
run quickstart bash -x quickstart.sh
expect_rc 0
expect_log "| Mean (tumour classes) |"           # evaluate's table
expect_log "HD95 (mm)"                           # score's table
for f in runs/brats2021/brats128.h5 runs/brats2021/baseline/best.pt runs/brats2021/baseline/metrics.jsonl \
         runs/brats2021/eval.json runs/brats2021/scores.csv runs/brats2021/scores.json; do
  [ -s "$f" ] || fail "the quick start left no $f"
done
preds=$(ls runs/brats2021/pred 2>/dev/null | grep -c '^BraTS2021_[0-9]*\.nii\.gz$' || true)
[ "$preds" -ge 2 ] || fail "expected a prediction per validation case in runs/brats2021/pred, found $preds"
finish
