"""solvers: the numerics of symflow (JAX + Diffrax), float64 throughout.

>>> import sympy as sp, symflow as sf, solvers as sv
>>> x, y = sp.symbols("x y")
>>> rep = sv.verify_order(sf.GD(), (x*y - 1)**2 / 2, [x, y], x0=[1.0, 0.5],
...                       lrs=[0.04, 0.02, 0.01, 0.005], T=1.0)
>>> print(rep.table())  # doctest: +SKIP
"""

import jax

jax.config.update("jax_enable_x64", True)

from ._compile import UnsupportedFunctionError, vector_function  # noqa: E402
from ._demo import demo  # noqa: E402
from ._ensemble import Ensemble  # noqa: E402
from ._flow import compiled_flow, solve_flow  # noqa: E402
from ._fokker_planck_numeric import solve_fokker_planck  # noqa: E402
from ._gaussian_compare import GaussianComparison, compare_to_gaussian, gaussian_divergences  # noqa: E402,E501
from ._grid_density import GridDensity, StationaryReport, compare_stationary, density_on_grid  # noqa: E402,E501
from ._iterate import compiled_map, iterate, manifold_memory  # noqa: E402
from ._implicit_reg import ImplicitRegularization, implicit_regularization  # noqa: E402
from ._mlp import count_params, mlp_apply, mlp_init, mse_loss, toy_regression  # noqa: E402
from ._network_run import NetworkOptimizer, network_optimizer  # noqa: E402
from ._network_verify import solve_network_flow, verify_order_network  # noqa: E402
from ._sharpness import sharpness  # noqa: E402
from ._tree_eval import NetworkField, manifold_fields, network_field  # noqa: E402
from ._path_kernel import PathKernel, path_kernel  # noqa: E402
from ._penalty_check import PenaltyStudy, check_penalty, check_penalty_batch, penalty_study  # noqa: E402,E501
from ._plot import plot_trajectories  # noqa: E402
from ._sde import simulate_sde  # noqa: E402
from ._sgd_run import run_sgd  # noqa: E402
from ._smooth_error import SmoothingError, smoothing_error  # noqa: E402
from ._verify import VerifyReport, verify_order  # noqa: E402
from ._weak_error import WeakErrorReport, weak_error  # noqa: E402

__all__ = ["UnsupportedFunctionError", "VerifyReport", "compiled_flow", "compiled_map", "demo",
           "iterate", "manifold_memory", "plot_trajectories", "solve_flow", "vector_function", "verify_order",
           # SGD noise (issue 4)
           "Ensemble", "GridDensity", "StationaryReport", "compare_stationary",
           "density_on_grid", "run_sgd", "simulate_sde", "solve_fokker_planck", "WeakErrorReport",
           "weak_error",
           # the path kernel (issue 5)
           "PathKernel", "path_kernel",
           # gradient-penalty study, Gaussian comparison, smoothing error (issue 5)
           "PenaltyStudy", "check_penalty", "check_penalty_batch", "penalty_study",
           "GaussianComparison", "compare_to_gaussian", "gaussian_divergences",
           "SmoothingError", "smoothing_error",
           # coordinate-free fields on networks (issue 6)
           "ImplicitRegularization", "NetworkField", "NetworkOptimizer", "count_params",
           "implicit_regularization", "manifold_fields", "mlp_apply", "mlp_init", "mse_loss",
           "network_field", "network_optimizer", "sharpness", "solve_network_flow",
           "toy_regression", "verify_order_network"]
