#!/usr/bin/env bash
# Idempotent setup of lqmm on every host of a Cloud TPU VM slice (or any Linux host).
# Run from the repository root on each host (the gcloud recipe in README.md does this with
# --worker=all). Re-running is safe: an existing .venv is reused and only missing packages
# are installed.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh  # Python >= 3.12 venv with the pinned dependencies (CPU jax).

# On TPU hosts, add the TPU runtime for the pinned jax (skipped elsewhere).
if [[ -e /dev/accel0 || -d /dev/vfio || "${LQMM_FORCE_TPU:-0}" == "1" ]]; then
  JAX_VERSION=$(.venv/bin/python -c 'import jax; print(jax.__version__)')
  if ! .venv/bin/python -c 'import libtpu' >/dev/null 2>&1; then
    .venv/bin/python -m pip install --quiet "jax[tpu]==${JAX_VERSION}"
  fi
fi
.venv/bin/python -c 'import jax; print(f"setup: {jax.process_index()=} {jax.local_device_count()=} {jax.default_backend()=}")'
