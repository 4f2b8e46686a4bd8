"""The benchmark harness's one front door.

    python -m lqmm.bench --config=lqmm/bench/configs/fusion.py:handwritten --workdir=DIR
    python -m lqmm.bench --config=lqmm/bench/configs/imbalance.py:av_digits \
        --config.data.manual_dir=../shared/data --workdir=DIR

Any config value can be overridden (`--config.methods="('qmf','tmc')"`,
`--config.train.num_seeds=3`); see the config files for the suites and their variants.
"""

from lqmm import train
from lqmm.bench import harness


def main() -> None:
  train.run_experiment(harness.run)


if __name__ == '__main__':
  main()
