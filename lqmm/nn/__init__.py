"""Flax NNX modules: encoders, evidential heads and multi-view models."""

from lqmm.nn import balance
from lqmm.nn import dynamics
from lqmm.nn import mmtm
from lqmm.nn.balance import BalanceNet
from lqmm.nn.balance import BalanceOutputs
from lqmm.nn.balance import ConvEncoder
from lqmm.nn.balance import MLPEncoder
from lqmm.nn.dynamics import MultimodalDynamics
from lqmm.nn.evidential import EvidentialHead
from lqmm.nn.evidential import MultiViewEvidential
from lqmm.nn.evidential import torch_linear
from lqmm.nn.evidential import torch_linear_init
from lqmm.nn.late_fusion import LateFusionNet
from lqmm.nn.late_fusion import ModalityNet
from lqmm.nn.mmtm import MMTM
from lqmm.nn.mmtm import GreedyNet

__all__ = ['BalanceNet', 'BalanceOutputs', 'ConvEncoder', 'EvidentialHead', 'GreedyNet', 'MLPEncoder', 'MMTM', 'LateFusionNet', 'ModalityNet', 'MultiViewEvidential',
           'MultimodalDynamics', 'balance', 'dynamics', 'mmtm', 'torch_linear', 'torch_linear_init']
