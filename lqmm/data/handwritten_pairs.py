"""Imbalanced two-view pairs of Handwritten: one strong view with one weak view.

Modality imbalance (one modality learns fast and dominates, the other is starved) needs pairs
whose unimodal accuracies differ widely. The six Handwritten views do: a multinomial logistic
regression on each view alone gives (mean +- std over split seeds 0, 1, 2 of
`load('handwritten', seed=seed)`: 1,400 train / 200 validation / 400 test samples,
min-max scaling fitted on train; L2 weight 1e-3; trained on train, scored on test):

| view | width | test accuracy: mean +- std (seeds 0, 1, 2) |
|---|---|---|
| fac | 216 | 0.963 +- 0.001 (0.963, 0.963, 0.965) |
| pix | 240 | 0.962 +- 0.007 (0.953, 0.970, 0.963) |
| kar | 64 | 0.944 +- 0.003 (0.948, 0.945, 0.940) |
| fou | 76 | 0.830 +- 0.007 (0.835, 0.835, 0.820) |
| zer | 47 | 0.803 +- 0.014 (0.795, 0.823, 0.792) |
| mor | 6 | 0.710 +- 0.018 (0.698, 0.735, 0.698) |

Measured with `python -m lqmm.data.handwritten_pairs` (about 2 minutes on 2 CPU cores;
L-BFGS on a convex loss, so the only randomness is the split).

`HANDWRITTEN_IMBALANCED_PAIRS` matches the three strongest views with the three weakest,
strongest with weakest, into three disjoint pairs with accuracy gaps of about 25 (fac, mor),
16 (pix, zer) and 11 (kar, fou) points. Each pair is a data set of its own in
`lqmm.data.DATASETS`, `handwritten_<pair>`: the stratified protocol of Handwritten with the
pair's two views (strong first) and standard scaling::

    splits = lqmm.data.load('handwritten_fac_mor', seed=0)
    splits.train['inputs']  # {'fac': f32[1400, 216], 'mor': f32[1400, 6]}

References:
  Peng, X. et al. "Balanced Multimodal Learning via On-the-fly Gradient Modulation", CVPR
  (2022): the modality-imbalance setting.
  Duin, R. "Multiple Features", UCI Machine Learning Repository (1998).
"""

from __future__ import annotations

import numpy as np

from lqmm.data import builders

#: Strong-and-weak view pairs of Handwritten, strong view first; unimodal accuracies above.
HANDWRITTEN_IMBALANCED_PAIRS: dict[str, tuple[str, str]] = {
    'fac_mor': ('fac', 'mor'),
    'pix_zer': ('pix', 'zer'),
    'kar_fou': ('kar', 'fou'),
}


def linear_probe_accuracy(train_inputs: np.ndarray, train_labels: np.ndarray,
                          test_inputs: np.ndarray, test_labels: np.ndarray, *,
                          num_classes: int, l2: float = 1e-3, max_iterations: int = 500) -> float:
  """Test accuracy of a multinomial logistic regression fitted on the training rows.

  Minimises mean softmax cross-entropy plus `l2 / 2 * |W|^2` (bias not penalised) with
  scipy's L-BFGS-B in float64.

  Args:
    train_inputs: `[N, D]` training features.
    train_labels: int `[N]` in `[0, num_classes)`.
    test_inputs: `[M, D]` test features.
    test_labels: int `[M]`.
    num_classes: number of classes `K`.
    l2: weight of the L2 penalty.
    max_iterations: L-BFGS iterations.

  Returns:
    The fraction of test rows whose arg-max prediction equals the label.

  Raises:
    ValueError: inputs that are not 2-D, or row counts that disagree with the labels.

  >>> x = np.array([[0.0], [1.0], [2.0], [3.0]])
  >>> linear_probe_accuracy(x, np.array([0, 0, 1, 1]), x, np.array([0, 0, 1, 1]), num_classes=2)
  1.0
  """
  train_inputs, test_inputs = (np.asarray(x, np.float64) for x in (train_inputs, test_inputs))
  for name, inputs, labels in (('train_inputs', train_inputs, train_labels),
                               ('test_inputs', test_inputs, test_labels)):
    if inputs.ndim != 2 or inputs.shape[0] != np.shape(labels)[0]:
      raise ValueError(f'{name} must be [N, D] with N = len(labels) = {np.shape(labels)[0]}; '
                       f'got shape {inputs.shape}.')
  num_rows, width = train_inputs.shape
  targets = np.eye(num_classes)[np.asarray(train_labels)]

  def loss_and_gradient(flat):
    weights, bias = flat[:-num_classes].reshape(width, num_classes), flat[-num_classes:]
    logits = train_inputs @ weights + bias
    logits -= logits.max(axis=1, keepdims=True)
    log_probabilities = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    loss = -np.sum(targets * log_probabilities) / num_rows + 0.5 * l2 * np.sum(weights ** 2)
    residual = (np.exp(log_probabilities) - targets) / num_rows
    gradient = np.concatenate([(train_inputs.T @ residual + l2 * weights).ravel(),
                               residual.sum(axis=0)])
    return loss, gradient

  import scipy.optimize  # pylint: disable=g-import-not-at-top  (0.8 s; only here)
  result = scipy.optimize.minimize(loss_and_gradient, np.zeros((width + 1) * num_classes),
                                   jac=True, method='L-BFGS-B',
                                   options={'maxiter': max_iterations})
  weights, bias = result.x[:-num_classes].reshape(width, num_classes), result.x[-num_classes:]
  predictions = np.argmax(test_inputs @ weights + bias, axis=1)
  return float(np.mean(predictions == np.asarray(test_labels)))


def unimodal_accuracies(*, seeds=(0, 1, 2), l2: float = 1e-3,
                        data_dir=None) -> dict[str, np.ndarray]:
  """Each Handwritten view's `linear_probe_accuracy`, one per split seed.

  Args:
    seeds: seeds of `load('handwritten', seed=...)` (stratified 70/10/20 split, min-max
      scaling fitted on train).
    l2: weight of the L2 penalty.
    data_dir: TFDS data directory.

  Returns:
    `{view: float64 [len(seeds)]}` test accuracies, views in `HANDWRITTEN_VIEWS` order.
  """
  # Imported here: loading imports this module for the pairs' registry entries.
  from lqmm.data import loading  # pylint: disable=g-import-not-at-top
  accuracies = {view: [] for view in builders.HANDWRITTEN_VIEWS}
  for seed in seeds:
    splits = loading.load('handwritten', seed=seed, data_dir=data_dir)
    for view in accuracies:
      accuracies[view].append(linear_probe_accuracy(
          splits.train['inputs'][view], splits.train['label'], splits.test['inputs'][view],
          splits.test['label'], num_classes=splits.num_classes, l2=l2))
  return {view: np.asarray(values) for view, values in accuracies.items()}


def main() -> None:
  accuracies = unimodal_accuracies()
  for view, values in sorted(accuracies.items(), key=lambda item: -item[1].mean()):
    print(f'| {view} | {builders.HANDWRITTEN_VIEWS[view]} | '
          f'{values.mean():.3f} +- {values.std():.3f} ({", ".join(f"{v:.3f}" for v in values)}) |')


if __name__ == '__main__':
  main()
