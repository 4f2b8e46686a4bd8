"""Noise removal: total-variation denoising and fusion; finding mismatched pairs (NCR).

`tv_chambolle` equals scikit-image's `denoise_tv_chambolle` (Chambolle's projection
algorithm, its stopping rule and returned iterate); `tv_fusion` fuses M noisy images of one
scene with scalar or per-pixel weights by the Chambolle-Pock primal-dual algorithm (the
survey's variational fusion-and-denoising). Both are pure jnp, vmappable and (in their
fixed-iteration forms) differentiable. For cross-modal noise (pairs that do not correspond),
`clean_probability` is NCR's split of the per-sample losses by a two-component Gaussian
mixture, equal to scikit-learn's `GaussianMixture` as NCR configures it, and
`co_teaching_split` gives each of two networks the split made from the other's losses.
"""

from lqmm.denoise import correspondence
from lqmm.denoise import tv
from lqmm.denoise.correspondence import TwoGaussians
from lqmm.denoise.correspondence import clean_probability
from lqmm.denoise.correspondence import co_teaching_split
from lqmm.denoise.correspondence import gaussian_mixture_1d
from lqmm.denoise.correspondence import split_clean
from lqmm.denoise.correspondence import two_means_labels
from lqmm.denoise.tv import TVFusion
from lqmm.denoise.tv import divergence
from lqmm.denoise.tv import gradient
from lqmm.denoise.tv import total_variation
from lqmm.denoise.tv import tv_chambolle
from lqmm.denoise.tv import tv_fusion
from lqmm.denoise.tv import tv_fusion_energy

__all__ = ['TVFusion', 'TwoGaussians', 'clean_probability', 'co_teaching_split', 'correspondence',
           'divergence', 'gaussian_mixture_1d', 'gradient', 'split_clean', 'total_variation',
           'tv', 'tv_chambolle', 'tv_fusion', 'tv_fusion_energy', 'two_means_labels']
