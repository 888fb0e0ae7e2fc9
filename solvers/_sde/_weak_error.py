r"""Weak error of the stochastic modified equations against real SGD.

For a test function :math:`\varphi`, learning rates :math:`h` on a ladder and a horizon
:math:`T = nh`, the weak error is :math:`e(h) = |\mathbb E\varphi(\theta_n) -
\mathbb E\varphi(X_{nh})|`, with :math:`\theta_n` SGD and :math:`X` the order-:math:`p` SME.
An order-:math:`p` SME has :math:`e(h) = O(h^p)` (Li, Tai & E, JMLR 20, 2019, Thms 1 and
3), so the log-log slope of :math:`e` against :math:`h` is about :math:`p`.

``method="exact"`` (default) uses the closed moment systems of :mod:`symflow._stochastic._moments`:
:math:`\mathbb E\varphi(\theta_n) = m(\theta_0)\cdot K^n c` and
:math:`\mathbb E\varphi(X_T) = m(x_0)\cdot e^{TG}c` — no Monte Carlo and no time stepping,
so the slopes are clean (linear regression with a quadratic :math:`\varphi`).
``method="monte_carlo"`` runs :func:`solvers.run_sgd` and :func:`solvers.simulate_sde`
(fine steps ``h/sde_substeps``) for problems whose moments do not close, and reports the
standard error of each difference; the slope is then a weighted least-squares fit of
:math:`\log e` (weights :math:`e_i/s_i`, the inverse standard errors of :math:`\log e_i`), with
its own standard error.

Adam and RMSprop have their SDE in the scaling of Malladi, Lyu, Panigrahi & Arora (NeurIPS
2022): :math:`1-\beta_i = c_ih^2`, :math:`\epsilon = \epsilon_0/h`, time :math:`t = nh^2`, on the
whole state :math:`(\theta, m, u)`. Then ``T`` is a time :math:`nh^2` (``n = T/h^2`` real
steps, SDE steps :math:`h^2/\text{substeps}`) and the SDE starts at ``x0`` with zero memory,
as the optimizer. Their Theorems 4.2 and 4.5 hold :math:`\sigma_0 = h\sigma` fixed as
:math:`h\to0` (gradient noise :math:`\sigma = \sigma_0/h`); on a dataset, pass ``hyper`` as a
function of ``h`` that amplifies the data's noise by :math:`1/h`. The weak error measured
there is :math:`O(h)` (slope 1): :math:`m` and :math:`v` are driven by the same minibatch
gradients, and for skewed gradient noise their covariance moves the mean of
:math:`m/\sqrt v` by :math:`O(h)`, which the SDE's Gaussian noise does not reproduce
(``tests/solvers/sde/test_weak_error_adam.py``).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np
import scipy.linalg
import sympy as sp

import symflow as sf
from symflow import SymflowError
from symflow._core._files import save_figure
from symflow._core._guard import to_sympy
from symflow._core._table import Table, TableDisplay
from symflow._stochastic._memory_moments import memory_moments
from symflow._stochastic._sde import refuse_strings

from .._ode._compile import hyper_vector
from .._ode._verify import step_count
from ._ensemble import as_key, check_start
from ._sde import simulate_sde
from ._sgd_run import run_sgd


@dataclasses.dataclass(repr=False)
class WeakErrorReport(TableDisplay):
    r"""Weak errors and their log-log slopes (see :func:`weak_error`).

    ``errors[p][i]`` is :math:`|\mathbb E\varphi(\text{SGD}_n) - \mathbb E\varphi(X_{nh})|`
    for the order-``p`` SME at ``lrs[i]``; ``sgd[i]`` and ``sde[p][i]`` the two
    expectations; ``stderr[p]`` the Monte Carlo standard errors (zeros when exact).
    """

    label: str
    phi: object
    lrs: np.ndarray
    T: float
    orders: tuple
    method: str
    sgd: np.ndarray
    sde: dict
    errors: dict
    stderr: dict
    slopes: dict
    slope_stderr: dict = dataclasses.field(default_factory=dict)
    time: str = "t = n*h"

    @property
    def expected(self) -> dict:
        return {p: p for p in self.orders}

    def passed(self, tol: float = 0.3) -> bool:
        """True when every slope is within ``tol`` of its order."""
        return all(abs(self.slopes[p] - p) <= tol for p in self.orders)

    def table(self) -> str:
        head = "       h      E phi(SGD)" + "".join(f"   order-{p} error" for p in self.orders)
        rows = [head]
        for i, lr in enumerate(self.lrs):
            cells = "".join(f"  {self.errors[p][i]:10.3e}" + (
                f"±{self.stderr[p][i]:.1e}" if self.method != "exact" else "       ")
                for p in self.orders)
            rows.append(f"{lr:8.4g}  {self.sgd[i]:14.8g}{cells}")
        rows.append("   slope" + " " * 16 + "".join(f"  {self.slopes[p]:10.2f}       "
                                                     for p in self.orders))
        return "\n".join(rows)

    def _table(self) -> Table:
        mc = self.method != "exact"
        header = ["h", "E phi(SGD)"] + [f"order-{p} error" + (" (± s.e.)" if mc else "")
                                        for p in self.orders]
        rows = [[f"{lr:.4g}", f"{self.sgd[i]:.8g}"]
                + [f"{self.errors[p][i]:.3e}" + (f" ± {self.stderr[p][i]:.1e}" if mc else "")
                   for p in self.orders] for i, lr in enumerate(self.lrs)]
        rows.append(["slope", ""] + [f"{self.slopes[p]:.2f}" + (
            f" ± {self.slope_stderr[p]:.2f}" if mc and p in self.slope_stderr else "")
            for p in self.orders])
        rows.append(["expected", ""] + [f"{p}" for p in self.orders])
        title = (f"weak error of the SME against {self.label}, phi = {self.phi}, "
                 f"T = {self.T:g} ({self.time}, {self.method})")
        return Table(header, rows, title, str(self).split("\n")[len(self.table().split("\n")) + 1:])

    def __str__(self) -> str:
        text = (f"weak error of the SME against {self.label}, phi = {self.phi}, T = {self.T:g} "
                f"({self.time}, {self.method})\n{self.table()}")
        if self.method != "exact" and self.slope_stderr:
            text += "\nslope standard errors: " + ", ".join(
                f"order {p}: {self.slope_stderr[p]:.2f}" for p in self.orders)
        noisy = [f"order {p} at h={lr:g}" for p in self.orders
                 for lr, e, s in zip(self.lrs, self.errors[p], self.stderr[p]) if e < 3 * s]
        if noisy:
            text += ("\nwithin 3 standard errors of zero (not resolved; use more paths or "
                     "larger h): " + ", ".join(noisy))
        return text

    def plot(self, path=None, ax=None):
        """Log-log weak error against ``h`` per order, with reference slopes."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(5, 4), constrained_layout=True)
        else:
            fig = ax.figure
        for p in self.orders:
            err = self.errors[p]
            line = ax.errorbar(self.lrs, err, yerr=self.stderr[p] if self.method != "exact"
                               else None, fmt="o-", capsize=3,
                               label=f"order-{p} SME: slope {self.slopes[p]:.2f}")
            ref = err[-1] * (self.lrs / self.lrs[-1]) ** p
            ax.plot(self.lrs, ref, ":", color=line[0].get_color(), alpha=0.7)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(self.lrs, [f"{lr:g}" for lr in self.lrs])
        ax.minorticks_off()
        ax.set_xlabel("learning rate h")
        ax.set_ylabel(f"|E phi(SGD_n) - E phi(X_t)|, {self.time} = {self.T:g}")
        ax.set_title(f"weak error, {self.label} ({self.method})", fontsize=10)
        ax.legend(title="dotted: slope p", fontsize=8)
        if path:
            save_figure(fig, path, dpi=120)
        return fig


def _numeric(matrix, consts, hyper):
    """``lr -> `` the symbolic matrix at ``h = lr`` and the values ``hyper(lr)``, as a float
    array (lambdified once, evaluated per learning rate)."""
    fn = sp.lambdify(consts, matrix, "numpy")

    def at(lr):
        values = np.asarray(hyper_vector(consts, {**(hyper(lr) or {}), "h": lr}))
        return np.asarray(fn(*values), dtype=float)

    return at


def weak_error(optimizer, losses=None, params=None, dataset=None, *, phi, x0, lrs, T,
               orders=(1, 2), noise=None, noise_factor=None, hyper=None, method="exact",
               n_paths=100_000, key=0, sde_substeps=4, solver="heun", progress=False,
               sdes=None, batch_size=None, replacement=None) -> WeakErrorReport:
    r"""Weak error :math:`|\mathbb E\varphi(\text{SGD}_n) - \mathbb E\varphi(X_{nh})|` against ``h``.

    Parameters
    ----------
    optimizer, losses, params, dataset, noise, noise_factor, batch_size, replacement
        As for :func:`symflow.sme`: ``sf.SGD(batch_size=B)``, or a rule with memory (heavy
        ball, Nesterov, ...) with ``batch_size=B``, whose order-1 SME on :math:`\theta` is
        compared with the real runs started at ``x0`` and the optimizer's initial memory.
        ``method="monte_carlo"`` needs a dataset: it runs the optimizer
        (:func:`solvers.run_sgd`).
    phi : sympy.Expr
        The test function, a polynomial of degree <= 2 for ``method="exact"`` (for a rule
        with memory: exact when it takes one gradient a step and is affine in it,
        :func:`symflow._stochastic._memory_moments.memory_moments`).
    x0 : sequence of float
        Common start of SGD and of the SME.
    lrs : sequence of float
        Learning rates, each dividing ``T`` (for Adam and RMSprop each :math:`h^2` divides it).
    T : float
        Horizon :math:`t = nh`, or :math:`t = nh^2` for Adam and RMSprop (Malladi et al.'s
        time, on their whole-state SDE started at ``x0`` with zero memory).
    orders : sequence of {1, 2}
        SME orders to compare.
    hyper : dict, or callable ``lr -> dict``, optional
        Numbers for the symbols of the losses, the optimizer and the SDE; a function of the
        learning rate for hyperparameters that move along the ladder (e.g. the noise
        amplification :math:`s = \sigma_0/h` of the per-sample losses, which become
        the losses :math:`(1-s)L + s\ell_i` and so hold Malladi et al.'s :math:`\sigma_0`
        fixed).
    method : "exact" or "monte_carlo"
    n_paths, key, sde_substeps, solver, progress
        Monte Carlo only: paths, PRNG key, SDE steps per optimizer step (the scheme's own
        weak error, :math:`O((h/\text{substeps})^q)`, adds to the SME's; for Adam and RMSprop
        the SDE step is :math:`h^2/\text{substeps}`), fixed-step scheme.
    sdes : dict {order: symflow.SDE}, optional
        Approximations to compare instead of the derived SMEs (e.g. a hand-made one).

    Examples
    --------
    SGD at orders 1 and 2, from exact moment recursions (linear regression)::

        >>> import sympy as sp, symflow as sf, solvers as sv
        >>> w, b = sp.symbols("w b")
        >>> data = [(1, 1), (2, 3), (-1, 0), (3, 2)]
        >>> losses = [(w * a + b - t)**2 / 2 for a, t in data]
        >>> rep = sv.weak_error(sf.SGD(batch_size=1), losses, [w, b], phi=w**2 + b**2,
        ...                     x0=[0.5, 0.5], lrs=[0.04, 0.02, 0.01, 0.005], T=1.0)
        >>> {p: round(s) for p, s in rep.slopes.items()}
        {1: 1, 2: 2}

    Adam in Malladi et al.'s scaling (Monte Carlo, SDE on :math:`(\theta, m, u)` in
    :math:`t = nh^2`; ``tests/solvers/sde/test_weak_error_adam.py`` holds the full study)::

        >>> adam = sf.Adam(beta1=1 - 4*sf.h**2, beta2=1 - 2*sf.h**2, eps=sp.Rational(1, 2)/sf.h,
        ...                bias_correction=False)
        >>> rep = sv.weak_error(adam, losses, [w, b], phi=w, x0=[0.5, 0.5], lrs=[0.2, 0.1],
        ...                     T=1.0, orders=[1], batch_size=1, method="monte_carlo",
        ...                     n_paths=1000, sde_substeps=1, key=0)
        >>> rep.time, rep.lrs.tolist()  # 25 and 100 Adam steps against the SDE at t = 1
        ('t = n*h**2', [0.2, 0.1])

    Heavy ball at order 1, whose SME runs time and noise 1/(1 - beta) times faster::

        >>> rep = sv.weak_error(sf.HeavyBall(beta=0.5), losses, [w, b], phi=w**2 + b**2,
        ...                     x0=[0.5, 0.5], lrs=[0.02, 0.01, 0.005, 0.0025], T=1.0,
        ...                     orders=[1], batch_size=1)
        >>> round(rep.slopes[1])
        1
    """
    orders = tuple(orders)
    if not orders or any(p not in (1, 2) for p in orders):
        raise SymflowError(f"got orders={orders!r}; the SME has orders 1 and 2")
    if method not in ("exact", "monte_carlo"):
        raise SymflowError(f"got method={method!r}; use 'exact' (closed moment systems) or "
                           "'monte_carlo'")
    try:
        lrs = np.array(sorted((float(lr) for lr in lrs), reverse=True))
    except (TypeError, ValueError):
        raise SymflowError(f"got lrs={lrs!r}; give at least two positive learning rates") from None
    if len(lrs) < 2 or np.any(~np.isfinite(lrs)) or np.any(lrs <= 0):
        raise SymflowError(f"got lrs={list(lrs)}; give at least two positive learning rates")
    if np.any(np.isclose(lrs[1:], lrs[:-1], rtol=1e-9, atol=0.0)):
        raise SymflowError(f"got lrs={list(lrs)}, with repeats; a slope needs distinct "
                           "learning rates")
    if isinstance(T, bool) or not isinstance(T, (int, float)) or not np.isfinite(T) or T <= 0:
        raise SymflowError(f"got T={T!r}; the horizon T = n*h must be a positive number")
    power = time_power(optimizer)
    steps = [step_count(T, lr**power, "lr" if power == 1 else f"lr**{power}") for lr in lrs]
    hyper_at = hyper if callable(hyper) else (lambda lr: hyper)
    if method == "exact" and power != 1:
        raise SymflowError(f"{optimizer.label}'s SDE lives on its whole state (theta and the "
                           "moment estimates) in t = n*h**2, and the square root of its "
                           "preconditioner does not close the moments; use "
                           "method='monte_carlo'")
    kwargs = dict(losses=losses, params=params, dataset=dataset, noise=noise,
                  noise_factor=noise_factor, batch_size=batch_size, replacement=replacement)
    if sdes is None:
        sdes = {p: sf.sme(optimizer, order=p, **kwargs) for p in orders}
    elif set(sdes) != set(orders) or not all(isinstance(e, sf.SDE) for e in sdes.values()):
        raise SymflowError(f"got sdes for orders {sorted(sdes)}; give one symflow.SDE per "
                           f"order in orders={list(orders)}")
    state = sdes[orders[0]].params
    if power == 2:  # Adam, RMSprop: the SDE on (theta, memory) compared on theta
        state = state[: len(state) // (1 + optimizer.memory_size(1))]
    refuse_strings(phi, "phi")
    phi = to_sympy(phi, "phi")
    x0 = check_start(x0, 1, len(state))[0]
    if method == "exact":
        sgd, sde, se = _exact(optimizer, kwargs, sdes, phi, state, x0, lrs, steps, T, hyper_at)
    else:
        sgd, sde, se = _monte_carlo(optimizer, kwargs, sdes, phi, state, x0, lrs, steps, T,
                                    hyper_at, n_paths, as_key(key), sde_substeps, solver,
                                    progress, power)
    errors = {p: np.abs(sgd - sde[p]) for p in orders}
    fits = {p: fit_slope(lrs, errors[p], se[p]) for p in orders}
    return WeakErrorReport(optimizer.label, phi, lrs, float(T), orders, method, sgd, sde,
                           errors, se, {p: f[0] for p, f in fits.items()},
                           {p: f[1] for p, f in fits.items()},
                           "t = n*h**2" if power == 2 else "t = n*h")


def time_power(optimizer) -> int:
    """``k`` with the SDE's time :math:`t = nh^k`: 2 for Adam and RMSprop (Malladi et al.'s
    scaling, the only one :func:`symflow.sme` derives for them), else 1."""
    return 2 if isinstance(optimizer, (sf.Adam, sf.RMSprop)) else 1


def fit_slope(lrs, errors, stderr):
    r"""``(slope, standard error)`` of :math:`\log e` against :math:`\log h`.

    Exact errors (``stderr`` zero): ordinary least squares, standard error NaN. Monte Carlo:
    weighted least squares with weights :math:`e_i/s_i` (the delta method:
    :math:`\operatorname{sd}\log e_i \approx s_i/e_i`) and the slope's standard error from
    those weights; NaN when an error is zero.
    """
    x, e, s = np.log(np.asarray(lrs)), np.asarray(errors, float), np.asarray(stderr, float)
    if not np.all(e > 0):
        return float("nan"), float("nan")
    y = np.log(e)
    if not np.any(s > 0):
        return float(np.polyfit(x, y, 1)[0]), float("nan")
    wt = (e / np.maximum(s, 1e-300)) ** 2  # inverse variances of log e
    xm = np.sum(wt * x) / np.sum(wt)
    sxx = np.sum(wt * (x - xm) ** 2)
    slope = float(np.sum(wt * (x - xm) * y) / sxx)
    return slope, float(1.0 / math.sqrt(sxx))


def _memory_start(optimizer, state, x0, lr, hyper):
    """``{symbol: value}`` of the real run's start: ``x0`` and the initial memory."""
    theta = sp.Matrix(state)
    init = sp.Matrix(optimizer.initial_memory(theta, _no_gradient, sf.h))
    values = {**{str(k): v for k, v in (hyper(lr) or {}).items()}, "h": lr}
    point = dict(zip(state, x0))
    mem = [float(e.xreplace(point).subs({s: values[str(s)] for s in e.free_symbols
                                         if str(s) in values})) for e in init]
    return np.concatenate([np.asarray(x0, dtype=float), mem])


def _no_gradient(point):
    raise SymflowError("the optimizer's initial memory evaluates a gradient; weak_error "
                       "starts from a gradient-free initial memory")


def _transition(optimizer, kwargs, degree):
    if isinstance(optimizer, (sf.SGD, sf.GD)):
        return sf.sgd_moments(optimizer, degree=degree,
                              **{k: v for k, v in kwargs.items()
                                 if k not in ("batch_size", "replacement")})
    if kwargs["batch_size"] is None:
        raise SymflowError(f"got {optimizer.label} with no batch size; pass batch_size=B")
    data = {k: kwargs[k] for k in ("losses", "params", "dataset")}
    return memory_moments(optimizer, **data, batch_size=kwargs["batch_size"],
                          replacement=True if kwargs["replacement"] is None
                          else kwargs["replacement"], degree=degree)


def _exact(optimizer, kwargs, sdes, phi, state, x0, lrs, steps, T, hyper):
    expr = sp.expand(phi)
    degree = sp.Poly(expr, *state).total_degree() if expr.is_polynomial(*state) else None
    if degree is None or degree > 2:
        raise SymflowError(f"got phi={phi}; method='exact' needs a polynomial of degree <= 2 "
                           "in the parameters (use method='monte_carlo' otherwise)")
    degree = max(degree, 1)
    trans = _transition(optimizer, kwargs, degree)
    coeffs = np.array(trans.coefficients(expr).evalf(), dtype=float).ravel()
    memory = len(trans.params) > len(state)
    if tuple(trans.params[: len(state)]) != tuple(state):
        raise SymflowError(f"the SDE lives on {list(state)}, the optimizer on "
                           f"{list(trans.params)}; weak_error compares SMEs on theta")
    z0 = (lambda lr: _memory_start(optimizer, state, x0, lr, hyper)) if memory else \
        (lambda lr: x0)
    transition = _numeric(trans.matrix, trans.constants, hyper)
    gens = {}
    for p, sde in sdes.items():
        gen = sf.sde_moments(sde, degree)
        gens[p] = _numeric(gen.matrix, gen.constants, hyper)
        gens_basis = gen.basis
        sde_coeffs = np.array(gen.coefficients(expr).evalf(), dtype=float).ravel()
    sgd = np.empty(len(lrs))
    sde = {p: np.empty(len(lrs)) for p in sdes}
    for i, (lr, n) in enumerate(zip(lrs, steps)):
        point = dict(zip(trans.params, z0(lr)))
        first = np.array([float(m.xreplace(point)) for m in trans.basis])
        sgd[i] = first @ np.linalg.matrix_power(transition(lr), n) @ coeffs
        start = np.array([float(m.xreplace(dict(zip(state, x0)))) for m in gens_basis])
        for p, generator in gens.items():
            sde[p][i] = start @ scipy.linalg.expm(T * generator(lr)) @ sde_coeffs
    return sgd, sde, {p: np.zeros(len(lrs)) for p in sdes}


def _sde_start(optimizer, sde, state, x0, lr, hyper, power):
    """The SDE's start: ``x0``, and zero memory for a whole-state SDE (Adam, RMSprop)."""
    if tuple(sde.params[: len(state)]) != tuple(state):
        raise SymflowError(f"the SDE lives on {list(sde.params)}, the optimizer on "
                           f"{list(state)}; weak_error compares them on {list(state)}")
    if len(sde.params) == len(state):
        return x0
    if power != 2:
        raise SymflowError("method='monte_carlo' compares SMEs on theta, or Adam's and "
                           f"RMSprop's whole-state SDEs; got an SDE on {list(sde.params)} "
                           f"for {optimizer.label}")
    start = _memory_start(optimizer, state, x0, lr, hyper)
    if np.any(start[len(state):] != 0):
        raise SymflowError(f"{optimizer.label} starts with memory {list(start[len(state):])}; "
                           "weak_error starts the SDE's rescaled memory at zero, as the "
                           "optimizer's")
    return np.concatenate([x0, np.zeros(len(sde.params) - len(state))])


def _monte_carlo(optimizer, kwargs, sdes, phi, state, x0, lrs, steps, T, hyper, n_paths,
                 key, substeps, solver, progress, power=1):
    batch = {} if isinstance(optimizer, sf.SGD) else {
        "batch_size": kwargs["batch_size"], "replacement": kwargs["replacement"]}
    pair = [phi, phi**2]
    sgd, sgd_se = np.empty(len(lrs)), np.empty(len(lrs))
    sde = {p: np.empty(len(lrs)) for p in sdes}
    se = {p: np.empty(len(lrs)) for p in sdes}
    data = {k: v for k, v in kwargs.items() if k in ("losses", "params", "dataset")}
    for i, (lr, n) in enumerate(zip(lrs, steps)):
        k_sgd, k_sde = jax.random.split(jax.random.fold_in(key, i))
        run = run_sgd(optimizer, **data, x0=x0, lr=lr, n_steps=n, n_paths=n_paths, key=k_sgd,
                      phi=pair, hyper=hyper(lr), progress=progress, **batch)
        mean, second = run.stats["phi"][-1]
        sgd[i], sgd_se[i] = mean, math.sqrt(max(second - mean**2, 0.0) / n_paths)
        for p, sme in sdes.items():
            start = _sde_start(optimizer, sme, state, x0, lr, hyper, power)
            sol = simulate_sde(sme, start, T, n_paths, k_sde, dt=lr**power / substeps,
                               solver=solver, phi=pair, hyper=hyper(lr), lr=lr,
                               progress=progress)
            m, s2 = sol.stats["phi"][-1]
            sde[p][i] = m
            se[p][i] = math.sqrt(sgd_se[i] ** 2 + max(s2 - m**2, 0.0) / n_paths)
    return sgd, sde, se


__all__ = ["WeakErrorReport", "fit_slope", "time_power", "weak_error"]
