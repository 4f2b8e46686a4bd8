"""Fusing noisy sensors of one scene by weighted total variation (the survey's Eq. 1-2).

Protocol: every image of `config.data.modalities` (grey test images from
`lqmm.data.load_image`, values in [0, 1]) is observed by M sensors, sensor m adding Gaussian
noise of known std `config.sensors.stds[m]`; `config.draws` independent draws per image
(keys `fold_in(key(seed), draw)`). Each method fuses the M noisy copies into one image:

- `mean`: the plain mean of the sensors.
- `weighted_mean`: the inverse-variance weighted mean (weights 1 / std^2; no regularisation).
- `tv_mean`: scikit-image's TV denoising (`lqmm.denoise.tv_chambolle`, Chambolle's algorithm
  with its stopping rule) of the plain mean.
- `tv_weighted_mean`: the same of the weighted mean. With one weight per sensor, weighted TV
  fusion has the same minimiser (ROF of the weighted mean at weight lam / sum_m w_m), so this
  row checks `tv_fusion` by another algorithm; per-pixel weights have no such shortcut.
- `tv_fusion`: weighted TV fusion (`lqmm.denoise.tv_fusion`): argmin of
  `1/2 sum_m w_m ||u - f_m||^2 + lam TV(u)` with w_m = 1 / std_m^2, by Chambolle-Pock.

Scores (`lqmm.metrics`): PSNR and SSIM against the clean image (data range 1), for every
sensor and every method, mean +- 95% t-interval over the draws. The TV strengths are chosen
on a calibration draw (key `fold_in(key(seed), 10**6)`, every image) as the grid value with the
best mean PSNR, never on the scored draws; for `tv_fusion` the grid value is the equivalent
ROF weight, lam = value x sum_m w_m. Seconds per image of each method are measured after
compilation.

    python -m experiments.tv_fusion.train --config=experiments/tv_fusion/configs/default.py \
        --workdir=$PWD/workdir/tv_fusion
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from lqmm import checks
from lqmm import data
from lqmm import denoise
from lqmm import metrics
from lqmm import train
from lqmm.bench import report

# ---------------------------------------------------------------- names
METHODS = {
    'mean': 'plain mean',
    'weighted_mean': 'inverse-variance weighted mean',
    'tv_mean': 'TV-denoised mean (tv_chambolle)',
    'tv_weighted_mean': 'TV-denoised weighted mean (tv_chambolle)',
    'tv_fusion': 'weighted TV fusion (tv_fusion)',
}
#: Methods with a strength chosen on the calibration draw.
TUNED = ('tv_mean', 'tv_weighted_mean', 'tv_fusion')
CALIBRATION_DRAW = 10 ** 6
#: How the sensors' noise varies over the image (see `noise_maps`).
LAYOUTS = ('uniform', 'stripes')
RESUMABLE = ()


# ---------------------------------------------------------------- data
def load_images(config) -> dict[str, np.ndarray]:
  """The clean images `{name: [H, W]}` in [0, 1], cropped to `config.crop`."""
  images = {}
  for name in config.data.modalities:
    image = data.load_image(name)
    if config.crop is not None:
      height, width = config.crop
      image = image[:height, :width]
    images[name] = image
  return images


def noise_maps(config, shape) -> jax.Array:
  """`[M, H, W]` each sensor's noise std at every pixel.

  'uniform': sensor m has std `stds[m]` everywhere. 'stripes': sensor m has std `stds[m]`
  except on the first m of M equal column bands, where its std is `config.sensors.bad_std`:
  band b has M - 1 - b bad sensors, so the weighted mean's noise (and the best TV strength)
  changes from band to band.
  """
  stds = np.asarray(config.sensors.stds, np.float32)
  maps = np.broadcast_to(stds[:, None, None], (stds.size,) + tuple(shape)).copy()
  if config.sensors.layout == 'stripes':
    edges = np.linspace(0, shape[1], stds.size + 1).round().astype(int)
    for sensor in range(stds.size):
      maps[sensor, :, :edges[sensor]] = config.sensors.bad_std
  return jnp.asarray(maps)


def sensors(clean: jax.Array, maps: jax.Array, key) -> jax.Array:
  """`[M, H, W]`: the clean image plus Gaussian noise of std `maps[m]` for sensor m."""
  return clean[None] + maps * jax.random.normal(key, maps.shape, clean.dtype)


# ---------------------------------------------------------------- methods
def fuse(method: str, observed: jax.Array, maps: jax.Array, strength, config) -> jax.Array:
  """One method's fused image `[H, W]` from the sensors `[M, H, W]` and their noise maps."""
  weights = 1.0 / maps ** 2                                       # per pixel, [M, H, W]
  weighted_mean = jnp.sum(weights * observed, axis=0) / jnp.sum(weights, axis=0)
  if method == 'mean':
    return jnp.mean(observed, axis=0)
  if method == 'weighted_mean':
    return weighted_mean
  if method in ('tv_mean', 'tv_weighted_mean'):
    source = jnp.mean(observed, axis=0) if method == 'tv_mean' else weighted_mean
    return denoise.tv_chambolle(source, weight=strength, eps=config.tv.eps,
                                max_num_iter=config.tv.max_num_iter)
  # lam = the ROF weight x the mean total weight (one scale for the whole image).
  return denoise.tv_fusion(observed, weights,
                           lam=strength * jnp.mean(jnp.sum(weights, axis=0)),
                           num_iter=config.tv.num_iter).image


def scores(clean, image) -> tuple[jax.Array, jax.Array]:
  return (metrics.peak_signal_noise_ratio(clean, image, data_range=1.0),
          metrics.structural_similarity(clean, image, data_range=1.0))


def _program(method: str, config):
  """jit(vmap over draws): `(clean, maps, keys, strength) -> (psnr [S], ssim [S])`."""
  def one(clean, maps, key, strength):
    return scores(clean, fuse(method, sensors(clean, maps, key), maps, strength, config))
  return jax.jit(jax.vmap(one, in_axes=(None, None, 0, None)))


def calibrate(images, key, config) -> dict:
  """Each tuned method's grid PSNR on the calibration draw; returns `{method: {'grid': [...],
  'psnr': [[image, value]], 'chosen': value}}`."""
  out = {}
  calibration = jax.random.fold_in(key, CALIBRATION_DRAW)
  for method in config.methods:
    if method not in TUNED:
      continue
    program = _program(method, config)
    table = np.array([[float(program(jnp.asarray(clean), noise_maps(config, clean.shape),
                                     calibration[None], value)[0][0])
                       for value in config.grid] for clean in images.values()])
    out[method] = {'grid': list(config.grid), 'psnr': table.tolist(),
                   'chosen': float(config.grid[int(np.argmax(table.mean(axis=0)))])}
  return out


# ---------------------------------------------------------------- config check
def check(config) -> None:
  """Validates the config before anything is written."""
  if not config.data.modalities:
    raise ValueError('config.data.modalities must name at least one image of '
                     f'lqmm.data.IMAGES: {sorted(data.IMAGES)}.')
  for name in config.data.modalities:
    checks.lookup(data.IMAGES, name, 'image (config.data.modalities)')
  if config.crop is not None:
    if len(config.crop) != 2:
      raise ValueError(f'config.crop must be (height, width); got {config.crop}.')
    for size in config.crop:
      train.check_integer(size, 'config.crop', minimum=7)
  if len(config.sensors.stds) < 1:
    raise ValueError('config.sensors.stds must give one noise std per sensor; got ().')
  train.check_numbers(config.sensors.stds, 'config.sensors.stds', minimum=0.0,
                      open_minimum=True)
  checks.lookup(dict.fromkeys(LAYOUTS), config.sensors.layout, 'config.sensors.layout')
  train.check_number(config.sensors.bad_std, 'config.sensors.bad_std', minimum=0.0,
                     open_minimum=True)
  train.check_integer(config.draws, 'config.draws', minimum=1)
  train.check_integer(config.seed, 'config.seed', minimum=0)
  if not config.methods:
    raise ValueError('config.methods is empty; name at least one of ' + ', '.join(METHODS))
  for method in config.methods:
    checks.lookup(METHODS, method, 'method')
  if any(method in TUNED for method in config.methods):
    if not config.grid:
      raise ValueError('config.grid is empty: the TV methods need strengths to choose from.')
    train.check_numbers(config.grid, 'config.grid', minimum=0.0, open_minimum=True)
  train.check_number(config.tv.eps, 'config.tv.eps', minimum=0.0)
  train.check_integer(config.tv.max_num_iter, 'config.tv.max_num_iter', minimum=1)
  train.check_integer(config.tv.num_iter, 'config.tv.num_iter', minimum=1)


# ---------------------------------------------------------------- run
def train_and_evaluate(config, workdir) -> dict:
  """Scores every sensor and method on every image and draw; returns the results."""
  check(config)
  images = load_images(config)
  key = jax.random.key(config.seed)
  keys = jax.vmap(lambda draw: jax.random.fold_in(key, draw))(jnp.arange(config.draws))
  writer = train.MetricWriter(workdir)
  writer.start(config.to_dict(), resumable=RESUMABLE)
  calibration = calibrate(images, key, config)
  inputs = jax.jit(jax.vmap(lambda clean, maps, key: jax.vmap(
      lambda image: scores(clean, image))(sensors(clean, maps, key)), in_axes=(None, None, 0)))
  results = {'images': list(images), 'shapes': {name: list(image.shape)
                                                for name, image in images.items()},
             'stds': [float(std) for std in config.sensors.stds], 'draws': config.draws,
             'layout': config.sensors.layout, 'bad_std': float(config.sensors.bad_std),
             'calibration': calibration, 'methods': {}, 'inputs': {}}
  for name, clean in images.items():
    psnr, ssim = inputs(jnp.asarray(clean), noise_maps(config, clean.shape), keys)  # [S, M]
    results['inputs'][name] = {'psnr': np.asarray(psnr).tolist(),
                               'ssim': np.asarray(ssim).tolist()}
  for method in config.methods:
    strength = calibration.get(method, {}).get('chosen', 0.0)
    program = _program(method, config)
    outcome = {'strength': strength, 'psnr': {}, 'ssim': {}, 'seconds_per_image': {}}
    for name, clean in images.items():
      maps = noise_maps(config, clean.shape)
      clean = jnp.asarray(clean)
      jax.block_until_ready(program(clean, maps, keys, strength))         # compile
      start = time.perf_counter()
      psnr, ssim = jax.block_until_ready(program(clean, maps, keys, strength))
      outcome['seconds_per_image'][name] = (time.perf_counter() - start) / config.draws
      outcome['psnr'][name] = np.asarray(psnr).tolist()
      outcome['ssim'][name] = np.asarray(ssim).tolist()
      writer.write(0, {f'{method}/{name}/psnr': float(np.mean(psnr)),
                       f'{method}/{name}/ssim': float(np.mean(ssim))})
    if method == 'tv_fusion':
      # Convergence: the energy's relative change over the second half of the steps (draw 0).
      outcome['energy_change_second_half'] = {}
      for name, clean in images.items():
        maps = noise_maps(config, clean.shape)
        observed = sensors(jnp.asarray(clean), maps, keys[0])
        weights = 1.0 / maps ** 2
        energy = np.asarray(denoise.tv_fusion(
            observed, weights, lam=strength * jnp.mean(jnp.sum(weights, axis=0)),
            num_iter=config.tv.num_iter).energy)
        half = energy[len(energy) // 2 - 1]
        outcome['energy_change_second_half'][name] = float((half - energy[-1]) / energy[-1])
    results['methods'][method] = outcome
  writer.close()
  train.write_results(workdir, table=make_table(results), results=results,
                      figures={'fusion.png': make_figure(images, key, calibration, config)})
  return results


# ---------------------------------------------------------------- report
def make_table(results) -> str:
  stds = ', '.join(f'{std:g}' for std in results['stds'])
  where = ('' if results['layout'] == 'uniform' else
           f', except std {results["bad_std"]:g} on the first m of {len(results["stds"])} '
           'column bands for sensor m')
  lines = [f'{len(results["stds"])} sensors with noise std {stds}{where}; {results["draws"]} '
           'noise draws per image; PSNR (dB) and SSIM against the clean image, mean ± 95% CI over '
           'the draws. TV strengths chosen on a separate calibration draw: ' + ', '.join(
               f'{method} {entry["chosen"]:g}' for method, entry in
               results['calibration'].items()) + '.', '']
  for name in results['images']:
    lines += [f'### {name} {tuple(results["shapes"][name])}', '',
              '| input / method | PSNR | SSIM | seconds per image |', '|---|---|---|---|']
    psnr = np.asarray(results['inputs'][name]['psnr'])
    ssim = np.asarray(results['inputs'][name]['ssim'])
    for sensor, std in enumerate(results['stds']):
      mark = '*' if where else ''
      lines.append(f'| sensor {sensor} (std {std:g}{mark}) | '
                   f'{report.mean_interval(psnr[:, sensor])} | '
                   f'{report.mean_interval(ssim[:, sensor], 4)} | |')
    for method, outcome in results['methods'].items():
      lines.append(f'| {METHODS[method]} | {report.mean_interval(outcome["psnr"][name])} | '
                   f'{report.mean_interval(outcome["ssim"][name], 4)} | '
                   f'{outcome["seconds_per_image"][name]:.4f} |')
    lines.append('')
  change = results['methods'].get('tv_fusion', {}).get('energy_change_second_half')
  if change:
    lines.append('tv_fusion convergence (draw 0): relative energy change over the second half '
                 'of the steps: ' + ', '.join(f'{name} {value:.1e}'
                                              for name, value in change.items()) + '.')
  return '\n'.join(lines)


def make_figure(images, key, calibration, config):
  """The first image: clean, the last sensor, the plain mean and each TV method (draw 0)."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  name, clean = next(iter(images.items()))
  maps = noise_maps(config, clean.shape)
  clean = jnp.asarray(clean)
  observed = sensors(clean, maps, jax.random.fold_in(key, 0))
  panels = [('clean', clean), ('the last sensor', observed[-1])]
  for method in ('mean',) + tuple(m for m in TUNED if m in config.methods):
    strength = calibration.get(method, {}).get('chosen', 0.0)
    fused = fuse(method, observed, maps, strength, config)
    panels.append((f'{method}: {float(scores(clean, fused)[0]):.1f} dB', fused))
  figure = Figure(figsize=(3 * len(panels), 3.2), dpi=100)
  for index, (title, image) in enumerate(panels):
    axis = figure.add_subplot(1, len(panels), index + 1)
    axis.imshow(np.clip(np.asarray(image), 0, 1), cmap='gray', vmin=0, vmax=1)
    axis.set_title(title, fontsize=9)
    axis.axis('off')
  figure.suptitle(name, fontsize=10)
  figure.tight_layout()
  return figure


if __name__ == '__main__':
  train.run_experiment(train_and_evaluate)
