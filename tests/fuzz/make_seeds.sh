#!/usr/bin/env bash
# Regenerates the seed corpora of tests/fuzz/corpus/<name>/ from synthetic data, with the
# CLI of a normal build: small files (each well under 100 KB) that reach deep into each
# parser, so that mutations start from valid input. Run from the repository root:
#   tests/fuzz/make_seeds.sh [path/to/brats_recipe]      (default build/bin/brats_recipe)
# Findings kept as regression seeds (crash-*, leak-*, ...) are left as they are, and so are
# the seeds of older formats that Strata still reads, which this CLI no longer writes:
# slice_store/packed16{,_nosum}_v2.h5 (packed format 2), slice_store/packed16_v1.h5 (format 1:
# packed16_v2.h5 without its case_* datasets, format_version 1, h5repack'ed) and
# checkpoint/last_format1.pt. tests/unit/compat_test.cpp loads each of them.
set -euo pipefail
B=${1:-build/bin/brats_recipe}
C=tests/fuzz/corpus
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
[ -x "$B" ] || { echo "make_seeds: $B not found: build brats_recipe first" >&2; exit 1; }
mkdir -p "$C"/{nifti,split_file,slice_store,checkpoint,config}

# nifti: one case of 16x16x16 as stored (.nii.gz, INT16), its seg and t1 uncompressed,
# and a FLOAT32 modality.
"$B" synth --out "$W/cases" --cases 2 --shape 16,16,16 --seed 3 >/dev/null
"$B" synth --out "$W/f32" --cases 1 --shape 16,16,16 --seed 4 --float32 >/dev/null
case0=$W/cases/BraTS2021_00000/BraTS2021_00000
cp "$case0"_seg.nii.gz "$C/nifti/seg.nii.gz"
cp "$case0"_t1ce.nii.gz "$C/nifti/t1ce.nii.gz"
gunzip -c "$case0"_seg.nii.gz >"$C/nifti/seg.nii"
gunzip -c "$case0"_t1.nii.gz >"$C/nifti/t1.nii"
gunzip -c "$W"/f32/BraTS2021_00000/BraTS2021_00000_flair.nii.gz >"$C/nifti/flair_float32.nii"

# slice_store: those cases packed at 16x16, with and without checksums.
"$B" pack --input "$W/cases" --out "$C/slice_store/packed16.h5" --size 16 --val-fraction 0.5 --overwrite >/dev/null
"$B" pack --input "$W/cases" --out "$C/slice_store/packed16_nosum.h5" --size 16 --val-fraction 0.5 --no-checksum \
  --overwrite >/dev/null

# checkpoint: one epoch of a U-Net of widths 4,8 on them (the architecture the harness
# loads state_dicts into), its checkpoint and its export as a state_dict.
cat >"$W/tiny.yaml" <<YAML
run: {name: tiny, dir: $W/run, device: cpu}
data: {path: $C/slice_store/packed16.h5, batch_size: 2, workers: 1}
model: {widths: [4, 8]}
train: {epochs: 1, amp: off}
log: {tensorboard: false, progress_png: false}
YAML
"$B" train --config "$W/tiny.yaml" >/dev/null
cp "$W/run/last.pt" "$C/checkpoint/last.pt"
"$B" export --checkpoint "$W/run/last.pt" --out "$C/checkpoint/state_dict.pt" >/dev/null

# config: the recipes as shipped, and one with --set lines (see config_fuzz.cpp).
cp recipes/cpu_smoke.yaml recipes/brats_unet_baseline.yaml "$C/config/"
cat >"$C/config/with_sets.yaml" <<'YAML'
#set train.lr=5e-4
#set model.widths=[4,8]
#set eval.tta=none
run: {device: cpu}
loss: {type: multi_dice, class_weights: [0.1, 4, 1, 1]}
YAML

# split_file: both shapes of nnU-Net's splits_final.json, over the harness's case names.
printf '{"train": ["BraTS2021_00000", "BraTS2021_00001", "case 3"], "val": ["BraTS2021_00002"]}\n' \
  >"$C/split_file/object.json"
printf '[{"train": ["BraTS2021_00000", "BraTS2021_00001"], "val": ["BraTS2021_00002", "case 3"]},
 {"train": ["BraTS2021_00002", "case 3"], "val": ["BraTS2021_00000", "BraTS2021_00001"]}]\n' \
  >"$C/split_file/folds.json"
# A K-fold list that leaves a case out (it becomes test), as inspect --export-splits writes one.
printf '[\n    {\n        "train": [\n            "BraTS2021_00001",\n            "BraTS2021_00002"\n        ],\n        "val": [\n            "BraTS2021_00000"\n        ]\n    },\n    {\n        "train": [\n            "BraTS2021_00000",\n            "BraTS2021_00002"\n        ],\n        "val": [\n            "BraTS2021_00001"\n        ]\n    },\n    {\n        "train": [\n            "BraTS2021_00000",\n            "BraTS2021_00001"\n        ],\n        "val": [\n            "BraTS2021_00002"\n        ]\n    }\n]\n' \
  >"$C/split_file/folds_with_test.json"
du -b "$C"/*/* | sort -n | tail -3
