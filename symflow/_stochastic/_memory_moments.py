r"""Exact moments of a minibatch optimizer with memory: its transition operator on the state.

An optimizer whose step evaluates one gradient, at a point :math:`p(z)` affine in the state
:math:`z = (\theta, m)`, and is affine in that gradient (heavy ball, Nesterov, SGD, ...),

.. math::

    z_{n+1} = \Phi(z_n, g_n),\qquad g_n = \nabla L(p) + \xi,\quad \mathbb E\xi = 0,\quad
    \operatorname{Cov}\xi = c_{N,B}\,\Sigma_1(p),

has, for every polynomial :math:`\varphi` of degree :math:`\le 2` in :math:`z`, exactly

.. math::

    \mathcal K\varphi(z) = \varphi\bigl(\Phi(z, \nabla L(p))\bigr)
      + \tfrac12\,\bigl(R\,c_{N,B}\Sigma_1(p)\,R^\top\bigr) : \nabla^2\varphi ,
    \qquad R = \partial_g\Phi ,

which maps the polynomials of degree :math:`\le 2` into themselves when :math:`\nabla L` is
affine and :math:`\Sigma_1` quadratic (linear regression). Then
:math:`\mathbb E\varphi(z_n) = m(z_0)\cdot K^n c` with no Monte Carlo: the exact side of the
weak-error check of the memory SMEs (:func:`solvers.weak_error`). This is
:func:`symflow.sgd_moments` on the whole state.

Example (heavy ball on :math:`(w \mp 1)^2/2`, batch 1: stationary :math:`\mathbb E w^2`)::

    >>> import sympy as sp, symflow as sf
    >>> w = sp.Symbol("w")
    >>> K = memory_moments(sf.HeavyBall(beta=sp.Rational(1, 2)), [(w - 1)**2/2, (w + 1)**2/2],
    ...                    [w], batch_size=1)
    >>> K.params, sp.factor(K.stationary_moments()[w**2])   # h + h^2/3 + ...; the SME's: h
    ((w, v_w), -3*h/(h - 3))
"""

from __future__ import annotations

import sympy as sp

from .._core._errors import SymflowError
from .._core._symbols import h
from ..optimizers import SGD
from ._dataset import as_dataset
from ._moments import MomentSystem, _check_degree, _operator_matrix


def _memory_symbols(optimizer, params, size):
    names = getattr(optimizer, "memory_names", None)
    names = list(names(params)) if names is not None else []
    if len(names) != size:
        names = [f"m{k}" for k in range(size)]
    return tuple(sp.Symbol(n, real=True) for n in names)


def memory_moments(optimizer, losses=None, params=None, dataset=None, *, batch_size,
                   replacement=True, degree: int = 2, hyper=()) -> MomentSystem:
    """The transition operator of ``optimizer`` with minibatch gradients on the whole state
    (see the module docstring); a :class:`~symflow.MomentSystem` in ``(theta, memory)``."""
    degree = _check_degree(degree)
    if degree > 2:
        raise SymflowError(f"got degree={degree}; the exact moments use only the mean and "
                           "covariance of the minibatch gradient: degree <= 2")
    ds = as_dataset(dataset, losses, params, hyper)
    params, d = tuple(ds.params), len(ds.params)
    sampler = SGD(batch_size=batch_size, replacement=replacement)
    scale = sampler.noise_scale(ds.n_samples)
    size = optimizer.memory_size(d)
    memory = _memory_symbols(optimizer, params, size)
    state = params + memory
    theta = sp.Matrix(params)
    points, slots = [], []

    def oracle(point):
        points.append(sp.Matrix(point))
        slots.append(sp.Matrix([sp.Dummy(f"g{i}") for i in range(d)]))
        return slots[-1]

    if size:
        nxt, mem = optimizer.step_memory(theta, sp.Matrix(memory), oracle, h)
        phi = sp.Matrix.vstack(sp.Matrix(nxt), sp.Matrix(mem))
    else:
        phi = sp.Matrix(optimizer.step(theta, oracle, h))
    if len(slots) != 1:
        raise SymflowError(f"{optimizer.label} evaluates {len(slots)} gradients a step; the "
                           "exact moments are formed for rules with one gradient evaluation "
                           "(heavy ball, Nesterov, SGD). Use method='monte_carlo'")
    g = list(slots[0])
    R = phi.jacobian(g)
    if R.free_symbols & set(g):
        raise SymflowError(f"{optimizer.label} is not affine in the gradient; its moments do "
                           "not close (use method='monte_carlo')")
    at = dict(zip(params, points[0]))
    mean_grad = sp.Matrix(ds.mean_gradient).xreplace(at)
    mean_map = phi.xreplace(dict(zip(g, mean_grad))).applyfunc(sp.expand)
    spread = (scale * R * sp.Matrix(ds.gradient_covariance).xreplace(at) * R.T)
    spread = spread.applyfunc(sp.expand)
    moved = dict(zip(state, mean_map))

    def apply(poly):
        hess = sp.hessian(poly, state)
        return poly.xreplace(moved) + sum((spread[i, j] * hess[i, j]
                                           for i in range(len(state))
                                           for j in range(len(state))), sp.S.Zero) / 2

    source = f"{optimizer.label} with minibatches of {batch_size}"
    basis, mat = _operator_matrix(apply, state, degree, source,
                                  "it closes when grad L is affine and the gradient-noise "
                                  "covariance is at most quadratic")
    return MomentSystem(basis, mat, "transition", state, degree, source)


__all__ = ["memory_moments"]
