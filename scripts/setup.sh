#!/usr/bin/env bash
# Creates .venv with a Python >= 3.12 and installs lqmm with its pinned dependencies.
# Idempotent: an existing .venv with a matching Python is reused. Override the interpreter
# with PYTHON=/path/to/python3.12.
set -euo pipefail
cd "$(dirname "$0")/.."

version_ok() {  # $1: interpreter; true when it runs and is >= 3.12
  "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}

find_python() {
  local candidate
  if [[ -n "${PYTHON:-}" ]]; then
    if version_ok "$PYTHON"; then echo "$PYTHON"; return 0; fi
    echo "setup: PYTHON=$PYTHON is not a Python >= 3.12" >&2; return 1
  fi
  for candidate in python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && version_ok "$candidate"; then
      command -v "$candidate"; return 0
    fi
  done
  # pyenv installs that are not the active version.
  if command -v pyenv >/dev/null 2>&1; then
    for candidate in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9])' | sort -V); do
      if PYENV_VERSION="$candidate" python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
        PYENV_VERSION="$candidate" python3 -c 'import sys; print(sys.executable)'; return 0
      fi
    done
  fi
  return 1
}

if [[ -x .venv/bin/python ]] && version_ok .venv/bin/python; then
  PY=.venv/bin/python
else
  if ! BASE=$(find_python); then
    cat >&2 <<'MSG'
setup: lqmm needs Python >= 3.12 (jax 0.12 and flax 0.12 require it), and none was found.
  Install one (e.g. `pyenv install 3.12`, `uv python install 3.12`, or your OS package
  python3.12 with its venv module), or point PYTHON at it: PYTHON=/path/to/python3.12 make setup
MSG
    exit 1
  fi
  echo "setup: creating .venv with $BASE ($("$BASE" --version))"
  rm -rf .venv
  "$BASE" -m venv .venv
  PY=.venv/bin/python
fi

"$PY" -m pip install --quiet --upgrade pip
"$PY" -m pip install --quiet -c requirements.lock -e ".[dev,bench]"
echo "setup: ready ($("$PY" --version), jax $("$PY" -c 'import jax; print(jax.__version__)'))"
