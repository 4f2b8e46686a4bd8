"""Flax NNX modules: encoders, evidential heads and multi-view models."""

from lqmm.nn.evidential import EvidentialHead
from lqmm.nn.evidential import MultiViewEvidential
from lqmm.nn.evidential import torch_linear
from lqmm.nn.evidential import torch_linear_init

__all__ = ['EvidentialHead', 'MultiViewEvidential', 'torch_linear', 'torch_linear_init']
