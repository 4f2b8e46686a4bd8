#!/usr/bin/env bash
# Runs an lqmm experiment on every host of a slice: jax.distributed is initialised from the
# environment (LQMM_DISTRIBUTED=1), process 0 writes metrics, all processes write the
# checkpoints together. `python -m lqmm.launch --cluster=tpu ...` runs it on every worker.
#
#   tpu_scripts/run.sh [EXPERIMENT] [WORKDIR] [extra absl flags...]
#
# EXPERIMENT defaults to tmc_handwritten, WORKDIR to $HOME/lqmm_runs/<experiment>. A rerun with
# the same WORKDIR resumes from its latest checkpoint, so the script is safe to repeat. On a
# multi-host slice WORKDIR must be a shared path (a gs:// bucket or an NFS mount): every
# process writes its shards of the checkpoint there.
set -euo pipefail
cd "$(dirname "$0")/.."
EXPERIMENT=${1:-tmc_handwritten}
WORKDIR=${2:-$HOME/lqmm_runs/$EXPERIMENT}
shift $(( $# > 2 ? 2 : $# ))
CONFIG=${CONFIG:-experiments/$EXPERIMENT/configs/default.py}
export LQMM_DISTRIBUTED=${LQMM_DISTRIBUTED:-1}
exec .venv/bin/python -m "experiments.$EXPERIMENT.train" --config="$CONFIG" --workdir="$WORKDIR" "$@"
