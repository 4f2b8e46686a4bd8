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

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/tmc_speed.py

clean:
	rm -rf .venv workdir
