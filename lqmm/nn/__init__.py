"""Flax NNX modules (encoders, evidential heads, multi-view models) and classifier-head math.

Feature-level fusion over M channels-last streams with presence masks: `exchange` (CEN's
channel exchange, TokenFusion's token exchange), `gates` (DenseFuse's l1-norm rule, MBNet's
illumination gate, CSSA's channel switching and spatial attention), `mmtm` (MMTM), `mbt`
(attention bottlenecks, scenic's parameter names), `attention` (self- and cross-attention
fusion with key-padding and presence masks), `routing` (dynamic networks: Gumbel gating,
resource losses, inference that runs only the chosen branches and counts their FLOPs);
`feature_fusion.FeatureFusionNet` puts these families behind one network with shared stems
for side-by-side runs.

`heads` is pure `jax.numpy` (it imports no neural-network library): the per-modality logits of a
fused linear head (`split_linear_head`) and the MMCosine head (`cosine_logits`). `conv` holds the
im2col convolution and reshape max-pool the conv encoders use (fast on XLA:CPU in loops and
under vmap).
"""

from lqmm.nn import attention
from lqmm.nn import balance
from lqmm.nn import conv
from lqmm.nn import cpm
from lqmm.nn import dynamics
from lqmm.nn import exchange
from lqmm.nn import feature_fusion
from lqmm.nn import gates
from lqmm.nn import heads
from lqmm.nn import incomplete
from lqmm.nn import mbt
from lqmm.nn import mmtm
from lqmm.nn import norm
from lqmm.nn import routing
from lqmm.nn.attention import AttentionFusion
from lqmm.nn.balance import BalanceNet
from lqmm.nn.balance import BalanceOutputs
from lqmm.nn.balance import ConvEncoder
from lqmm.nn.balance import MLPEncoder
from lqmm.nn.cpm import CPMDecoders
from lqmm.nn.dynamics import MultimodalDynamics
from lqmm.nn.dynamics import xavier_normal_init
from lqmm.nn.dynamics import xavier_uniform_init
from lqmm.nn.evidential import EvidentialHead
from lqmm.nn.exchange import ExchangeBottleneck
from lqmm.nn.exchange import SharedConvNorm
from lqmm.nn.exchange import TokenFusionBlock
from lqmm.nn.exchange import TokenScorer
from lqmm.nn.feature_fusion import FeatureFusionNet
from lqmm.nn.gates import CSSA
from lqmm.nn.gates import IlluminationGate
from lqmm.nn.evidential import MultiViewEvidential
from lqmm.nn.evidential import dense
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
from lqmm.nn.mbt import MBT
from lqmm.nn.mmtm import MMTM
from lqmm.nn.mmtm import GreedyNet
from lqmm.nn.norm import BatchNorm
from lqmm.nn.routing import DynamicFusion
from lqmm.nn.routing import ModalitySelection

__all__ = [
    'AttentionFusion', 'BalanceNet', 'BalanceOutputs', 'BatchNorm', 'CPMDecoders', 'CSSA',
    'ConvEncoder', 'CrossViewImputer', 'DualPredictionNet', 'DynamicFusion', 'EvidentialHead',
    'ExchangeBottleneck', 'FeatureFusionNet', 'GreedyNet', 'IlluminationGate', 'LateFusionNet',
    'LatentPredictor', 'MBT', 'MLPEncoder', 'MMTM', 'MaskedFusionNet', 'ModalityNet',
    'ModalitySelection', 'MultiViewAutoencoder', 'MultiViewEvidential', 'MultimodalDynamics',
    'SharedConvNorm', 'SoftmaxAutoencoder', 'TokenFusionBlock', 'TokenScorer', 'attention',
    'balance', 'conv', 'cosine_logits', 'cpm', 'dense', 'dynamics', 'exchange', 'feature_fusion',
    'gates', 'heads', 'incomplete', 'mbt', 'mmtm', 'modality_cosine_logits', 'norm', 'routing',
    'split_kernel', 'split_linear_head', 'torch_linear', 'torch_linear_init', 'xavier_normal_init',
    'xavier_uniform_init',
]
