"""Noise removal: total-variation denoising and weighted TV fusion of noisy sensors.

`tv_chambolle` equals scikit-image's `denoise_tv_chambolle` (Chambolle's projection
algorithm, its stopping rule and returned iterate); `tv_fusion` fuses M noisy images of one
scene with scalar or per-pixel weights by the Chambolle-Pock primal-dual algorithm (the
survey's variational fusion-and-denoising). Both are pure jnp, vmappable and (in their
fixed-iteration forms) differentiable.
"""

from lqmm.denoise import tv
from lqmm.denoise.tv import TVFusion
from lqmm.denoise.tv import divergence
from lqmm.denoise.tv import gradient
from lqmm.denoise.tv import total_variation
from lqmm.denoise.tv import tv_chambolle
from lqmm.denoise.tv import tv_fusion
from lqmm.denoise.tv import tv_fusion_energy

__all__ = ['TVFusion', 'divergence', 'gradient', 'total_variation', 'tv', 'tv_chambolle',
           'tv_fusion', 'tv_fusion_energy']
