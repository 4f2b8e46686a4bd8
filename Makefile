# The two commands of the README: `make run` and `make test`.
PY := .venv/bin/python
WORKDIR ?= workdir/tmc_handwritten
CONFIG ?= experiments/tmc_handwritten/configs/default.py

.PHONY: setup run test bench clean

.venv/.installed: pyproject.toml requirements.lock scripts/setup.sh
	bash scripts/setup.sh
	touch $@

setup: .venv/.installed

# Main job: TMC on the embedded Handwritten data, 5 seeds, clean and noisy evaluation.
run: setup
	$(PY) -m experiments.tmc_handwritten.train --config=$(CONFIG) --workdir=$(abspath $(WORKDIR))

# Two worker processes, whole files per worker (module fixtures such as the smoke runs are
# built once); TEST_WORKERS=0 runs in this process.
TEST_WORKERS ?= 2
test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=20

# The speed table: every side-by-side benchmark whose inputs exist here (benchmarks/README.md):
# TORCH_PYTHON (Python 3.11 with torch 2.13), ORIGINALS (the original repositories checked out),
# MANUAL_DIR (the shared data). Writes benchmarks/SPEED.md; benchmarks that cannot run are listed.
TORCH_PYTHON ?=
ORIGINALS ?=
MANUAL_DIR ?= ../shared/data
bench: setup
	$(PY) -m benchmarks --torch-python "$(TORCH_PYTHON)" --originals "$(ORIGINALS)" \
	    --manual-dir "$(MANUAL_DIR)"

clean:
	rm -rf .venv workdir
