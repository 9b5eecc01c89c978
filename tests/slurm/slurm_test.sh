#!/usr/bin/env bash
# The sbatch scripts on a real local Slurm: a CPU smoke training through `sbatch --wait`,
# once with srun (PMIx/PMI2) and once with mpirun; then preemption: `scancel
# --signal=USR1` makes the job checkpoint and exit 0, and a resubmitted job resumes from
# last.pt; then the same with the job requeueing itself.
#   slurm_test.sh      one node (localhost), 2 tasks, launch/slurm/train.sbatch
#   slurm_test.sh 2    two nodes h1, h2 (namespace hosts, tests/multinode), 2 tasks
#                      each, launch/slurm/train_multinode.sbatch, and 2 folds side by
#                      side through launch/slurm/train_folds.sbatch
# Exits 77 (ctest: skipped) with the reason only where Slurm (or, for two nodes, network
# namespaces) is missing; daemons that fail to start are a failure. The daemons and the
# hosts are removed whatever happens (the trap is set before they start).
NODES=${1:-1}
# Two nodes keep their own /tmp (see netns_agent.sh): the shared files live elsewhere.
[ "$NODES" -eq 1 ] || export TMPDIR=/var/tmp
source "$(dirname "$0")/../e2e/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
if [ "$NODES" -gt 1 ]; then
  command -v slurmd >/dev/null || skip_test "Slurm is not installed here (slurmd not found)"
  MULTINODE_HOSTS=$NODES source "$here/../multinode/lib.sh"
  export STRATA_HOST_TMP=$OUT/host-tmp STRATA_NET=eth0  # every host's one link
fi
trap '"$here/slurm_down.sh" "$OUT/slurm"; [ "$NODES" -eq 1 ] || hosts_down; rm -rf "$OUT"' EXIT
env_out=$("$here/slurm_up.sh" "$OUT/slurm" 2>"$OUT/slurm_up.err")
case $? in
  0) ;;
  4) skip_test "Slurm is not installed here: $(tail -1 "$OUT/slurm_up.err")" ;;
  *) echo "FAIL: the local Slurm did not start:"; cat "$OUT/slurm_up.err"; exit 1 ;;
esac
eval "$env_out"

# job_field JOB FIELD: a field of `scontrol show job` (slurmctld keeps finished jobs for
# MinJobAge=300 s; there is no accounting storage here, so sacct knows nothing).
job_field() { scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p"; }

export STRATA_ROOT=$SOURCE_DIR BRATS_RECIPE DATA=$STRATA_TEST_DATA RECIPE=$SOURCE_DIR/recipes/cpu_smoke.yaml
small="--set data.batch_size=8 --set model.widths=[4,8,16] --set data.workers=1"
# Job variables travel in the environment (sbatch --export=ALL): values with commas,
# like the widths list, cannot go through --export=VAR=value.
sb=(sbatch --wait --nodes="$NODES" --ntasks-per-node=2 --gpus-per-node=0 --cpus-per-task=1 --time=10
    --chdir="$OUT" --export=ALL)
if [ "$NODES" -eq 1 ]; then
  script=$SOURCE_DIR/launch/slurm/train.sbatch
  world="world: 2 ranks on "
else
  script=$SOURCE_DIR/launch/slurm/train_multinode.sbatch
  world="world: 4 ranks on h1: ranks 0, 1 (local 0, 1); h2: ranks 2, 3 (local 0, 1)"
fi

for launcher in srun mpirun; do
  export RUN_DIR=$OUT/run-$launcher LAUNCHER=$launcher EXTRA_ARGS="$small --set train.epochs=1"
  run "submit_$launcher" "${sb[@]}" --output="$OUT/$launcher-%j.out" "$script"
  expect_rc 0
  LOG=$(ls "$RUN_DIR"/logs/train-*.log 2>/dev/null | head -1); LOG=${LOG:-$OUT/none}
  expect_log "$((2 * NODES)) tasks, launcher: "; expect_log "$world"; expect_log "training done: 1 epochs"
  [ -f "$RUN_DIR/last.pt" ] || fail "$launcher: no checkpoint in $RUN_DIR"
done

# Two nodes: the 2 folds of a packed file side by side in one allocation, one node per
# fold (train_folds.sbatch; ranks 0, 1 on h1 train fold 0, ranks 2, 3 on h2 fold 1).
if [ "$NODES" -gt 1 ]; then
  run pack_folds "$BRATS_RECIPE" pack --input "$STRATA_TEST_CASES" --out "$OUT/folds.h5" --size 32 \
    --keep-empty 0.3 --folds 2
  expect_rc 0
  export RUN_DIR=$OUT/cv LAUNCHER=auto FOLDS=2 DATA=$OUT/folds.h5 EXTRA_ARGS="$small --set train.epochs=1"
  run submit_folds "${sb[@]}" --output="$OUT/folds-%j.out" "$SOURCE_DIR/launch/slurm/train_folds.sbatch"
  expect_rc 0
  LOG=$(ls "$RUN_DIR"/logs/train-*.log 2>/dev/null | head -1); LOG=${LOG:-$OUT/none}
  expect_log "$world"; expect_log "train.folds 2: 2 ranks per fold"
  expect_log "[fold 0, rank 0/2] epoch 1/1: loss"; expect_log "[fold 1, rank 0/2] epoch 1/1: loss"
  expect_log "cross-validation over 2 folds"
  [ -f "$RUN_DIR/cv_summary.json" ] && [ -f "$RUN_DIR/fold_0/last.pt" ] && [ -f "$RUN_DIR/fold_1/last.pt" ] \
    || fail "train_folds.sbatch: no cv_summary.json or fold checkpoints in $RUN_DIR"
  unset FOLDS
  export DATA=$STRATA_TEST_DATA
fi

# Preemption: a long run, USR1 once the first epoch is logged, then a resubmission.
export RUN_DIR=$OUT/pre LAUNCHER=auto STRATA_REQUEUE=0 EXTRA_ARGS="$small --set train.epochs=500"
job=$(sbatch --parsable "${sb[@]:2}" --output="$OUT/pre-%j.out" "$script")
for _ in $(seq 1 1200); do [ -s "$RUN_DIR/metrics.jsonl" ] && break; sleep 0.1; done
[ -s "$RUN_DIR/metrics.jsonl" ] || { LOG=$OUT/pre-$job.out; fail "the job logged no epoch"; finish; }
scancel --signal=USR1 "$job"
for _ in $(seq 1 600); do squeue -h -j "$job" 2>/dev/null | grep -q . || break; sleep 0.2; done
LOG=$(ls "$RUN_DIR"/logs/train-"$job".log)
expect_log "stop requested (SIGUSR1)"
[ -f "$RUN_DIR/PREEMPTED" ] || fail "no PREEMPTED marker after the signal"
state=$(job_field "$job" JobState) code=$(job_field "$job" ExitCode)
[ "$state" = COMPLETED ] && [ "$code" = 0:0 ] \
  || fail "job $job: state '$state', exit '$code'; expected COMPLETED with 0:0 after USR1"
done_epochs=$(wc -l <"$RUN_DIR/metrics.jsonl")

export EXTRA_ARGS="$small --set train.epochs=$((done_epochs + 1))"
run resubmit "${sb[@]}" --output="$OUT/re-%j.out" "$script"
expect_rc 0
LOG=$(ls -t "$RUN_DIR"/logs/train-*.log | head -1)
expect_log "--resume"; expect_log "resumed from $RUN_DIR/last.pt"; expect_log "training done: $((done_epochs + 1)) epochs"
[ ! -f "$RUN_DIR/PREEMPTED" ] || fail "PREEMPTED left after the resumed run finished"

# The same with requeueing on (train.sbatch's default): the job requeues itself after
# the checkpoint, runs again with --resume and finishes.
export RUN_DIR=$OUT/requeue STRATA_REQUEUE=1 EXTRA_ARGS="$small --set train.epochs=40"
job=$(sbatch --parsable "${sb[@]:2}" --requeue --output="$OUT/rq-%j.out" "$script")
for _ in $(seq 1 1200); do [ -s "$RUN_DIR/metrics.jsonl" ] && break; sleep 0.1; done
scancel --signal=USR1 "$job"
# Slurm holds a requeued job for a while (its BeginTime); release it, but not within the
# second of the requeue: slurmd revokes the first run's credential with a one-second
# clock, and a relaunch stamped in that same second is refused ("Job credential
# revoked") and the job ends. Two nodes take longer to come back from the first run
# (each finishes its step), so the wait is generous; where it runs out, the job's state
# and reason go in the output.
held=0
for _ in $(seq 1 1500); do
  grep -q "training done" "$RUN_DIR/logs/train-$job.log" 2>/dev/null && break
  if [ "$(squeue -h -j "$job" -o %r 2>/dev/null)" = BeginTime ]; then
    held=$((held + 1))
    [ $((held % 10)) -eq 0 ] && scontrol update JobId="$job" StartTime=now
  fi
  sleep 0.2
done
grep -q "training done" "$RUN_DIR/logs/train-$job.log" 2>/dev/null \
  || echo "requeued job $job after 300 s: $(squeue -h -j "$job" -o '%T %r' 2>/dev/null); nodes: $(sinfo -h -N -o '%N %t' | tr '\n' ' ')"
LOG=$(ls "$OUT"/rq-"$job".out)
expect_log "requeueing job $job"
LOG=$RUN_DIR/logs/train-$job.log
expect_log "stop requested (SIGUSR1)"; expect_log "resumed from $RUN_DIR/last.pt"
expect_log "training done: 40 epochs"
finish
