"""Optimizers as symbolic one-step maps."""

from ._base import AbstractOptimizer
from ._custom import Custom
from ._gd import GD

__all__ = ["AbstractOptimizer", "Custom", "GD"]
