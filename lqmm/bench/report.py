"""Aggregates per-seed scores into tables (markdown, CSV) and robustness plots."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats as scipy_stats

from lqmm.bench import conditions as conditions_lib

METRICS = ('accuracy', 'ece', 'uncertainty_auroc', 'covariance')


def summarize(values: np.ndarray) -> dict[str, float]:
  """Mean, sample std and the half-width of the 95% t-interval of the mean over seeds."""
  values = np.asarray(values, np.float64)
  n = values.size
  if n == 0 or np.all(np.isnan(values)):
    return {'mean': math.nan, 'std': math.nan, 'ci95': math.nan, 'n': n}
  std = float(np.std(values, ddof=1)) if n > 1 else 0.0
  half = float(scipy_stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else math.nan
  return {'mean': float(np.mean(values)), 'std': std, 'ci95': half, 'n': n}


def rows(dataset: str, results: Mapping) -> list[dict]:
  """Long-format rows: one per (method, condition, metric)."""
  out = []
  for method, result in results.items():
    for condition, scores in result.scores.items():
      for metric in METRICS:
        summary = summarize(scores[metric])
        out.append({'dataset': dataset, 'method': method, 'condition': condition,
                    'metric': metric, **summary})
  return out


def to_csv(all_rows: Sequence[dict]) -> str:
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=['dataset', 'method', 'condition', 'metric', 'mean',
                                              'std', 'ci95', 'n'])
  writer.writeheader()
  writer.writerows(all_rows)
  return buffer.getvalue()


def _cell(summary, scale=100.0, digits=1):
  if math.isnan(summary['mean']):
    return 'n/a'
  ci = '' if math.isnan(summary['ci95']) else f' ± {scale * summary["ci95"]:.{digits}f}'
  return f'{scale * summary["mean"]:.{digits}f}{ci}'


def markdown(dataset: str, results: Mapping, conditions: Sequence[conditions_lib.Condition],
             num_seeds: int) -> str:
  """Accuracy under every condition, then ECE, AUROC and covariance under a few conditions."""
  lines = [f'### {dataset}: test accuracy (%), mean ± 95% CI over {num_seeds} seeds', '']
  names = [condition.name for condition in conditions]
  lines.append('| method | ' + ' | '.join(names) + ' |')
  lines.append('|---' * (len(names) + 1) + '|')
  for method, result in results.items():
    cells = [_cell(summarize(result.scores[name]['accuracy'])) for name in names]
    lines.append(f'| {method} | ' + ' | '.join(cells) + ' |')
  picked = [name for name in names if name in ('clean', 'noise_all_0.5', 'missing_0.4',
                                                'quality_1')] or names[:1]
  lines += ['', f'### {dataset}: ECE (%), uncertainty AUROC for misclassification (%), '
            'Eq. 12 weight-loss covariance (×100; negative = uncertainty-aware weights)', '']
  header = ['method'] + [f'{metric} {name}' for name in picked
                         for metric in ('ECE', 'AUROC', 'cov')]
  lines.append('| ' + ' | '.join(header) + ' |')
  lines.append('|---' * len(header) + '|')
  for method, result in results.items():
    cells = []
    for name in picked:
      scores = result.scores[name]
      cells += [_cell(summarize(scores['ece'])), _cell(summarize(scores['uncertainty_auroc'])),
                _cell(summarize(scores['covariance']), digits=2)]
    lines.append(f'| {method} | ' + ' | '.join(cells) + ' |')
  lines += ['', '| method | train s (all seeds) | compile s | best epochs |', '|---|---|---|---|']
  for method, result in results.items():
    lines.append(f'| {method} | {result.train_s:.1f} | {result.compile_s:.1f} | '
                 f'{" ".join(str(int(e)) for e in result.best_epoch)} |')
  return '\n'.join(lines) + '\n'


def plot(dataset: str, results: Mapping, conditions: Sequence[conditions_lib.Condition], path):
  """One panel per condition kind: accuracy against level, a line (with 95% CI) per method."""
  from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top
  from matplotlib import figure  # pylint: disable=g-import-not-at-top

  kinds = [kind for kind in conditions_lib.KINDS[1:]
           if any(condition.kind == kind for condition in conditions)]
  fig = figure.Figure(figsize=(4 * max(len(kinds), 1), 3.4), layout='constrained')
  backend_agg.FigureCanvasAgg(fig)
  axes = fig.subplots(1, max(len(kinds), 1), squeeze=False)[0]
  clean = [c for c in conditions if c.kind == 'clean']
  labels = {'noise_all': 'noise std (all modalities)', 'noise_one': 'noise std (first modality)',
            'missing': 'missing rate', 'quality': 'noise std (one random modality per sample)'}
  for axis, kind in zip(axes, kinds):
    picked = clean + [c for c in conditions if c.kind == kind]
    levels = [c.level for c in picked]
    for method, result in results.items():
      summaries = [summarize(result.scores[c.name]['accuracy']) for c in picked]
      means = np.array([s['mean'] for s in summaries]) * 100
      errors = np.nan_to_num(np.array([s['ci95'] for s in summaries]) * 100)
      axis.errorbar(levels, means, yerr=errors, marker='o', markersize=3, capsize=2, label=method)
    axis.set_xlabel(labels[kind])
    axis.set_ylabel('test accuracy (%)')
    axis.grid(alpha=0.3)
  axes[0].legend(fontsize=7)
  fig.suptitle(f'{dataset}: accuracy under low-quality test data')
  fig.savefig(path, dpi=110)
