"""Helpers shared by the test modules: reference-vector fixtures, compiled-program capture."""

import contextlib
import pathlib

import jax

import numpy as np
import pytest

#: Where the parity vectors generated from the original implementations live.
REFERENCE_DATA = pathlib.Path(__file__).parent / 'reference' / 'data'


def load_vectors(filename: str) -> dict[str, np.ndarray]:
  """Every array of `tests/reference/data/<filename>` (a `.npz`), read into memory."""
  with np.load(REFERENCE_DATA / filename) as data:
    return dict(data)


def vectors_fixture(filename: str):
  """A module-scoped pytest fixture returning `load_vectors(filename)`.

  Use as `vectors = helpers.vectors_fixture('tmc_vectors.npz')` at a test module's top level;
  tests then take a `vectors` argument.
  """

  @pytest.fixture(scope='module')
  def vectors():
    return load_vectors(filename)

  return vectors


def weighted_cross_entropy(logits, batch):
  """The mean softmax cross-entropy of `batch['label']` weighted by `batch['weight']` (the
  padding weights `lqmm.train.fit` adds): the toy loss of the training-loop tests."""
  import optax  # pylint: disable=g-import-not-at-top
  per_sample = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label'])
  return jax.numpy.sum(per_sample * batch['weight']) / jax.numpy.sum(batch['weight'])


@contextlib.contextmanager
def compiled_programs():
  """Collects the HLO text of every program compiled through `Lowered.compile` (what
  `lqmm.train.fit` uses for its training call) inside the block: `with compiled_programs() as
  texts: ...`; a sharding test asserts on the partitioning these texts show."""
  texts = []
  compile_ = jax.stages.Lowered.compile

  def compile_and_keep(self, *args, **kwargs):
    compiled = compile_(self, *args, **kwargs)
    texts.append(compiled.as_text())
    return compiled

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(jax.stages.Lowered, 'compile', compile_and_keep)
    yield texts
