"""Optimizers as symbolic maps on their state (parameters and memory)."""

from ._adagrad import AdaGrad
from ._adam import Adam
from ._base import AbstractMemoryOptimizer, AbstractOptimizer
from ._custom import Custom
from ._gd import GD
from ._gda import AbstractGDA, AlternatingGDA, SimultaneousGDA
from ._heavy_ball import HeavyBall
from ._nesterov import Nesterov
from ._rmsprop import RMSprop
from ._sgd import SGD

__all__ = ["AbstractMemoryOptimizer", "AbstractOptimizer", "AdaGrad", "Adam", "Custom", "GD",
           "HeavyBall", "Nesterov", "RMSprop", "SGD",
           "AbstractGDA", "AlternatingGDA", "SimultaneousGDA"]
