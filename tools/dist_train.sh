#!/usr/bin/env bash
# Distributed training with torchrun: tools/dist_train.sh CONFIG NUM_PROCESSES [train.py args]
# The interpreter is $PYTHON (default python3), as in tools/install.sh.
# Without GPUs the processes use the gloo backend on CPU.
# MAX_RESTARTS (default 3): when a process fails (a rank killed, a lost peer that fails the step
# within env_cfg.dist_cfg.timeout), torchrun restarts the whole group up to this many times and
# the restarted run resumes from the newest complete checkpoint of the work folder.
# MAX_RESTARTS=0 gives up at the first failure.
# Several nodes: run the same command on each with NNODES and MASTER_ADDR (node 0's address)
# set; the c10d rendezvous on MASTER_ADDR:PORT numbers the nodes (no node rank to give).
# TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 gives the processes of every restart a store of their own
# (in the rendezvous store a restarted gloo group reads the addresses of the failed one; see
# pytorch/pytorch#135712).
set -euo pipefail
CONFIG=$1
NPROC=$2
NNODES=${NNODES:-1}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MAX_RESTARTS=${MAX_RESTARTS:-3}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
TORCH_DISABLE_SHARE_RDZV_TCP_STORE=${TORCH_DISABLE_SHARE_RDZV_TCP_STORE:-1} \
"${PYTHON:-python3}" -m torch.distributed.run \
    --nnodes="$NNODES" --nproc_per_node="$NPROC" \
    --rdzv-backend=c10d --rdzv-endpoint="$MASTER_ADDR:$PORT" --max-restarts="$MAX_RESTARTS" \
    "$ROOT/tools/train.py" "$CONFIG" --launcher pytorch "${@:3}"
