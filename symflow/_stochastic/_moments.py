r"""Closed moment systems: exact expectations of polynomials under SGD and under an SDE.

Let :math:`\mathcal P_k` be the polynomials of total degree :math:`\le k` in the parameters,
with the monomial basis :math:`m = (1, \theta_1, \dots, \theta_1^2, \dots)`. An operator
:math:`\mathcal A` that maps :math:`\mathcal P_k` into itself is a matrix :math:`A` on
coefficient vectors: :math:`\mathcal A(c\cdot m) = (Ac)\cdot m`. Two such operators give
*exact* expectations, without Monte Carlo and without discretization error:

* the **generator** of an SDE, :math:`\mathcal L\varphi = b\cdot\nabla\varphi +
  \tfrac12 D:\nabla^2\varphi`, preserves :math:`\mathcal P_k` when the drift :math:`b` is
  affine and :math:`D = \sigma\sigma^\top` is a polynomial of degree :math:`\le 2`; then
  :math:`\mathbb E\,\varphi(X_t) = m(x_0)\cdot e^{tA}c` (backward Kolmogorov equation;
  Øksendal, *Stochastic Differential Equations*, 8.1);
* the **transition operator** of SGD, :math:`\mathcal K\varphi(\theta) =
  \mathbb E[\varphi(\theta_{n+1}) \mid \theta_n = \theta]`. With the minibatch gradient
  :math:`\nabla L + \xi`, :math:`\mathbb E\xi = 0`, :math:`\operatorname{Cov}\xi = \Sigma`,
  and :math:`\deg\varphi \le 2`, exactly

  .. math::  \mathcal K\varphi(\theta) = \varphi(\theta - h\nabla L(\theta))
             + \tfrac{h^2}{2}\,\Sigma(\theta):\nabla^2\varphi ,

  which preserves :math:`\mathcal P_2` when :math:`\nabla L` is affine and :math:`\Sigma` is
  quadratic (linear regression, quadratic losses); then
  :math:`\mathbb E\,\varphi(\theta_n) = m(\theta_0)\cdot A^n c`.

Stationary moments :math:`\mu = \mathbb E_\infty m` solve :math:`A^\top\mu = 0`
(generator) or :math:`A^\top\mu = \mu` (transition) with :math:`\mu_1 = 1`, exactly, as
rational functions of :math:`h`. This is how the weak-error checks of the stochastic
modified equations (Li, Tai & E, JMLR 20, 2019) are made exact on linear regression.
"""

from __future__ import annotations

import functools
import itertools

import sympy as sp

from .._core import _validate as v
from .._core._errors import SymflowError
from .._core._latex import LatexDisplay
from .._core._symbols import h
from ..optimizers import GD, SGD, AbstractOptimizer
from ._sde import SDE
from ._sme import sme


def monomial_basis(params, degree: int) -> tuple:
    """Monomials of total degree ``<= degree``, by degree then lexicographically (1 first)."""
    out = []
    for k in range(degree + 1):
        for combo in itertools.combinations_with_replacement(params, k):
            out.append(sp.Mul(*combo))
    return tuple(out)


class MomentSystem(LatexDisplay):
    r"""A linear operator on :math:`\mathcal P_k` as a matrix on monomial coefficients.

    Attributes
    ----------
    basis : tuple of sympy.Expr
        The monomials :math:`m` (``basis[0] == 1``).
    matrix : ImmutableMatrix
        :math:`A` with :math:`\mathcal A(c\cdot m) = (Ac)\cdot m`; entries are exact, with
        the constants (``sf.h``, noise levels) as symbols.
    kind : str
        ``"generator"`` (continuous time: :math:`\mathbb E\varphi(X_t) = m(x_0)\cdot
        e^{tA}c`) or ``"transition"`` (one step: :math:`\mathbb E\varphi(\theta_n) =
        m(\theta_0)\cdot A^nc`).
    params, degree, source
        The state symbols, :math:`k`, and what the operator belongs to.

    Examples
    --------
    ::

        >>> import sympy as sp, symflow as sf
        >>> x = sp.Symbol("x")
        >>> ou = sf.SDE(drift=[-x], diffusion=sp.sqrt(2), params=[x])
        >>> gen = sf.sde_moments(ou, degree=2)
        >>> gen.basis, gen.matrix
        ((1, x, x**2), Matrix([
        [0,  0,  2],
        [0, -1,  0],
        [0,  0, -2]]))
        >>> gen.stationary_moments()[x**2]
        1
    """

    def __init__(self, basis, matrix, kind, params, degree, source=""):
        self.basis, self.kind, self.params = tuple(basis), kind, tuple(params)
        self.matrix = sp.ImmutableMatrix(matrix)
        self.degree, self.source = degree, source

    @property
    def constants(self) -> tuple:
        """Symbols of the matrix other than the parameters, sorted by name."""
        return tuple(sorted(self.matrix.free_symbols - set(self.params), key=str))

    def coefficients(self, phi) -> sp.ImmutableMatrix:
        """The coefficient column :math:`c` of a polynomial ``phi`` in :attr:`basis`."""
        return _coefficients(phi, self.basis, self.params, self.degree)

    def stationary_moments(self) -> dict:
        r"""Exact stationary expectations ``{monomial: E_infinity[monomial]}``.

        Solves :math:`A^\top\mu = 0` (generator) or :math:`(A^\top - I)\mu = 0`
        (transition) with :math:`\mu_1 = 1`. Raises when the solution is not unique (no
        or several stationary laws on :math:`\mathcal P_k`).
        """
        a = sp.Matrix(self.matrix).T
        if self.kind == "transition":
            a = a - sp.eye(a.shape[0])
        unknowns = [sp.Dummy(f"mu{k}") for k in range(1, a.shape[0])]
        equations = list(a[:, 0] + a[:, 1:] * sp.Matrix(unknowns))
        sol = sp.linsolve(equations, unknowns)
        if sol == sp.S.EmptySet:
            raise SymflowError(f"{self.source}: no stationary moments of degree <= "
                               f"{self.degree} (the dynamics do not settle)")
        (vec,) = tuple(sol)
        if any(e.free_symbols & set(unknowns) for e in vec):
            raise SymflowError(f"{self.source}: the stationary moments of degree <= "
                               f"{self.degree} are not unique")
        out = {self.basis[0]: sp.S.One}
        for mono, val in zip(self.basis[1:], vec):
            out[mono] = sp.factor(sp.cancel(val))
        return out

    def latex(self) -> str:
        return (f"\\mathcal{{A}}\\,[{', '.join(sp.latex(b) for b in self.basis)}]:\\ "
                f"{sp.latex(self.matrix)}")

    def __repr__(self) -> str:
        return (f"<MomentSystem {self.kind} degree={self.degree} size={len(self.basis)} "
                f"of {self.source}>")


def _coefficients(expr, basis, params, degree):
    expr = sp.expand(v.to_sympy(expr, "phi"))
    if not expr.is_polynomial(*params):
        raise SymflowError(f"got phi={expr}; it must be a polynomial of degree <= {degree} in "
                           f"{list(params)}")
    poly = sp.Poly(expr, *params) if expr != 0 else None
    if poly is not None and poly.total_degree() > degree:
        raise SymflowError(f"got phi={expr} of degree {poly.total_degree()}; this moment "
                           f"system holds polynomials of degree <= {degree} only")
    index = _monomial_index(tuple(basis), tuple(params))
    out = sp.zeros(len(basis), 1)
    for mono, c in (poly.terms() if poly is not None else ()):
        out[index[mono]] = c
    return sp.ImmutableMatrix(out)


@functools.lru_cache(maxsize=32)
def _monomial_index(basis, params) -> dict:
    """``{exponent tuple: position in basis}``."""
    return {sp.Poly(b, *params).monoms()[0]: i for i, b in enumerate(basis)}


def _operator_matrix(apply, params, degree, source, why):
    basis = monomial_basis(params, degree)
    cols = []
    for b in basis:
        image = sp.expand(apply(b))
        if not image.is_polynomial(*params) or (
                image != 0 and sp.Poly(image, *params).total_degree() > degree):
            raise SymflowError(
                f"the moment hierarchy of {source} does not close at degree {degree}: the "
                f"image of {b} is {image}, outside the polynomials of degree <= {degree} "
                f"({why}). Use Monte Carlo instead (solvers.weak_error(..., "
                "method='monte_carlo'))")
        cols.append(_coefficients(image, basis, params, degree))
    return basis, sp.Matrix.hstack(*cols)


def _check_degree(degree):
    degree = v.check_order(degree)
    if degree < 1:
        raise SymflowError(f"got degree={degree}; give a polynomial degree >= 1")
    return degree


@functools.lru_cache(maxsize=32)
def sde_moments(sde: SDE, degree: int = 2) -> MomentSystem:
    r"""The generator :math:`\mathcal L` of an SDE on polynomials of degree :math:`\le k`.

    Exact when the drift is affine and the diffusion matrix is at most quadratic in the
    state (e.g. the SME of SGD on linear regression); otherwise a clear
    :class:`SymflowError`.
    """
    if not isinstance(sde, SDE):
        raise SymflowError(f"got {v._describe(sde)}; pass an SDE (sf.SDE or sf.sme(...))")
    degree = _check_degree(degree)
    basis, mat = _operator_matrix(sde.generator, sde.params, degree, sde.name,
                                  "it closes when the drift is affine and D = sigma sigma^T "
                                  "is at most quadratic")
    return MomentSystem(basis, mat, "generator", sde.params, degree, sde.name)


def sgd_moments(optimizer, losses=None, params=None, dataset=None, noise=None,
                noise_factor=None, degree: int = 2, hyper=()) -> MomentSystem:
    r"""The one-step transition operator of SGD on polynomials of degree :math:`\le 2`.

    Takes the arguments of :func:`symflow.sme` (the training set, or a noise model). The
    mean step is the optimizer's own map (:math:`\theta - h\nabla L`) and the step
    covariance :math:`h^2\Sigma` is :math:`h` times the SME diffusion matrix, so the
    minibatch covariance (with or without replacement) is the exact one of
    :func:`symflow.sme`.

    Example::

        >>> import sympy as sp, symflow as sf
        >>> w = sp.Symbol("w")
        >>> K = sf.sgd_moments(sf.SGD(batch_size=1), losses=[(w - 1)**2/2, (w + 1)**2/2],
        ...                    params=[w])
        >>> sp.factor(K.stationary_moments()[w**2])   # exact: h/(2 - h)
        -h/(h - 2)
    """
    if isinstance(optimizer, AbstractOptimizer) and not isinstance(optimizer, (SGD, GD)):
        raise SymflowError(
            f"got {optimizer.label}; the exact one-step transition operator is formed for SGD "
            "(or GD with a noise model), whose step is linear in the minibatch gradient. For "
            "other rules use sf.sme(...) and sde_moments, or Monte Carlo")
    degree = _check_degree(degree)
    if degree > 2:
        raise SymflowError(
            f"got degree={degree}; exact SGD moments use only the mean and covariance of "
            "the minibatch gradient, so they are exact for polynomials of degree <= 2")
    sde = sme(optimizer, losses=losses, params=params, dataset=dataset, order=1, noise=noise,
              noise_factor=noise_factor, hyper=hyper)
    params = sde.params
    theta = sp.Matrix(params)
    drift = sp.Matrix(sde.drift)

    def grad(point):
        return -drift.xreplace(dict(zip(params, point)))

    step = optimizer.step(theta, grad, h)  # the mean step, theta - h grad L
    step_cov = h * sp.Matrix(sde.covariance)
    moved = dict(zip(params, step))

    def apply(phi):
        hess = sp.hessian(phi, params)
        spread = sum((step_cov[i, j] * hess[i, j] for i in range(len(params))
                      for j in range(len(params))), sp.S.Zero)
        return phi.xreplace(moved) + spread / 2

    source = optimizer.label
    basis, mat = _operator_matrix(apply, params, degree, source,
                                  "it closes when grad L is affine and the gradient-noise "
                                  "covariance is at most quadratic")
    return MomentSystem(basis, mat, "transition", params, degree, source)


__all__ = ["MomentSystem", "monomial_basis", "sde_moments", "sgd_moments"]
