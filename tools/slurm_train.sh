#!/usr/bin/env bash
# Slurm training: tools/slurm_train.sh PARTITION JOB_NAME CONFIG [train.py args]
# Environment: GPUS (8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS,
# SIGNAL (USR1@180): Slurm sends SIGUSR1 to every task 180 s before the time limit; the
# training (cast_mm.PreemptionCheckpointHook) finishes its iteration, writes a checkpoint and
# exits with status 75. Resume with --resume; a requeued job (sbatch --requeue) resumes by
# itself (docs/reliability.md). SIGNAL= (empty) leaves the option out.
set -euo pipefail
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-}
SIGNAL=${SIGNAL-USR1@180}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
srun -p "$PARTITION" --job-name="$JOB_NAME" --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" --ntasks-per-node="$GPUS_PER_NODE" --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 ${SIGNAL:+--signal="$SIGNAL"} $SRUN_ARGS \
    "${PYTHON:-python3}" -u "$ROOT/tools/train.py" "$CONFIG" --launcher slurm "${@:4}"
