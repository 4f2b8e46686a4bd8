"""Flax NNX modules (encoders, evidential heads, multi-view models) and classifier-head math.

`heads` is pure `jax.numpy` (it imports no neural-network library): the per-modality logits of a
fused linear head (`split_linear_head`) and the MMCosine head (`cosine_logits`). `conv` holds the
im2col convolution and reshape max-pool the conv encoders use (fast on XLA:CPU in loops and
under vmap).
"""

from lqmm.nn import balance
from lqmm.nn import conv
from lqmm.nn import cpm
from lqmm.nn import dynamics
from lqmm.nn import exchange
from lqmm.nn import heads
from lqmm.nn import incomplete
from lqmm.nn import mmtm
from lqmm.nn import norm
from lqmm.nn.balance import BalanceNet
from lqmm.nn.balance import BalanceOutputs
from lqmm.nn.balance import ConvEncoder
from lqmm.nn.balance import MLPEncoder
from lqmm.nn.cpm import CPMDecoders
from lqmm.nn.dynamics import MultimodalDynamics
from lqmm.nn.dynamics import xavier_normal_init
from lqmm.nn.dynamics import xavier_uniform_init
from lqmm.nn.evidential import EvidentialHead
from lqmm.nn.evidential import MultiViewEvidential
from lqmm.nn.evidential import torch_linear
from lqmm.nn.evidential import torch_linear_init
from lqmm.nn.heads import cosine_logits
from lqmm.nn.heads import modality_cosine_logits
from lqmm.nn.heads import split_kernel
from lqmm.nn.heads import split_linear_head
from lqmm.nn.incomplete import CrossViewImputer
from lqmm.nn.incomplete import DualPredictionNet
from lqmm.nn.incomplete import LatentPredictor
from lqmm.nn.incomplete import MaskedFusionNet
from lqmm.nn.incomplete import MultiViewAutoencoder
from lqmm.nn.incomplete import SoftmaxAutoencoder
from lqmm.nn.late_fusion import LateFusionNet
from lqmm.nn.late_fusion import ModalityNet
from lqmm.nn.mmtm import MMTM
from lqmm.nn.mmtm import GreedyNet
from lqmm.nn.norm import BatchNorm

__all__ = [
    'BalanceNet', 'BalanceOutputs', 'BatchNorm', 'CPMDecoders', 'ConvEncoder',
    'CrossViewImputer', 'DualPredictionNet', 'EvidentialHead', 'GreedyNet', 'LateFusionNet',
    'LatentPredictor', 'MLPEncoder', 'MMTM', 'MaskedFusionNet', 'ModalityNet',
    'MultiViewAutoencoder', 'MultiViewEvidential', 'MultimodalDynamics', 'SoftmaxAutoencoder',
    'balance', 'conv', 'cosine_logits', 'cpm', 'dynamics', 'heads', 'incomplete', 'mmtm',
    'modality_cosine_logits', 'norm', 'split_kernel', 'split_linear_head', 'torch_linear',
    'torch_linear_init', 'xavier_normal_init', 'xavier_uniform_init',
]
