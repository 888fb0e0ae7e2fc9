"""symflow: exact modified equations of optimization algorithms, in pure SymPy.

>>> import sympy as sp, symflow as sf
>>> x, y = sp.symbols("x y")
>>> me = sf.modified_equation(sf.GD(), loss=(x*y - 1)**2 / 2, params=[x, y], order=2)
>>> me.first_non_gradient_order
2

Numerics (JAX, Diffrax) live in the separate package ``solvers``; importing symflow
never imports jax.
"""

from ._coordinate_free import CoordinateFreeEquation, TreeSeries, coordinate_free_equation
from ._dataset import Dataset
from ._equilibrium import EquilibriumSpectrum, equilibrium_eigenvalues
from ._errors import MemoryWarning, SymflowError, UnsafeExpressionError, ValidityWarning
from ._fokker_planck import (FokkerPlanck, FreeEnergy, StationaryDensity, continuity_equation,
                             fokker_planck)
from ._games import GameObjectives, dirac_gan, modified_objectives
from ._gaussian import (gaussian_bhattacharyya, gaussian_kl, gaussian_w2, matrix_sqrt,
                        trace_sqrt_product)
from ._kernel_machine import KernelMachine, kernel_machine
from ._modified import ModifiedEquation, modified_equation, optimizer_map
from ._moments import MomentSystem, sde_moments, sgd_moments
from ._parse import parse_expression, parse_symbols
from ._penalty import (HOLDING_NORMS, PenaltyDerivation, derive_penalty_inequality,
                       gradient_penalty_inequality, matrix_norm, penalty_counterexample)
from ._sde import SDE
from ._sme import EpochFlow, epoch_mean_flow, sme
from ._smooth import KERNELS, kernel_density, smooth, smoothing_gap_at
from ._state import StateModifiedEquation, state_modified_equation
from ._symbols import h
from ._validity import ValidityReport, check_validity
from .optimizers import (GD, SGD, AbstractGDA, AbstractMemoryOptimizer, AbstractOptimizer,
                         AdaGrad, Adam, AlternatingGDA, Custom, HeavyBall, Nesterov, RMSprop,
                         SimultaneousGDA)

__version__ = "0.1.0"

__all__ = [
    "AbstractMemoryOptimizer", "AbstractOptimizer", "AdaGrad", "Adam", "Custom", "GD",
    "HeavyBall", "Nesterov", "RMSprop", "MemoryWarning", "ModifiedEquation", "SymflowError",
    "UnsafeExpressionError", "ValidityReport", "ValidityWarning", "check_validity", "h",
    "modified_equation", "optimizer_map", "StateModifiedEquation", "state_modified_equation", "parse_expression", "parse_symbols",
    # SGD noise (issue 4)
    "SGD", "Dataset", "SDE", "sme", "EpochFlow", "epoch_mean_flow", "FokkerPlanck",
    "FreeEnergy", "StationaryDensity", "continuity_equation", "fokker_planck",
    "MomentSystem", "sde_moments", "sgd_moments",
    # coordinate-free modified equations (issue 6)
    "CoordinateFreeEquation", "TreeSeries", "coordinate_free_equation",
    # two-player games (issue 5)
    "AbstractGDA", "AlternatingGDA", "SimultaneousGDA", "GameObjectives", "dirac_gan",
    "modified_objectives", "EquilibriumSpectrum", "equilibrium_eigenvalues",
    "KernelMachine", "kernel_machine",
    # gradient-penalty inequality, Gaussian divergences, smoothing (issue 5)
    "HOLDING_NORMS", "PenaltyDerivation", "derive_penalty_inequality",
    "gradient_penalty_inequality", "matrix_norm", "penalty_counterexample",
    "gaussian_bhattacharyya", "gaussian_kl", "gaussian_w2", "matrix_sqrt", "trace_sqrt_product",
    "KERNELS", "kernel_density", "smooth", "smoothing_gap_at",
]
