"""Flax NNX modules: encoders, evidential heads and multi-view models."""

from lqmm.nn.evidential import EvidentialHead
from lqmm.nn.evidential import MultiViewEvidential
from lqmm.nn.evidential import torch_linear

__all__ = ['EvidentialHead', 'MultiViewEvidential', 'torch_linear']
