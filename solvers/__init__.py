"""solvers: the numerics of symflow (JAX + Diffrax), float64 throughout.

Importing solvers turns on ``jax_enable_x64`` for the whole process.

>>> import sympy as sp, symflow as sf, solvers as sv
>>> x, y = sp.symbols("x y")
>>> rep = sv.verify_order(sf.GD(), (x*y - 1)**2 / 2, [x, y], x0=[1.0, 0.5],
...                       lrs=[0.04, 0.02, 0.01, 0.005], T=1.0)
>>> print(rep.table())  # doctest: +SKIP

The layers, bottom up: ``_ode``, then ``_sde`` and ``_claims`` side by side, then
``_networks`` (its SGD-noise ensembles reuse ``_sde``'s runner), then the demo (README,
"Layout").
"""

import jax

jax.config.update("jax_enable_x64", True)

# flows: compile, iterate, solve, verify, plot (imported after the x64 switch)
from ._ode._compile import UnsupportedFunctionError, vector_function  # noqa: E402
from ._ode._flow import compiled_flow, solve_flow  # noqa: E402
from ._ode._iterate import compiled_map, iterate, manifold_memory  # noqa: E402
from ._ode._plot import plot_trajectories  # noqa: E402
from ._ode._verify import VerifyReport, verify_order  # noqa: E402

# SGD noise: SDE ensembles, SGD runs, weak error, Fokker-Planck
from ._sde._ensemble import Ensemble  # noqa: E402
from ._sde._fokker_planck_numeric import solve_fokker_planck  # noqa: E402
from ._sde._grid_density import (GridDensity, StationaryReport, compare_stationary,  # noqa: E402
                                 density_on_grid)
from ._sde._sde import simulate_sde  # noqa: E402
from ._sde._weak_error import WeakErrorReport, weak_error  # noqa: E402

# networks: coordinate-free fields on JAX models
from ._networks._implicit_reg import ImplicitRegularization, implicit_regularization  # noqa: E402
from ._networks._mlp import count_params, mlp_apply, mlp_init, mse_loss, toy_regression  # noqa: E402
from ._networks._network_run import NetworkOptimizer, network_optimizer  # noqa: E402
from ._networks._network_sde import simulate_network_sde  # noqa: E402
from ._networks._network_sgd import run_sgd  # noqa: E402  (symbolic datasets and networks)
from ._networks._network_sme import NetworkSME, network_sme  # noqa: E402
from ._networks._network_sme_memory import MemoryNetworkSME  # noqa: E402
from ._networks._network_stats import NetworkEnsemble  # noqa: E402
from ._networks._network_verify import solve_network_flow, verify_order_network  # noqa: E402
from ._networks._path_kernel import PathKernel, path_kernel  # noqa: E402
from ._networks._sharpness import sharpness  # noqa: E402
from ._networks._tree_eval import NetworkField, manifold_fields, network_field  # noqa: E402

# the seeds' claims, checked numerically
from ._claims._gaussian_compare import (GaussianComparison, compare_to_gaussian,  # noqa: E402
                                        gaussian_divergences)
from ._claims._penalty_check import (PenaltyStudy, check_penalty,  # noqa: E402
                                     check_penalty_batch, penalty_study)
from ._claims._smooth_error import SmoothingError, smoothing_error  # noqa: E402
from ._claims._matrix_completion import (CompletionStudy, completion_problem,  # noqa: E402
                                         completion_study, deep_completion, effective_rank,
                                         nuclear_norm_completion)
from ._claims._ssl_run import SSLRun, ssl_run  # noqa: E402

# the demo
from ._demo import demo  # noqa: E402

__all__ = [
    # flows
    "UnsupportedFunctionError", "vector_function", "compiled_flow", "solve_flow",
    "compiled_map", "iterate", "manifold_memory", "plot_trajectories", "VerifyReport",
    "verify_order",
    # SGD noise
    "Ensemble", "simulate_sde", "run_sgd", "WeakErrorReport", "weak_error",
    "solve_fokker_planck", "GridDensity", "StationaryReport", "compare_stationary",
    "density_on_grid",
    # networks
    "NetworkField", "network_field", "manifold_fields", "NetworkOptimizer", "network_optimizer",
    "solve_network_flow", "verify_order_network", "ImplicitRegularization",
    "implicit_regularization", "sharpness", "PathKernel", "path_kernel", "count_params",
    "mlp_apply", "mlp_init", "mse_loss", "toy_regression", "NetworkSME", "MemoryNetworkSME",
    "network_sme", "simulate_network_sde", "NetworkEnsemble",
    # the seeds' claims
    "PenaltyStudy", "check_penalty", "check_penalty_batch", "penalty_study",
    "GaussianComparison", "compare_to_gaussian", "gaussian_divergences", "SmoothingError",
    "smoothing_error", "CompletionStudy", "completion_problem", "completion_study",
    "deep_completion", "effective_rank", "nuclear_norm_completion", "SSLRun", "ssl_run",
    # demo
    "demo",
]
