"""Labelling a parameter tree by modality, for `optax.partition` and the balance transforms.

The balance transforms act on one modality's parameters at a time. `optax.partition` routes
each leaf to a transform by a label pytree of the same structure; `modality_labels` builds that
tree from the leaves' paths, so it works for any pytree of parameters: a Flax NNX
`nnx.State` (from `nnx.split(model, nnx.Param)`), a Linen `params` dict, an equinox module or a
plain dict. It imports no neural-network library.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import jax

__all__ = ['SHARED', 'leaf_path', 'modality_labels']

#: The label given to leaves that no modality pattern matches (fusion heads, shared layers).
SHARED = 'shared'


def leaf_path(path) -> str:
  """Renders a `jax.tree_util` key path as `'encoders/audio/conv/kernel/value'`."""
  return jax.tree_util.keystr(tuple(path), simple=True, separator='/')


def modality_labels(params, patterns: Mapping[str, str | Sequence[str]], *,
                    default: str = SHARED):
  """Labels every leaf of `params` with the modality whose pattern matches its path.

  A leaf's path is its keys joined by `/` (see `leaf_path`), e.g. `audio/kernel/value` for
  the kernel of an NNX attribute `audio`, or `params/visual_encoder/Conv_0/kernel` for Linen.
  Each pattern is a regular expression searched (`re.search`) in that path.

  Args:
    params: any pytree of parameters.
    patterns: `{label: regex or sequence of regexes}`, e.g. `{'audio': r'(^|/)audio_encoder/',
      'visual': r'(^|/)visual_encoder/'}`. A bare word such as `'audio'` matches any path that
      contains it, so prefer anchored patterns when names overlap.
    default: the label of leaves that no pattern matches.

  Returns:
    A pytree of `params`' structure with a `str` label at every leaf, ready for
    `optax.partition(transforms, labels)`.

  Raises:
    ValueError: `patterns` is empty, a label equals `default`, a pattern matches no leaf (a typo
      would otherwise silently leave that modality unmodulated), or a leaf matches two labels.

  Example:
    >>> params = {'audio': {'w': 1.0}, 'visual': {'w': 2.0}, 'head': {'w': 3.0}}
    >>> modality_labels(params, {'audio': '^audio/', 'visual': '^visual/'})
    {'audio': {'w': 'audio'}, 'head': {'w': 'shared'}, 'visual': {'w': 'visual'}}
  """
  if not patterns:
    raise ValueError('patterns must map at least one modality label to a path pattern; got {}.')
  compiled = {}
  for label, pattern in patterns.items():
    if label == default:
      raise ValueError(f'patterns has a label {label!r} equal to default={default!r}; rename '
                       'one of them so that unmatched leaves stay distinguishable.')
    sources = [pattern] if isinstance(pattern, str) else list(pattern)
    compiled[label] = [re.compile(source) for source in sources]

  paths_and_leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  paths = [leaf_path(path) for path, _ in paths_and_leaves]
  used = dict.fromkeys(compiled, False)

  def label_of(path):
    rendered = leaf_path(path)
    matches = [label for label, regexes in compiled.items()
               if any(regex.search(rendered) for regex in regexes)]
    if len(matches) > 1:
      raise ValueError(f'parameter {rendered!r} matches the patterns of several modalities '
                       f'{matches}; anchor the patterns (e.g. r"(^|/)audio/") so each leaf '
                       'matches at most one.')
    if matches:
      used[matches[0]] = True
      return matches[0]
    return default

  labels = jax.tree_util.tree_map_with_path(lambda path, _: label_of(path), params)
  unused = [label for label, hit in used.items() if not hit]
  if unused:
    shown = ', '.join(repr(path) for path in paths[:8]) + (' ...' if len(paths) > 8 else '')
    raise ValueError(f'patterns for {unused} match no parameter path; the paths are: {shown}.')
  return labels
