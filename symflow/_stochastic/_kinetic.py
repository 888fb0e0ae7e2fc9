r"""Underdamped (kinetic) Langevin dynamics: the stationary density of a whole-state SDE.

Slow heavy ball (:math:`1-\beta = c\sqrt h`, :func:`symflow.sme`) has the whole-state SME

.. math::

    d\theta = u\,ds,\qquad du = -(\gamma u + \nabla L(\theta))\,ds + \sqrt{2\gamma T}\,dW ,

noise on the velocity only, so :math:`D` is singular and there is no zero-current density.
Its stationary density is still the Gibbs density of the energy
:math:`H = L(\theta) + \tfrac12\lVert u\rVert^2`,

.. math::  p_\infty = e^{-H/T}/Z ,

with a non-zero (Hamiltonian) current (Pavliotis, *Stochastic Processes and Applications*,
2014, section 6.5). :func:`kinetic_density` recognises this structure (position rows of the
drift equal the velocities, constant isotropic velocity noise :math:`D_{uu} = 2\gamma T I`,
velocity drift :math:`-\gamma u - \nabla L`) and checks the candidate exactly by applying the
Fokker–Planck operator to it.
"""

from __future__ import annotations

import sympy as sp

from .._core._gradient import expr_potential, is_zero_expr


def kinetic_parts(drift, covariance, params):
    """``(L, gamma, T)`` when the SDE is underdamped Langevin in (theta, u), else None."""
    n = len(params)
    if n % 2:
        return None
    d = n // 2
    theta, u = params[:d], params[d:]
    if any(not is_zero_expr(drift[i] - u[i]) for i in range(d)):
        return None
    cov = sp.Matrix(covariance)
    if not cov[:d, :].is_zero_matrix or not cov[:, :d].is_zero_matrix:
        return None
    var = cov[d, d]
    if var.free_symbols & set(params) or is_zero_expr(var):
        return None
    if not all(is_zero_expr(cov[d + i, d + j] - (var if i == j else 0))
               for i in range(d) for j in range(d)):
        return None
    gamma = -sp.diff(drift[d], u[0])
    rest = [sp.expand(drift[d + i] + gamma * u[i]) for i in range(d)]
    if gamma.free_symbols & set(params) or any(r.free_symbols & set(u) for r in rest):
        return None
    loss = expr_potential(rest, list(theta))
    if loss is None:
        return None
    return loss, gamma, var / (2 * gamma)


def kinetic_density(fp):
    """``(potential H/T, T)`` of the stationary density of a kinetic Langevin
    :class:`~symflow.FokkerPlanck`, checked by ``fp.operator(p) == 0``; else None."""
    params = fp.params
    parts = kinetic_parts(fp.drift, fp.diffusion_matrix, params)
    if parts is None:
        return None
    loss, _, temp = parts
    d = len(params) // 2
    energy = loss + sum((q**2 for q in params[d:]), sp.S.Zero) / 2
    phi = sp.expand(energy / temp)
    p = sp.exp(-phi)
    if not is_zero_expr(sp.simplify(fp.operator(p) / p)):
        return None
    return phi, temp


__all__ = ["kinetic_density", "kinetic_parts"]
