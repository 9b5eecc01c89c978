#!/usr/bin/env bash
# The data commands as a user runs them: synth -> pack -> inspect --verify, the packed
# layout as h5dump (hdf5-tools) shows it against data/FORMAT.md, determinism, and every
# bad input of issue 3: a named error, a non-zero exit, and no partial output.
source "$(dirname "$0")/lib.sh"
B=$BRATS_RECIPE
S=$OUT/cases

run synth "$B" synth --out "$S" --cases 5 --shape 48,48,24 --seed 2
expect_rc 0; expect_log "wrote 5 easy cases of 48x48x24"
[ -f "$S/BraTS2021_00004/BraTS2021_00004_flair.nii.gz" ] || fail "synth did not write the BraTS layout"
[ -z "$(ls -A "$S" | grep -v '^BraTS2021_0000[0-4]$')" ] || fail "synth left other entries: $(ls -A "$S")"

run synth_again "$B" synth --out "$S" --cases 5 --shape 48,48,24 --seed 2
expect_rc 1; expect_log "BraTS2021_00000 already exists; pass --overwrite"
# --force, the old spelling of --overwrite: still replaces, with one deprecation warning.
run synth_force "$B" synth --out "$S" --cases 5 --shape 48,48,24 --seed 2 --force
expect_rc 0; expect_log "warning: deprecated: --force is now --overwrite"
[ "$(grep -c deprecated "$LOG")" -eq 1 ] || fail "expected one deprecation warning"
run synth_overwrite "$B" synth --out "$S" --cases 5 --shape 48,48,24 --seed 2 --overwrite
expect_rc 0; expect_no_log "deprecated"

run pack "$B" pack --input "$S" --out "$OUT/a.h5" --size 32 --val-fraction 0.4 --workers 2
expect_rc 0; expect_log "pack: 5 cases"; expect_log "train"; expect_log "val"; expect_log "enhancing tumour"
expect_log "per slice"

run inspect "$B" inspect --data "$OUT/a.h5" --verify
expect_rc 0; expect_log "format version 3"; expect_log "brats_recipe pack (Strata"
expect_log "4 x 32 x 32 (t1, t1ce, t2, flair), 5 cases"; expect_log "verify: OK"; expect_log "on open: metadata checksum, chunk index (" 
expect_no_log "deprecated"
# `inspect FILE`, the old positional spelling: the same summary, with a warning.
run inspect_positional "$B" inspect "$OUT/a.h5"
expect_rc 0; expect_log "format version 3"; expect_log "warning: deprecated: \`inspect FILE\` is now \`inspect --data FILE\`"
run inspect_both "$B" inspect "$OUT/a.h5" --data "$OUT/a.h5"
expect_rc 1; expect_log "inspect --data FILE\`: give only one of the two"

# Determinism: the same inputs and seed give a byte-identical file (other thread count).
run pack_again "$B" pack --input "$S" --out "$OUT/b.h5" --size 32 --val-fraction 0.4 --workers 1
expect_rc 0
cmp -s "$OUT/a.h5" "$OUT/b.h5" || fail "two packs of the same input differ"

# The layout of data/FORMAT.md, as h5dump shows it.
run h5dump h5dump -H -p "$OUT/a.h5"
expect_rc 0
for want in 'DATASET "images"' '16-bit little-endian floating-point' 'CHUNKED ( 1, 4, 32, 32 )' \
            'DATASET "labels"' 'H5T_STD_U8LE' 'CHUNKED ( 1, 32, 32 )' 'CHECKSUM FLETCHER32' \
            'DATASET "slice_case"' 'DATASET "slice_z"' 'H5T_STD_I32LE' 'DATASET "case_names"' \
            'GROUP "splits"' 'DATASET "train"' 'DATASET "val"' 'H5T_STD_I64LE' 'ATTRIBUTE "class_voxels"' \
            'ATTRIBUTE "format"' 'ATTRIBUTE "format_version"' 'ATTRIBUTE "modalities"' 'ATTRIBUTE "label_source_values"' \
            'ATTRIBUTE "normalisation"' 'ATTRIBUTE "resize"' 'ATTRIBUTE "orientation"' 'ATTRIBUTE "source"' \
            'ATTRIBUTE "tool"' 'ATTRIBUTE "seed"' 'DATASET "case_dims"' 'DATASET "case_spacing"' \
            'DATASET "case_xform_codes"' 'DATASET "case_qform"' 'DATASET "case_sform"' 'DATASET "case_crop"' \
            'DATASET "case_scale"' 'H5T_IEEE_F64LE'; do
  expect_log "$want"
done
grep -q 'DATASPACE  SIMPLE { ( [0-9]*, 4, 32, 32 ) / ( H5S_UNLIMITED, 4, 32, 32 ) }' "$LOG" \
  || fail "images is not [N, 4, 32, 32]"
run h5dump_attrs h5dump -a format -a format_version -a modalities -a label_source_values "$OUT/a.h5"
expect_rc 0; expect_log '"strata.brats.slices"'; expect_log '(0): 3'; expect_log '"t1", "t1ce", "t2", "flair"'
expect_log '(0): 0, 1, 2, 4'

# --- bad input: a named error, exit 1, nothing left behind -------------------------
no_leftovers() { ! ls "$OUT" | grep -q partial || fail "a partial file was left: $(ls "$OUT")"; }
bad_copy() { rm -rf "$OUT/bad"; cp -r "$S" "$OUT/bad"; }

bad_copy; rm "$OUT/bad/BraTS2021_00001/BraTS2021_00001_t2.nii.gz"
run missing "$B" pack --input "$OUT/bad" --out "$OUT/bad.h5" --size 32
expect_rc 1; expect_log "data error: case BraTS2021_00001: missing file $OUT/bad/BraTS2021_00001/BraTS2021_00001_t2.nii.gz"
[ ! -e "$OUT/bad.h5" ] || fail "output written despite the error"; no_leftovers

bad_copy; head -c 3000 "$S/BraTS2021_00002/BraTS2021_00002_t1.nii.gz" >"$OUT/bad/BraTS2021_00002/BraTS2021_00002_t1.nii.gz"
run truncated "$B" pack --input "$OUT/bad" --out "$OUT/bad.h5" --size 32
expect_rc 1; expect_log "$OUT/bad/BraTS2021_00002/BraTS2021_00002_t1.nii.gz: image data truncated or corrupt"
[ ! -e "$OUT/bad.h5" ] || fail "output written despite the error"; no_leftovers

bad_copy; "$B" synth --out "$OUT/other" --cases 1 --shape 48,48,30 >/dev/null 2>&1
cp "$OUT/other/BraTS2021_00000/BraTS2021_00000_seg.nii.gz" "$OUT/bad/BraTS2021_00000/BraTS2021_00000_seg.nii.gz"
run dims "$B" pack --input "$OUT/bad" --out "$OUT/bad.h5" --size 32
expect_rc 1; expect_log "case BraTS2021_00000"; expect_log "48x48x30"; expect_log "all modalities and seg must match"
[ ! -e "$OUT/bad.h5" ] || fail "output written despite the error"; no_leftovers

mkdir -p "$OUT/empty"
run empty "$B" pack --input "$OUT/empty" --out "$OUT/bad.h5"
expect_rc 1; expect_log "$OUT/empty: no case folders"

echo precious >"$OUT/keep.h5"
run exists "$B" pack --input "$S" --out "$OUT/keep.h5" --size 32
expect_rc 1; expect_log "$OUT/keep.h5 already exists; pass --overwrite"
[ "$(cat "$OUT/keep.h5")" = precious ] || fail "an existing output was overwritten without --overwrite"
run exists_force "$B" pack --input "$S" --out "$OUT/keep.h5" --size 32 --force
expect_rc 0; expect_log "warning: deprecated: --force is now --overwrite"
[ "$(head -c 8 "$OUT/keep.h5")" != precious ] || fail "pack --force (old spelling) did not replace the output"

# A truncated .h5 and a flipped byte inside slice data: inspect (and --verify) fail.
head -c $(($(stat -c %s "$OUT/a.h5") / 2)) "$OUT/a.h5" >"$OUT/cut.h5"
run cut "$B" inspect --data "$OUT/cut.h5"
expect_rc 1; expect_log "data error: $OUT/cut.h5"

# flip_middle FROM TO: a copy of FROM with the byte in the middle of the file flipped.
flip_middle() {
  cp "$1" "$2"
  local off byte
  off=$(($(stat -c %s "$2") / 2))
  byte=$(od -An -tu1 -j "$off" -N1 "$2" | tr -d ' ')
  printf "$(printf '\\%03o' $((byte ^ 255)))" | dd of="$2" bs=1 seek="$off" conv=notrunc status=none
}
# The middle of the file lies inside /images chunk data (images are ~90% of it).
flip_middle "$OUT/a.h5" "$OUT/flip.h5"
run flip "$B" inspect --data "$OUT/flip.h5" --verify
expect_rc 1; expect_log "data error: $OUT/flip.h5: reading /images slice"; expect_log "(case BraTS2021_0000"

# Splits as nnU-Net users expect: K folds by case, and a splits_final.json; inspect
# names each split's cases.
run folds "$B" pack --input "$S" --out "$OUT/f1.h5" --size 32 --folds 3 --fold 1
expect_rc 0
run inspect_folds "$B" inspect --data "$OUT/f1.h5"
expect_rc 0; expect_log "split: fold 1 of 3 by case, stratified by necrosis (seed 0)"; expect_log "val cases ("; expect_log "train cases ("
val=$(sed -n 's/^  val cases ([0-9]*): //p' "$LOG"); train=$(sed -n 's/^  train cases ([0-9]*): //p' "$LOG")
printf '[{"train": [%s], "val": [%s]}]' "$(printf '"%s",' $val | sed 's/,$//')" "$(printf '"%s",' $train | sed 's/,$//')" \
  >"$OUT/splits.json"
run split_file "$B" pack --input "$S" --out "$OUT/sf.h5" --size 32 --split-file "$OUT/splits.json"
expect_rc 0
run inspect_file "$B" inspect --data "$OUT/sf.h5"
expect_rc 0; expect_log "  val cases ($(echo $train | wc -w)): $train"; expect_log "split: from $OUT/splits.json (entry 0)"
echo '{"train": ["nobody"], "val": []}' >"$OUT/bad_split.json"
run bad_split "$B" pack --input "$S" --out "$OUT/bad.h5" --size 32 --split-file "$OUT/bad_split.json"
expect_rc 1; expect_log "names that are no case of the input: nobody"; expect_log "cases in neither train nor val"
[ ! -e "$OUT/bad.h5" ] || fail "output written despite the error"


# Packed volumes (issue 28): pack --volumes -> inspect --verify, determinism, the layout
# of FORMAT.md's "Packed volumes", the slice-only options refused, a flipped byte found.
run pack_volumes "$B" pack --volumes --input "$S" --out "$OUT/v.h5" --val-fraction 0.4 --workers 2
expect_rc 0; expect_log "pack: 5 cases"; expect_log "volumes cropped to the brain"; expect_log "voxels per channel"
run inspect_volumes "$B" inspect --data "$OUT/v.h5" --verify
expect_rc 0; expect_log "Strata volume file (strata.brats.volumes), format version 1"
expect_log "5 cases of 4 channels (t1, t1ce, t2, flair)"; expect_log "checksums: fletcher32 per chunk"
expect_log "verify: OK"; expect_log "class locations"
run pack_volumes_again "$B" pack --volumes --input "$S" --out "$OUT/v2.h5" --val-fraction 0.4 --workers 1
expect_rc 0
cmp -s "$OUT/v.h5" "$OUT/v2.h5" || fail "two volume packs of the same input differ"
run h5dump_volumes h5dump -H -p "$OUT/v.h5"
expect_rc 0
for want in 'GROUP "cases"' 'GROUP "0"' 'DATASET "image"' 'DATASET "label"' 'GROUP "class_locations"' \
            'CHECKSUM FLETCHER32' 'DATASET "case_crop_lo"' 'DATASET "case_shape"' 'DATASET "case_dims"' \
            'DATASET "case_sform"' 'ATTRIBUTE "metadata_checksum"'; do
  expect_log "$want"
done
# Five images chunked [4, 32, 32, 32], each side clipped to the case's shape.
grep -oE 'CHUNKED \( 4, [0-9]+, [0-9]+, [0-9]+ \)' "$LOG" \
  | awk -F'[ ,()]+' '{ for (i = 3; i <= 5; i++) if ($i > 32) bad = 1; n++ } END { exit !(n == 5 && !bad) }' \
  || fail "volume images are not chunked [4, <=32, <=32, <=32]"
run volumes_size "$B" pack --volumes --input "$S" --out "$OUT/bad.h5" --size 64
expect_rc 1; expect_log "config error: pack --volumes stores whole cases cropped to the brain: --size applies to slices only"
[ ! -e "$OUT/bad.h5" ] || fail "output written despite the error"
flip_middle "$OUT/v.h5" "$OUT/vflip.h5"  # inside image chunk data, as for slices
run vflip "$B" inspect --data "$OUT/vflip.h5" --verify
expect_rc 1; expect_log "data error: $OUT/vflip.h5: reading /cases/"; expect_log "(BraTS2021_0000"

finish
