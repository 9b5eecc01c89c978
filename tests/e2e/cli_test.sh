#!/usr/bin/env bash
# The brats_recipe CLI skeleton: --version, --help, config printing and overrides,
# clear errors, and the cross-rank config check under mpirun (fails on every rank, no
# hang: ctest's TIMEOUT would catch one).
source "$(dirname "$0")/lib.sh"
B=$BRATS_RECIPE

run version "$B" --version
expect_rc 0; expect_log "Strata"; expect_log "libtorch 2."
expect_log "checkpoint format 2 (reads 1 to 2), packed slice format 3 (reads 1 to 3)"
version=$(sed -n 's/^project(strata VERSION \([0-9.]*\).*/\1/p' "$SOURCE_DIR/CMakeLists.txt")
expect_log "brats_recipe (Strata $version, "

# Every subcommand's --help lists its options; `help` prints them all.
for c in config summary synth pack inspect train finetune bench evaluate predict score report export help; do
  run "help_$c" "$B" "$c" --help
  expect_rc 0; expect_log "Usage:"; expect_no_log "--force"; expect_no_log "--from"
done
run help_all "$B" help
expect_rc 0; expect_log "evaluate [OPTIONS]"; expect_log "--delete-checkpoints"
run help_md "$B" help --markdown
expect_rc 0; expect_log "## \`finetune\`"; expect_log "- --from is now --checkpoint"
run reference "$B" config --reference
expect_rc 0; expect_log "| \`run.device\` | string | \`auto\` | auto, cpu, cuda |"; expect_log "| \`sched.type\` |"
expect_log "| \`data.augment.flip_prob\` | number | "
run reference_set "$B" config --reference --set run.seed=1
expect_rc 1; expect_log "config --reference prints the defaults"

run help "$B" --help
expect_rc 0; expect_log "config"

# A command that needs no device starts without torch's CUDA backend and the CUDA
# libraries; one that may use a GPU loads them first (comm/cuda_backend.h). LD_DEBUG
# names every library the loader opens.
if "$B" --version | grep -q "CUDA yes"; then
  for c in "--help" "config --reference" "inspect $OUT/none.h5"; do
    # shellcheck disable=SC2086  # $c is a command line
    run no_cuda env LD_DEBUG=files "$B" $c
    expect_log "file=libtorch_cpu.so"; expect_no_log "file=libtorch_cuda.so"; expect_no_log "file=libcudnn"
    expect_no_log "file=libnccl"
  done
  expect_rc 1; expect_log "none.h5"
  run cuda_loaded env LD_DEBUG=files "$B" evaluate --config "$SOURCE_DIR/recipes/cpu_smoke.yaml" --checkpoint "$OUT/none.pt" \
    --set "data.path=$OUT/none.h5"
  expect_rc 1; expect_log "file=libtorch_cuda.so"; expect_log "none.h5' does not exist"
fi

run none "$B"
expect_nonzero

run config "$B" config --config "$SOURCE_DIR/recipes/cpu_smoke.yaml" --set run.seed=99
expect_rc 0; expect_log "seed: 99"; expect_log "name: cpu_smoke"; expect_log "# hash "

run unknown "$B" config --set run.sed=1
expect_rc 1; expect_log "'run.sed' is not a known key"; expect_log "did you mean 'seed'"

run badvalue "$B" config --set run.device=tpu
expect_rc 1; expect_log "'run.device' = 'tpu': must be one of auto, cpu, cuda"

run nofile "$B" config --config /nonexistent.yaml
expect_nonzero; expect_log "nonexistent.yaml"

# Same config on both ranks: one print, from rank 0.
run mpi_same $MPI_LAUNCH2 "$B" config --set run.seed=5
expect_rc 0; expect_log "identical on 2 ranks"
[ "$(grep -c '# hash' "$LOG")" -eq 1 ] || fail "expected exactly one printed config"

# Rank 1 resolves a different config: every rank stops with the same message.
run mpi_differ $MPI_LAUNCH2 sh -c 'exec "$0" config --set run.seed=${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-0}}' "$B"
expect_nonzero; expect_log "ranks disagree on the config (rank 0's value -> theirs): rank 1 on $(hostname) differs from rank 0 on $(hostname) in run.seed: 0 -> 1"
[ "$(grep -c 'ranks disagree' "$LOG")" -eq 1 ] || fail "the shared error should be printed once"

# The same mistake on every rank: one message, from rank 0, and every rank exits 1.
run mpi_typo $MPI_LAUNCH2 "$B" config --set run.sed=1
expect_nonzero; expect_log "'run.sed' is not a known key"
[ "$(grep -c "is not a known key" "$LOG")" -eq 1 ] || fail "the shared error should be printed once"

# Cross-section rules and the new run keys are checked when the config is resolved.
run f16_cpu "$B" config --set data.image_dtype=float16 --set run.device=cpu
expect_rc 1; expect_log "'data.image_dtype' = float16 needs a GPU: 'run.device' is cpu"
run bad_signal "$B" config --set "run.stop_signals=[SIGTERM, SIGKILL]"
expect_rc 1; expect_log "'SIGKILL' is not one of SIGTERM, SIGUSR1, SIGUSR2, SIGINT, SIGHUP"
run bad_timeout "$B" config --set run.comm_timeout_s=0
expect_rc 1; expect_log "run.comm_timeout_s"

# Paths given as a file or a folder are checked; the message says what was expected.
mkdir -p "$OUT/a_folder"; touch "$OUT/a_file"
run path_data "$B" train --config "$SOURCE_DIR/recipes/cpu_smoke.yaml" --set "data.path=$OUT/a_folder" --set "run.dir=$OUT/r"
expect_rc 1; expect_log "data error: the packed slice file (data.path) '$OUT/a_folder' is a folder; expected a file"
run path_run_dir "$B" train --config "$SOURCE_DIR/recipes/cpu_smoke.yaml" --set "run.dir=$OUT/a_file"
expect_rc 1; expect_log "run.dir '$OUT/a_file' is a file; expected a folder"
run path_from "$B" config --checkpoint "$OUT/a_folder"
expect_rc 1; expect_log "checkpoint error: checkpoint '$OUT/a_folder' is a folder; expected a file"
run path_input "$B" pack --input "$OUT/a_file" --out "$OUT/x.h5"
expect_rc 1; expect_log "'$OUT/a_file' is a file; expected a folder"
run path_out "$B" pack --input "$OUT/a_folder" --out "$OUT/a_folder"
expect_rc 1; expect_log "pack --out '$OUT/a_folder' is a folder; expected the path of the .h5 file"
run path_synth "$B" synth --out "$OUT/a_file" --cases 1 --shape 32,32,16
expect_rc 1; expect_log "synth --out '$OUT/a_file' is a file; expected a folder"
for name in path_data path_run_dir path_from path_input path_out path_synth; do
  LOG=$OUT/$name.log; expect_no_log "internal error"
done

# The old spellings: still parsed, one warning each; both spellings at once is an error.
run old_from "$B" config --from "$OUT/a_folder"
expect_rc 1; expect_log "checkpoint '$OUT/a_folder' is a folder"; expect_log "warning: deprecated: --from is now --checkpoint"
run old_both "$B" config --from "$OUT/a_folder" --checkpoint "$OUT/a_folder"
expect_rc 1; expect_log "config error: --from is now --checkpoint: give only one of the two"
run old_report "$B" report "$OUT/a_file"
expect_rc 1; expect_log "warning: deprecated: \`report RUN_DIR\` is now \`report --run RUN_DIR\`"
run report_none "$B" report
expect_nonzero; expect_log "--run is required"

# Training on the demo's phantom file without asking says so; asking with --set does not.
mkdir -p "$OUT/cwd"
run phantom sh -c 'cd "$1/cwd" && exec "$2" train --config "$3" --set run.dir=r' sh "$OUT" "$B" "$SOURCE_DIR/recipes/cpu_smoke.yaml"
expect_rc 1; expect_log "warning: SYNTHETIC DATA: this run trains on runs/demo-data/brats64.h5, the demo's phantom cases"
expect_log "--set data.path=/path/to/brats128.h5"
run phantom_asked sh -c 'cd "$1/cwd" && exec "$2" train --config "$3" --set run.dir=r --set data.path=runs/demo-data/brats64.h5' \
  sh "$OUT" "$B" "$SOURCE_DIR/recipes/cpu_smoke.yaml"
expect_rc 1; expect_no_log "SYNTHETIC"

# Every recipe as shipped resolves (config) and builds its model (summary).
for r in "$SOURCE_DIR"/recipes/*.yaml; do
  name=$(basename "$r" .yaml)
  run "recipe_$name" "$B" config --config "$r"
  expect_rc 0; expect_log "# hash "
  run "summary_$name" "$B" summary --config "$r" --size 64
  expect_rc 0; expect_log "parameters: "
done
[ "$(ls "$SOURCE_DIR"/recipes/*.yaml | wc -l)" -ge 5 ] || { LOG=/dev/null; fail "recipes/ lost its recipes"; }

finish
