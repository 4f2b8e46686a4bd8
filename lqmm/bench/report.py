"""Per-seed scores to tables (markdown, CSV), JSON and figures, for both suites.

Every interval is stated where it is shown: tables say "mean ± 95% half-width over n seeds"
(Student-t), plots say it in their title; plots name modalities, share the y-range of panels that
are compared, and draw a chance line where accuracy nears it.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence

import numpy as np

from lqmm import train
from lqmm import missing
from lqmm.bench import conditions as conditions_lib
from lqmm.bench import fusion_suite

#: The fusion suite's metrics per condition.
METRICS = ('accuracy', 'ece', 'uncertainty_auroc', 'covariance', 'uncertainty_clean',
           'uncertainty_noisy', 'noise_auroc')
#: Condition kinds reported in the noise-protocol table rather than the main one.
NOISE_PROTOCOLS = ('noise_combinations', 'noise_samples')


# ---------------------------------------------------------------------------------- numbers


def _t_ppf(q, dof):
  """Student's t quantile (scipy.stats imported here: it costs 0.8 s at import time)."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  return stats.t.ppf(q, dof)


def summarize(values: np.ndarray) -> dict[str, float]:
  """Mean, sample std and the half-width of the 95% t-interval of the mean over seeds."""
  values = np.asarray(values, np.float64)
  n = values.size
  if n == 0 or np.all(np.isnan(values)):
    return {'mean': math.nan, 'std': math.nan, 'ci95': math.nan, 'n': n}
  std = float(np.std(values, ddof=1)) if n > 1 else 0.0
  half = float(_t_ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else math.nan
  return {'mean': float(np.mean(values)), 'std': std, 'ci95': half, 'n': n}


def interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
  """Mean and half-width of a Student-t confidence interval over seeds (axis 0)."""
  values = np.asarray(values, np.float64)
  count = values.shape[0]
  mean = float(values.mean())
  if count < 2:
    return mean, float('nan')
  half = _t_ppf(0.5 + confidence / 2, count - 1) * values.std(ddof=1) / np.sqrt(count)
  return mean, float(half)


def difference_interval(a: np.ndarray, b: np.ndarray,
                        confidence: float = 0.95) -> tuple[float, float]:
  """Mean of `a - b` and the half-width of Welch's t interval (independent seed groups)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  var_a, var_b = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
  total = var_a + var_b
  if total == 0:
    return float(a.mean() - b.mean()), 0.0
  dof = total**2 / (var_a**2 / (len(a) - 1) + var_b**2 / (len(b) - 1))
  half = _t_ppf(0.5 + confidence / 2, dof) * np.sqrt(total)
  return float(a.mean() - b.mean()), float(half)


def mean_interval(values, digits: int = 2) -> str:
  """`'mean ± 95% half-width'` over seeds (axis 0); just the mean for a single seed."""
  mean, half = interval(values)
  return f'{mean:.{digits}f}' if math.isnan(half) else f'{mean:.{digits}f} ± {half:.{digits}f}'


def mean_std(values, digits: int = 2, *, ddof: int = 0) -> str:
  """`'mean +- std'` of `values` over seeds (population std unless `ddof=1`)."""
  values = np.asarray(values, np.float64)
  std = values.std(ddof=ddof) if values.size > ddof else float('nan')
  return f'{values.mean():.{digits}f} +- {std:.{digits}f}'


def _cell(summary, scale=100.0, digits=1):
  if math.isnan(summary['mean']):
    return 'n/a'
  ci = '' if math.isnan(summary['ci95']) else f' ± {scale * summary["ci95"]:.{digits}f}'
  return f'{scale * summary["mean"]:.{digits}f}{ci}'


def _pair(pair) -> str:
  return f'{pair[0]:.2f} ± {pair[1]:.2f}'


def to_csv(rows: Sequence[dict]) -> str:
  """Long-format CSV of summary rows; the columns are every key of any row, in first-seen
  order (a condition-specific field, such as a conflictive condition's share, is empty in
  the other rows)."""
  buffer = io.StringIO()
  if rows:
    fields = list(dict.fromkeys(key for row in rows for key in row))
    writer = csv.DictWriter(buffer, fieldnames=fields, restval='')
    writer.writeheader()
    writer.writerows(rows)
  return buffer.getvalue()


def one_line(suite: str, name: str, result, order: Sequence[str]) -> str:
  """A progress line: the method's clean accuracy, and its timing."""
  timing = f'(train {result.run_s:.1f} s + compile {result.compile_s:.1f} s)'
  if suite == 'fusion':
    clean = np.asarray(result.scores['clean']['accuracy'])
    return (f'{name:>18}: clean accuracy {100 * clean.mean():.2f} +- '
            f'{100 * clean.std(ddof=1 if clean.size > 1 else 0):.2f}, best epochs '
            f'{result.best_epoch.tolist()} {timing}')
  scores = result.scores
  return (f'{name:>18}: fused {100 * scores["fused"].mean():5.2f}  probe ' + ' '.join(
      f'{order[m]} {100 * scores["probe"][:, m].mean():5.2f}' for m in range(len(order))) +
      f'  {timing}')


# ---------------------------------------------------------------------------------- fusion


def fusion_rows(dataset: str, results: Mapping,
                conditions: Sequence[conditions_lib.Condition] = ()) -> list[dict]:
  """Long-format rows: one per (method, condition, metric), with the condition's missing-data
  spec (protocol, rate, meaning, min_views, noise) in every row."""
  specs = {condition.name: conditions_lib.spec(condition) for condition in conditions}
  out = []
  for method, result in results.items():
    for condition, scores in result.scores.items():
      record = {f'missing_{key}' if key != 'noise' else 'noise_std': value
                for key, value in specs.get(condition, {}).items()}
      for metric in METRICS:
        out.append({'dataset': dataset, 'method': method, 'condition': condition, **record,
                    'metric': metric, **summarize(scores[metric])})
  return out


def protocol_markdown(dataset: str, results: Mapping,
                      conditions: Sequence[conditions_lib.Condition], num_seeds: int) -> str:
  """Which method under which kind of missingness: one row per (protocol, rate, noise) with
  its spec, one column per method (test accuracy %, mean ± 95% CI); '' without protocols."""
  rows = [condition for condition in conditions if condition.kind == 'protocol']
  if not rows:
    return ''
  methods = list(results)
  lines = [f'### {dataset}: test accuracy (%) under missing-data protocols, mean ± 95% CI over '
           f'{num_seeds} seeds', '',
           'Every sample keeps a modality; the rate means what the protocol column says '
           '(`lqmm.missing.MEANINGS`); noise: Gaussian std on every modality on top of the mask.',
           '', '| protocol | rate meaning | rate | noise std | ' + ' | '.join(methods) + ' |',
           '|---' * (len(methods) + 4) + '|']
  for condition in rows:
    record = conditions_lib.spec(condition)
    cells = [_cell(summarize(results[method].scores[condition.name]['accuracy']))
             for method in methods]
    lines.append(f'| {record["protocol"]} | {missing.MEANINGS[record["meaning"]]} | '
                 f'{record["rate"]:g} | {record["noise"]:g} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def _condition_note(conditions: Sequence[conditions_lib.Condition]) -> str:
  noisy = [c.modality for c in conditions if c.kind == 'noise_one']
  return (f'noise_one: Gaussian noise on `{noisy[0]}` only; noise_all: on every modality; '
          'missing: share of (modality, sample) entries missing, at least one present per '
          'sample; quality: noise on one random modality per sample.' if noisy else '') + (
              ' conflictive_f: RCML\'s conflictive test set, a share f of the samples with one '
              'view taken from a sample of the next class (after Gaussian noise on some views '
              'of 10% of the samples).' if any(c.kind == 'conflictive' for c in conditions)
              else '')


def fusion_markdown(dataset: str, results: Mapping,
                    conditions: Sequence[conditions_lib.Condition], num_seeds: int) -> str:
  """Accuracy under every condition, then ECE, AUROC and covariance under a few conditions."""
  lines = [f'### {dataset}: test accuracy (%), mean ± 95% CI over {num_seeds} seeds', '',
           _condition_note(conditions), '']
  names = [condition.name for condition in conditions]
  lines.append('| method | ' + ' | '.join(names) + ' |')
  lines.append('|---' * (len(names) + 1) + '|')
  for method, result in results.items():
    cells = [_cell(summarize(result.scores[name]['accuracy'])) for name in names]
    lines.append(f'| {method} | ' + ' | '.join(cells) + ' |')
  picked = [name for name in names if name in ('clean', 'noise_all_0.5', 'missing_0.4',
                                                'quality_1')] or names[:1]
  lines += ['', f'### {dataset}: ECE (%), uncertainty AUROC for misclassification (%), '
            'Eq. 12 weight-loss covariance (×100; negative = uncertainty-aware weights), '
            f'mean ± 95% CI over {num_seeds} seeds', '']
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
    lines.append(f'| {method} | {result.run_s:.1f} | {result.compile_s:.1f} | '
                 f'{" ".join(str(int(e)) for e in result.best_epoch)} |')
  return '\n'.join(lines) + '\n'


def _protocol_phrase(condition: conditions_lib.Condition, num_modalities: int) -> str:
  if condition.kind == 'noise_combinations':
    count = conditions_lib.noisy_view_count(condition, num_modalities)
    return (f'TMC/MGP: {count} of {num_modalities} views noisy, all '
            f'{conditions_lib.replicas(condition, num_modalities)} combinations')
  return (f'FUML/RCML: {100 * condition.noise_fraction:g}% of the samples, a random subset of '
          'their views')


def noise_markdown(dataset: str, results: Mapping,
                   conditions: Sequence[conditions_lib.Condition], num_modalities: int,
                   num_seeds: int) -> str:
  """The noise protocols of the papers: per (protocol, std) the accuracy of each method, the
  mean fused uncertainty of the clean and of the noisy test samples, and the AUROC of the
  uncertainty for telling them apart; '' without such conditions."""
  rows = [condition for condition in conditions if condition.kind in NOISE_PROTOCOLS]
  if not rows:
    return ''
  methods = list(results)
  lines = [f'### {dataset}: the papers\' noise protocols, mean ± 95% CI over {num_seeds} seeds',
           '', 'acc: test accuracy (%); u clean / u noisy: mean uncertainty of the clean and of '
           'the noisy test samples (the fused u = K / S for evidential rules, 1 - max p '
           'otherwise; ×100); AUROC: the uncertainty detecting the noisy samples (%; 50 = '
           'chance, below 50 = noisy samples look *more* certain). Under TMC/MGP\'s protocol '
           'every sample is noisy, so u clean is the std-0 row\'s.', '',
           '| protocol | std | ' + ' | '.join(f'{m} acc | {m} u clean | {m} u noisy | '
                                              f'{m} AUROC' for m in methods) + ' |',
           '|---' * (4 * len(methods) + 2) + '|']
  for condition in rows:
    cells = []
    for method in methods:
      scores = results[method].scores[condition.name]
      cells += [_cell(summarize(scores[key])) for key in
                ('accuracy', 'uncertainty_clean', 'uncertainty_noisy', 'noise_auroc')]
    lines.append(f'| {_protocol_phrase(condition, num_modalities)} | {condition.level:.3g} | '
                 + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def uncertainty_plot(dataset: str, results: Mapping,
                     conditions: Sequence[conditions_lib.Condition], num_modalities: int,
                     num_seeds: int):
  """Density of the uncertainty of clean and of noisy test samples: one panel per (method,
  noise protocol), the clean samples in black, the noisy ones at each std in colour (mean of
  the per-seed densities). None without noise-protocol conditions."""
  from matplotlib import colormaps  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top

  kinds = [kind for kind in NOISE_PROTOCOLS if any(c.kind == kind for c in conditions)]
  if not kinds:
    return None
  methods = list(results)
  figure = Figure(figsize=(4.2 * len(kinds), 2.6 * len(methods)), layout='constrained')
  axes = figure.subplots(len(methods), len(kinds), squeeze=False)
  edges = np.asarray(fusion_suite.DENSITY_EDGES)
  centres = (edges[:-1] + edges[1:]) / 2
  width = edges[1] - edges[0]
  for column, kind in enumerate(kinds):
    picked = [c for c in conditions if c.kind == kind]
    noisy = [c for c in picked if c.level > 0]
    colours = colormaps['viridis'](np.linspace(0.0, 0.9, max(len(noisy), 1)))
    # Clean samples: the std-0 condition (every sample clean), else the clean samples of the
    # noisiest condition's test set.
    zero = [c for c in picked if c.level == 0]
    source = zero[0] if zero else picked[-1]
    short = ('TMC/MGP: half of the views, every combination' if kind == 'noise_combinations'
             else f'FUML: view subsets of {100 * picked[0].noise_fraction:g}% of the samples')
    for row, method in enumerate(methods):
      axis = axes[row, column]
      scores = results[method].scores
      clean = np.nanmean(np.asarray(scores[source.name]['uncertainty_density_clean']), 0)
      axis.plot(centres, clean / width, color='black', lw=1.6, label='clean')
      shares = [clean]
      for colour, condition in zip(colours, noisy):
        density = np.nanmean(np.asarray(scores[condition.name]['uncertainty_density_noisy']), 0)
        axis.plot(centres, density / width, color=colour, lw=1,
                  label=f'noisy, std {condition.level:.3g}')
        shares.append(density)
      # Up to the last bin holding 0.5% of any group.
      occupied = np.flatnonzero(np.nanmax(np.stack(shares), 0) > 0.005)
      axis.set_xlim(0.0, min(1.0, edges[occupied[-1] + 1] + width) if occupied.size else 1.0)
      axis.set_title(f'{method}, {short}', fontsize=8)
      axis.set_ylabel('density')
      axis.grid(alpha=0.3)
      if row == len(methods) - 1:
        axis.set_xlabel('uncertainty (u = K / S, or 1 - max p)')
      if row == 0:
        axis.legend(fontsize=6)
  figure.suptitle(f'{dataset}: uncertainty of clean and noisy test samples (mean density over '
                  f'{num_seeds} seeds)')
  return figure


def fusion_plot(dataset: str, results: Mapping, conditions: Sequence[conditions_lib.Condition],
                num_classes: int, num_seeds: int):
  """One panel per condition kind, sharing the accuracy axis; a line (95% CI) per method."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top

  kinds = [kind for kind in conditions_lib.KINDS[1:]
           if any(condition.kind == kind for condition in conditions)]
  figure = Figure(figsize=(4 * max(len(kinds), 1), 3.6), layout='constrained')
  axes = figure.subplots(1, max(len(kinds), 1), squeeze=False, sharey=True)[0]
  clean = [c for c in conditions if c.kind == 'clean']
  noisy = next((c.modality for c in conditions if c.kind == 'noise_one'), None)
  labels = {'noise_all': 'noise std (every modality)', 'noise_one': f'noise std ({noisy} only)',
            'missing': 'missing rate', 'quality': 'noise std (one random modality per sample)',
            'conflictive': 'share of samples with a conflicting view (RCML)',
            'noise_combinations': 'noise std (half of the views, every combination; TMC/MGP)',
            'noise_samples': 'noise std (view subsets of half of the samples; FUML)'}
  for axis, kind in zip(axes, kinds):
    picked = clean + [c for c in conditions if c.kind == kind]
    levels = [c.level for c in picked]
    for method, result in results.items():
      summaries = [summarize(result.scores[c.name]['accuracy']) for c in picked]
      means = np.array([s['mean'] for s in summaries]) * 100
      errors = np.nan_to_num(np.array([s['ci95'] for s in summaries]) * 100)
      axis.errorbar(levels, means, yerr=errors, marker='o', markersize=3, capsize=2, label=method)
    axis.axhline(100 / num_classes, color='gray', lw=0.8, ls=':', label='chance')
    axis.set_xlabel(labels[kind])
    if kind in NOISE_PROTOCOLS:
      axis.set_xscale('symlog', linthresh=0.01)
    axis.grid(alpha=0.3)
  axes[0].set_ylabel('test accuracy (%)')
  axes[0].set_ylim(0, 100)
  axes[0].legend(fontsize=7)
  figure.suptitle(f'{dataset}: accuracy under low-quality test data (mean ± 95% CI over '
                  f'{num_seeds} seeds)')
  return figure


# ---------------------------------------------------------------------------------- imbalance


def _ratio(train_scores: np.ndarray, num_modalities: int) -> np.ndarray:
  """`[..., epochs]` score ratio: s_0 / s_1 for two modalities, max / min otherwise."""
  if num_modalities == 2:
    return train_scores[..., 0] / train_scores[..., 1]
  return train_scores.max(-1) / train_scores.min(-1)


def imbalance_summary(results: Mapping, order: Sequence[str]) -> list[dict]:
  """One row per method (not `alone`): accuracies, probe gaps and the final imbalance ratio.

  Accuracies are in percent, as `(mean, 95% half-width)` over seeds. `gap_<m>` is
  `probe(alone:m) - probe(method)` for modality m; `ratio` is the training-split score ratio
  (`s_0 / s_1` for M = 2, `max s / min s` otherwise) of the last epoch.
  """
  rows = []
  for name, result in results.items():
    if name.startswith('alone:'):
      continue
    scores = result.scores
    row = {'method': name, 'fused': interval(100 * scores['fused'])}
    for index, modality in enumerate(order):
      row[f'unimodal_{modality}'] = interval(100 * scores['unimodal'][:, index])
      row[f'probe_{modality}'] = interval(100 * scores['probe'][:, index])
      reference = results.get(f'alone:{index}')
      if reference is not None:
        row[f'gap_{modality}'] = difference_interval(
            100 * reference.scores['probe'][:, index], 100 * scores['probe'][:, index])
    train_scores = result.history.get('train/scores')
    if train_scores is not None and train_scores.size:
      row['ratio'] = interval(_ratio(train_scores[:, -1], len(order)))
    rows.append(row)
  return rows


def imbalance_columns(order: Sequence[str]) -> list[str]:
  return (['fused'] + [f'unimodal_{m}' for m in order] + [f'probe_{m}' for m in order] +
          [f'gap_{m}' for m in order] + ['ratio'])


def imbalance_markdown(rows: Sequence[dict], order: Sequence[str], results: Mapping,
                       num_seeds: int) -> str:
  """The report table (`mean ± 95% half-width` cells), plus each modality trained alone."""
  columns = imbalance_columns(order)
  lines = [f'Test accuracy (%) and probe gaps (points), mean ± 95% half-width over {num_seeds} '
           'seeds (gaps: Welch interval against the modality trained alone).', '',
           '| method | ' + ' | '.join(columns) + ' |', '|' + '---|' * (len(columns) + 1)]
  for row in rows:
    lines.append(f'| {row["method"]} | ' + ' | '.join(
        _pair(row[column]) if column in row else '' for column in columns) + ' |')
  lines.append('')
  for index, modality in enumerate(order):
    reference = results.get(f'alone:{index}')
    if reference is None:
      continue
    probe = interval(100 * reference.scores['probe'][:, index])
    fused = interval(100 * reference.scores['fused'])
    lines.append(f'- {modality} trained alone: accuracy {_pair(fused)}, probe {_pair(probe)}')
  lines += ['', '| method | train s (all seeds) | compile s | best epochs |', '|---|---|---|---|']
  for method, result in results.items():
    lines.append(f'| {method} | {result.run_s:.1f} | {result.compile_s:.1f} | '
                 f'{" ".join(str(int(e)) for e in result.best_epoch)} |')
  return '\n'.join(lines) + '\n'


def imbalance_csv_rows(dataset: str, rows: Sequence[dict], order: Sequence[str]) -> list[dict]:
  """Long-format rows: one per (method, column) with mean and 95% half-width."""
  out = []
  for row in rows:
    for column in imbalance_columns(order):
      if column in row:
        out.append({'dataset': dataset, 'method': row['method'], 'metric': column,
                    'mean': row[column][0], 'ci95': row[column][1]})
  return out


def imbalance_plot(dataset: str, results: Mapping, order: Sequence[str], num_seeds: int):
  """Imbalance ratio over training (mean, 95% band) and probe gaps with 95% intervals."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top

  rows = imbalance_summary(results, order)
  figure = Figure(figsize=(12, 4.5), layout='constrained')
  ratio_axis, gap_axis = figure.subplots(1, 2)
  drawn = 0
  for name, result in results.items():
    train_scores = result.history.get('train/scores')
    if name.startswith('alone:') or train_scores is None or not train_scores.size:
      continue
    ratio = _ratio(train_scores, len(order))  # [S, epochs]
    epochs = np.arange(1, ratio.shape[1] + 1)
    bands = [interval(ratio[:, epoch]) for epoch in range(ratio.shape[1])]
    mean = np.array([band[0] for band in bands])
    half = np.nan_to_num(np.array([band[1] for band in bands]))
    # Ten colours, then the same colours dashed: every method stays distinguishable.
    line, = ratio_axis.plot(epochs, mean, label=name, lw=1,
                            linestyle=('-', '--', ':')[drawn // 10 % 3])
    drawn += 1
    ratio_axis.fill_between(epochs, mean - half, mean + half, color=line.get_color(), alpha=0.12)
  ratio_axis.axhline(1.0, color='gray', lw=0.8)
  ratio_axis.set_xlabel('epoch')
  ratio_axis.set_ylabel(f'training score ratio {order[0]} / {order[1]}' if len(order) == 2
                        else 'max / min modality training score')
  ratio_axis.set_title('imbalance ratio on the training split (mean, 95% band)', fontsize=9)
  ratio_axis.legend(fontsize=7, ncol=2)
  width = 0.8 / len(order)
  positions = np.arange(len(rows))
  for index, modality in enumerate(order):
    key = f'gap_{modality}'
    means = [row[key][0] if key in row else np.nan for row in rows]
    halves = [row[key][1] if key in row else np.nan for row in rows]
    gap_axis.bar(positions + index * width, means, width, yerr=halves, label=modality,
                 capsize=2)
  gap_axis.axhline(0.0, color='gray', lw=0.8)
  gap_axis.set_xticks(positions + width * (len(order) - 1) / 2)
  gap_axis.set_xticklabels([row['method'] for row in rows], rotation=45, ha='right', fontsize=8)
  gap_axis.set_ylabel('probe(alone) - probe(method), points')
  gap_axis.set_title('under-optimisation gap per modality (95% Welch interval)', fontsize=9)
  gap_axis.legend(fontsize=8, title='encoder of')
  figure.suptitle(f'{dataset}: {num_seeds} seeds per method')
  return figure


# ---------------------------------------------------------------------------------- files


def _json_ready(value):
  if isinstance(value, Mapping):
    return {str(key): _json_ready(item) for key, item in value.items()}
  if isinstance(value, np.ndarray | np.generic):
    return np.asarray(value).tolist()
  if isinstance(value, tuple | list):
    return [_json_ready(item) for item in value]
  return value


def write(config, splits, results: Mapping, conditions, workdir) -> str:
  """Writes `results.md`, `results.csv`, `results.json` and the figure; returns the table."""
  dataset, seeds, order = config.data.name, config.train.num_seeds, splits.order
  header = (f'{config.suite} suite on {dataset} ({splits.protocol} split; '
            f'{splits.sizes["train"]} train / {splits.sizes["validation"]} validation / '
            f'{splits.sizes["test"]} test), {seeds} seeds, {config.train.num_epochs} epochs, '
            'parameters selected on validation.\n\n')
  if config.suite == 'fusion':
    plain = [condition for condition in conditions if condition.kind != 'protocol']
    table = header + fusion_markdown(
        dataset, results, [c for c in plain if c.kind not in NOISE_PROTOCOLS], seeds)
    for extra in (protocol_markdown(dataset, results, conditions, seeds),
                  noise_markdown(dataset, results, conditions, len(order), seeds)):
      if extra:
        table += '\n' + extra
    rows = fusion_rows(dataset, results, conditions)
    figures = {'robustness.png': fusion_plot(dataset, results, plain, splits.num_classes,
                                             seeds)}
    densities = uncertainty_plot(dataset, results, conditions, len(order), seeds)
    if densities is not None:
      figures['uncertainty.png'] = densities
  else:
    summary = imbalance_summary(results, order)
    table = header + imbalance_markdown(summary, order, results, seeds)
    rows = imbalance_csv_rows(dataset, summary, order)
    figures = {'imbalance.png': imbalance_plot(dataset, results, order, seeds)}
  serialisable = {
      'suite': config.suite, 'dataset': dataset, 'order': list(order), 'num_seeds': seeds,
      'sizes': splits.sizes,
      'conditions': None if conditions is None else [c._asdict() for c in conditions],
      'methods': {name: {'scores': _json_ready(result.scores),
                         'best_epoch': result.best_epoch.tolist(),
                         'history': _json_ready(result.history),
                         'compile_s': result.compile_s, 'run_s': result.run_s}
                  for name, result in results.items()}}
  train.write_results(workdir, table=table, results=serialisable, figures=figures,
                      files={'results.csv': to_csv(rows)})
  return table
