# Shared by launch/slurm/*.sbatch (sourced inside the job). Picks the launcher, sets
# up the per-job log, and runs one brats_recipe command on every task of the job.
#
# Variables (export them or pass `sbatch --export=ALL,VAR=...`):
#   STRATA_ROOT  the Strata checkout with build/bin   (default: the submit directory)
#   LAUNCHER     auto | srun | mpirun                 (default: auto)
#     auto: srun with PMIx, else srun with PMI2, else mpirun (launch/mpirun.sh), as the
#     cluster's Slurm and MPI offer.
#   STRATA_NET   the interface (eth1, ib0) or subnet (10.1.0.0/16) that carries the job's
#                traffic between nodes: OpenMPI's TCP transport and out-of-band messages
#                stay on it, and an interface name is also NCCL_SOCKET_IFNAME. Set it where
#                nodes have several networks (docker0, a management LAN): OpenMPI tries
#                every interface and hangs on one the other nodes cannot reach.

STRATA_ROOT=${STRATA_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}
BRATS_RECIPE=${BRATS_RECIPE:-$STRATA_ROOT/build/bin/brats_recipe}
[ -x "$BRATS_RECIPE" ] || { echo "strata: $BRATS_RECIPE not found; build Strata or set STRATA_ROOT" >&2; exit 2; }

# The launch command prefix, chosen once per job.
strata_launcher() {
  local want=${LAUNCHER:-auto} mpis
  mpis=$(srun --mpi=list 2>&1 || true)
  case "$want" in
    srun|auto)
      if grep -qw pmix <<<"$mpis"; then echo "srun --mpi=pmix --kill-on-bad-exit=1"; return; fi
      if grep -qw pmi2 <<<"$mpis"; then echo "srun --mpi=pmi2 --kill-on-bad-exit=1"; return; fi
      [ "$want" = srun ] && { echo "strata: this Slurm offers neither PMIx nor PMI2 for srun" >&2; exit 2; }
      ;;
  esac
  echo "$STRATA_ROOT/launch/mpirun.sh -np ${SLURM_NTASKS:-1}"
}

# strata_run LOG_NAME ARGS...: runs brats_recipe ARGS on every task, output also in
# $RUN_DIR/logs/LOG_NAME-<jobid>.log. Returns brats_recipe's status.
strata_run() {
  local name=$1; shift
  local log_dir=${RUN_DIR:?RUN_DIR is not set}/logs
  mkdir -p "$log_dir"
  local log="$log_dir/$name-${SLURM_JOB_ID:-local}.log" launch
  launch=$(strata_launcher)
  if [ -n "${STRATA_NET:-}" ]; then  # srun's ranks read MCA parameters from the environment
    export OMPI_MCA_btl_tcp_if_include=$STRATA_NET OMPI_MCA_oob_tcp_if_include=$STRATA_NET
    [[ "$STRATA_NET" == */* ]] || export NCCL_SOCKET_IFNAME=${NCCL_SOCKET_IFNAME:-$STRATA_NET}
  fi
  echo "strata: job ${SLURM_JOB_ID:-?} on ${SLURM_JOB_NODELIST:-$(hostname)}, ${SLURM_NTASKS:-1} tasks, launcher: $launch" | tee -a "$log"
  echo "strata: $BRATS_RECIPE $*" | tee -a "$log"
  set -o pipefail
  # shellcheck disable=SC2086
  $launch "$BRATS_RECIPE" "$@" 2>&1 | tee -a "$log"
}

# After a preemption stop (the trainer leaves $RUN_DIR/PREEMPTED, or fold_k/PREEMPTED
# with FOLDS), requeue this job so it resumes from last.pt; set STRATA_REQUEUE=0 to only
# checkpoint and stop.
strata_requeue_if_preempted() {
  local preempted=0 f
  for f in "$RUN_DIR/PREEMPTED" "$RUN_DIR"/fold_*/PREEMPTED; do [ -f "$f" ] && preempted=1; done
  if [ "$preempted" = 1 ] && [ "${STRATA_REQUEUE:-1}" = 1 ] && [ -n "${SLURM_JOB_ID:-}" ]; then
    echo "strata: preempted; requeueing job $SLURM_JOB_ID to resume from $RUN_DIR/last.pt"
    scontrol requeue "$SLURM_JOB_ID"
  fi
}

# The body of train.sbatch, train_multinode.sbatch and train_folds.sbatch: train RECIPE
# on DATA into RUN_DIR (with FOLDS=K, its K folds side by side into RUN_DIR/fold_k),
# resuming from last.pt when it exists, requeueing after preemption.
strata_train_job() {
  : "${RECIPE:?set RECIPE=recipes/<recipe>.yaml}" "${DATA:?set DATA=<packed .h5>}" "${RUN_DIR:?set RUN_DIR}"
  local args=(train --config "$RECIPE" --set "data.path=$DATA" --set "run.dir=$RUN_DIR") status=0 f
  if [ -n "${FOLDS:-}" ]; then
    args+=(--folds "$FOLDS")
    for f in "$RUN_DIR"/fold_*/last.pt; do [ -f "$f" ] && { args+=(--resume); break; }; done
  else
    [ -f "$RUN_DIR/last.pt" ] && args+=(--resume)
  fi
  # shellcheck disable=SC2086
  strata_run train "${args[@]}" ${EXTRA_ARGS:-} || status=$?
  strata_requeue_if_preempted
  return "$status"
}
