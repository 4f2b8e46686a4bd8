"""Reference values from CPM-Nets' original code (hanmenghan/CPM_Nets, TensorFlow 1 graph).

Builds the original `util.model.CPMNets` (its graph and session, unmodified), loads seeded
latent vectors into its training latent variable, and evaluates its classification loss
(`loss[1]`, the structured hinge summed over the training set) for seeded labels; and runs the
original `util.classfiy.ave` (class-mean similarity prediction) on seeded test latents. Writes
`data/cpm_vectors.npz` for `tests/losses/test_cpm.py`.

Shim: the original is TensorFlow 1 code (`tf.placeholder`, `tf.Session`); it runs under
TensorFlow 2's `tensorflow.compat.v1` with v2 behaviour disabled, installed as the
`tensorflow` module before the original is imported.

Usage (a separate environment with tensorflow-cpu, numpy, scikit-learn):
  python tests/reference/generate_cpm_vectors.py --cpm-dir <CPM_Nets checkout> \
      --out tests/reference/data/cpm_vectors.npz
"""

import argparse
import hashlib
import pathlib
import sys

import numpy as np

CASES = [(40, 4, 5), (60, 3, 8), (90, 10, 16)]  # (training samples, classes, latent width)


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--cpm-dir', required=True, type=pathlib.Path)
  parser.add_argument('--out', required=True, type=pathlib.Path)
  args = parser.parse_args()
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  tf.disable_v2_behavior()
  sys.modules['tensorflow'] = tf
  sys.path.insert(0, str(args.cpm_dir))
  from util import classfiy  # pylint: disable=g-import-not-at-top
  from util import model as model_lib  # pylint: disable=g-import-not-at-top

  out = {'num_cases': len(CASES)}
  rng = np.random.RandomState(0)
  for case, (num_train, classes, width) in enumerate(CASES):
    tf.reset_default_graph()
    labels = np.concatenate([np.arange(1, classes + 1),  # every class present, from 1
                             rng.randint(1, classes + 1, num_train - classes)])
    rng.shuffle(labels)
    h_train = rng.normal(size=(num_train, width)).astype(np.float32)
    h_train += 0.7 * np.eye(classes, width, dtype=np.float32)[labels - 1]
    h_test = rng.normal(size=(7, width)).astype(np.float32)
    network = model_lib.CPMNets(2, num_train, 7, [[6, 3], [6, 4]], lsd_dim=width)
    network.h_train.load(h_train, network.sess)
    loss = network.sess.run(network.loss[1], feed_dict={
        network.h_index: np.arange(num_train).reshape(num_train, 1), network.gt: labels})
    predicted = classfiy.ave(h_train, h_test, labels.reshape(-1, 1))
    out.update({f'{case}/h_train': h_train, f'{case}/labels': labels,
                f'{case}/classes': classes, f'{case}/loss': np.float64(loss),
                f'{case}/h_test': h_test, f'{case}/predicted': np.asarray(predicted).ravel()})
    network.sess.close()
  for name in ('util/model.py', 'util/classfiy.py'):
    out[f'sha256/{name}'] = hashlib.sha256((args.cpm_dir / name).read_bytes()).hexdigest()
  out['tensorflow'] = tf.__version__ if hasattr(tf, '__version__') else 'unknown'
  args.out.parent.mkdir(parents=True, exist_ok=True)
  np.savez_compressed(args.out, **out)
  print(f'wrote {args.out}: {len(CASES)} cases, losses',
        [float(out[f'{case}/loss']) for case in range(len(CASES))])


if __name__ == '__main__':
  main()
