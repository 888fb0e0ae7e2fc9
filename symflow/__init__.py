"""symflow: exact modified equations of optimization algorithms, in pure SymPy.

>>> import sympy as sp, symflow as sf
>>> x, y = sp.symbols("x y")
>>> me = sf.modified_equation(sf.GD(), loss=(x*y - 1)**2 / 2, params=[x, y], order=2)
>>> me.first_non_gradient_order
2

Numerics (JAX, Diffrax) live in the separate package ``solvers``; importing symflow
never imports jax. The layers, bottom up: ``_core``, ``optimizers``, ``_trees``,
``_engine``, then ``_stochastic``, ``_games`` and ``_claims`` side by side (README, "Layout").
"""

# core: the learning-rate symbol, errors and warnings, the safe parser
from ._core._errors import (CostWarning, MemoryWarning, SymflowError, UnsafeExpressionError,
                           ValidityWarning)
from ._core._parse import parse_expression, parse_symbols
from ._core._symbols import h

# optimizers: one-step maps
from .optimizers import (GD, SGD, AbstractGDA, AbstractMemoryOptimizer, AbstractOptimizer,
                         AdaGrad, Adam, AlternatingGDA, Custom, HeavyBall, Nesterov, RMSprop,
                         SimultaneousGDA)

# coordinate-free modified equations (trees)
from ._trees._coordinate_free import CoordinateFreeEquation, TreeSeries, coordinate_free_equation

# modified equations on a concrete loss (engine)
from ._engine._field_result import FieldModifiedEquation
from ._engine._modified import modified_equation, optimizer_map
from ._engine._result import ModifiedEquation
from ._engine._state import StateModifiedEquation, state_modified_equation
from ._engine._validity import ValidityReport, check_validity

# SGD noise: SDEs, stochastic modified equations, moments, Fokker-Planck
from ._stochastic._dataset import Dataset
from ._stochastic._fokker_planck import (FokkerPlanck, FreeEnergy, StationaryDensity,
                                         continuity_equation, fokker_planck)
from ._stochastic._moments import MomentSystem, sde_moments, sgd_moments
from ._stochastic._scaling import ScalingRule, scaling_rule
from ._stochastic._sde import SDE
from ._stochastic._epoch import EpochFlow, epoch_mean_flow
from ._stochastic._sme import sme

# two-player games
from ._games._equilibrium import EquilibriumSpectrum, equilibrium_eigenvalues
from ._games._objectives import GameObjectives, dirac_gan, modified_objectives

# the seeds' claims: gradient penalties, Gaussian divergences, smoothing, kernel machine
from ._claims._gaussian import (gaussian_bhattacharyya, gaussian_kl, gaussian_w2, matrix_sqrt,
                                trace_sqrt_product)
from ._claims._kernel_machine import KernelMachine, kernel_machine
from ._claims._penalty import (HOLDING_NORMS, PenaltyDerivation, derive_penalty_inequality,
                               gradient_penalty_inequality, matrix_norm, penalty_counterexample)
from ._claims._smooth import KERNELS, kernel_density, smooth, smoothing_gap_at
from ._claims._deep_linear import DeepLinear, deep_linear
from ._claims._self_supervised import LinearSSL, linear_ssl

__version__ = "0.1.0"

__all__ = [
    # core
    "h", "CostWarning", "MemoryWarning", "SymflowError", "UnsafeExpressionError", "ValidityWarning",
    "parse_expression", "parse_symbols",
    # optimizers
    "AbstractOptimizer", "AbstractMemoryOptimizer", "AbstractGDA", "GD", "SGD", "HeavyBall",
    "Nesterov", "RMSprop", "Adam", "AdaGrad", "Custom", "SimultaneousGDA", "AlternatingGDA",
    # modified equations: concrete and coordinate-free
    "modified_equation", "optimizer_map", "ModifiedEquation", "FieldModifiedEquation", "StateModifiedEquation",
    "state_modified_equation", "ValidityReport", "check_validity",
    "CoordinateFreeEquation", "TreeSeries", "coordinate_free_equation",
    # SGD noise
    "Dataset", "SDE", "sme", "EpochFlow", "epoch_mean_flow", "MomentSystem", "sde_moments",
    "sgd_moments", "FokkerPlanck", "FreeEnergy", "StationaryDensity", "continuity_equation",
    "fokker_planck", "ScalingRule", "scaling_rule",
    # two-player games
    "GameObjectives", "dirac_gan", "modified_objectives", "EquilibriumSpectrum",
    "equilibrium_eigenvalues",
    # the seeds' claims
    "HOLDING_NORMS", "PenaltyDerivation", "derive_penalty_inequality",
    "gradient_penalty_inequality", "matrix_norm", "penalty_counterexample",
    "gaussian_bhattacharyya", "gaussian_kl", "gaussian_w2", "matrix_sqrt", "trace_sqrt_product",
    "KERNELS", "kernel_density", "smooth", "smoothing_gap_at",
    "KernelMachine", "kernel_machine", "DeepLinear", "deep_linear", "LinearSSL", "linear_ssl",
]
