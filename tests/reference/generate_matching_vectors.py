"""Reference vectors for lqmm.losses.matching and lqmm.metrics.retrieval_recall from the
original code: NCR's `ContrastiveLoss` and `i2t` / `t2i` (XLearning-SCU/2021-NeurIPS-NCR),
RINCE's MoCo v3 `contrastive_loss` (chingyaoc/RINCE) and DataComp's `get_threshold`
(mlfoundations/datacomp). See PROVENANCE_matching.md.

Run in the PyTorch scratch environment with checkouts of the three repositories:

    /work/torch-venv/bin/python tests/reference/generate_matching_vectors.py \
        --ncr-dir <NCR checkout>/NCR --rince-dir <RINCE checkout>/ImageNet/moco-v3/moco \
        --datacomp-dir <datacomp checkout> --out tests/reference/data/matching_vectors.npz
"""

import sys
import types

import numpy as np

SEED = 20261207
PINNED = {
    'ncr': {'model.py': None, 'evaluation.py': None},
    'rince': {'builder.py': None},
    'datacomp': {'baselines/apply_filter.py': None},
}
#: (batch, margin, labels mode: None / 'column' ([B]) / 'row' ([B, 1]), soft margin).
HINGE_CASES = [
    (6, 0.2, None, 'linear'),
    (7, 0.2, 'column', 'linear'),
    (7, 0.2, 'row', 'linear'),
    (5, 0.5, 'column', 'exponential'),
    (5, 0.5, 'row', 'sin'),
]


def main(argv=None) -> None:
  import original_code  # pylint: disable=import-outside-toplevel

  parser = original_code.argument_parser(__doc__, {
      'ncr': 'the NCR/ folder of XLearning-SCU/2021-NeurIPS-NCR',
      'rince': 'the ImageNet/moco-v3/moco/ folder of chingyaoc/RINCE',
      'datacomp': 'a checkout of mlfoundations/datacomp'})
  args = parser.parse_args(argv)
  import torch  # pylint: disable=import-outside-toplevel

  torch.set_default_dtype(torch.float64)
  out = {}
  for name, root in (('ncr', args.ncr_dir), ('rince', args.rince_dir),
                     ('datacomp', args.datacomp_dir)):
    for file, digest in original_code.check_sha256(root, PINNED[name]).items():
      out[f'sha256_{name}_{file}'] = np.array(digest)
  rng = np.random.default_rng(SEED)

  # ------------------------------------------------------------ NCR's hinge and prediction
  model = original_code.load_file('ncr_model', args.ncr_dir / 'model.py')
  for case, (batch, margin, mode, soft) in enumerate(HINGE_CASES):
    scores = rng.normal(0.3, 0.3, (batch, batch))
    labels = rng.uniform(0, 1, batch)
    criterion = model.ContrastiveLoss(margin=margin)
    tensor = torch.tensor(scores)
    given = None if mode is None else torch.tensor(labels if mode == 'column'
                                                   else labels[:, None])
    prefix = f'hinge{case}_'
    out.update({prefix + 'scores': scores, prefix + 'labels': labels,
                prefix + 'margin': np.array(margin), prefix + 'mode': np.array(str(mode)),
                prefix + 'soft': np.array(soft)})
    out[prefix + 'train_hardest'] = criterion(tensor, hard_negative=True, labels=given,
                                              soft_margin=soft, mode='train').numpy()
    out[prefix + 'train_mean'] = criterion(tensor, hard_negative=False, labels=given,
                                           soft_margin=soft, mode='train').numpy()
    out[prefix + 'warmup'] = criterion(tensor, labels=given, soft_margin=soft,
                                       mode='warmup').numpy()
    out[prefix + 'eval_loss'] = criterion(tensor, labels=given, soft_margin=soft,
                                          mode='eval_loss').numpy()
    if mode is None:
      # SGRAF.predict: the criterion's 'predict' output clamped to [0, 1].
      out[prefix + 'predict'] = criterion(tensor, mode='predict').clamp(0, 1).numpy()
  out['hinge_num_cases'] = np.array(len(HINGE_CASES))

  # ------------------------------------------------------------ NCR's retrieval metrics
  original_code.stub_packages(['vocab', 'data', 'model', 'utils'], only_missing=False,
                              first=True)
  evaluation = original_code.load_file('ncr_evaluation', args.ncr_dir / 'evaluation.py')
  for case, (images, per) in enumerate(((40, 1), (30, 5))):
    truth = rng.normal(size=(images, 8))
    captions = np.repeat(truth, per, axis=0) + 1.3 * rng.normal(size=(images * per, 8))
    sims = truth @ captions.T
    prefix = f'retrieval{case}_'
    out.update({prefix + 'sims': sims, prefix + 'per': np.array(per),
                prefix + 'i2t': np.array(evaluation.i2t(images, sims, per)),
                prefix + 't2i': np.array(evaluation.t2i(images, sims, per))})

  # ------------------------------------------------------------ RINCE (MoCo v3)
  builder = original_code.load_file('rince_builder', args.rince_dir / 'builder.py')
  builder.concat_all_gather = lambda tensor: tensor        # one process: the gather is x
  torch.distributed.get_rank = lambda *unused: 0
  for case, (batch, dim, temperature, lam, q) in enumerate(
      ((8, 5, 1.0, 0.01, 0.1), (6, 4, 0.2, 0.025, 0.5), (5, 3, 0.5, 1.0, 1.0))):
    moco = types.SimpleNamespace(T=temperature, lam=lam, q=q)
    query, key = rng.normal(size=(batch, dim)), rng.normal(size=(batch, dim))
    loss = builder.MoCo.contrastive_loss(moco, torch.tensor(query), torch.tensor(key))
    prefix = f'rince{case}_'
    out.update({prefix + 'query': query, prefix + 'key': key,
                prefix + 'temperature': np.array(temperature), prefix + 'lam': np.array(lam),
                prefix + 'q': np.array(q), prefix + 'loss': loss.numpy()})

  # ------------------------------------------------------------ DataComp's threshold
  original_code.stub_packages(['fasttext', 'fsspec', 'gcld3', 'nltk', 'pandas', 'tqdm'])
  sys.path.insert(0, str(args.datacomp_dir))
  apply_filter = original_code.load_file('apply_filter',
                                         args.datacomp_dir / 'baselines' / 'apply_filter.py')
  for case, (count, fraction) in enumerate(((100, 0.3), (37, 0.9), (50, 0.02))):
    values = np.round(rng.uniform(0.1, 0.4, count), 2)     # rounded: ties occur
    frame = {'score': types.SimpleNamespace(values=values)}
    apply_filter.load_metadata = lambda *unused, frame=frame, **kw: _Frame(frame)
    threshold = apply_filter.get_threshold('unused', 'score', fraction, 1)
    prefix = f'datacomp{case}_'
    out.update({prefix + 'scores': values, prefix + 'fraction': np.array(fraction),
                prefix + 'threshold': np.array(threshold)})
  original_code.save_vectors(args.out, out)


class _Frame(dict):
  """Enough of a DataFrame for `get_threshold`: `len(df)` and `df[key].values`."""

  def __len__(self):
    return len(next(iter(self.values())).values)


if __name__ == '__main__':
  main()
