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
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# Speed against the original PyTorch TMC; see benchmarks/README.md for TMC_DIR and TORCH_PYTHON.
TMC_DIR ?=
TORCH_PYTHON ?=
MANUAL_DIR ?= ../shared/data
bench: setup
	@test -n "$(TMC_DIR)" -a -n "$(TORCH_PYTHON)" || { echo "make bench needs TMC_DIR=... and TORCH_PYTHON=... (see benchmarks/README.md)"; exit 2; }
	$(PY) benchmarks/tmc_speed.py --tmc-dir "$(TMC_DIR)" --torch-python "$(TORCH_PYTHON)" --manual-dir "$(MANUAL_DIR)"

clean:
	rm -rf .venv workdir
