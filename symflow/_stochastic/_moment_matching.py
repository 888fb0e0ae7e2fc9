r"""Solve for the SDE whose one-step increment moments equal a map's (weak order p).

Given the Taylor coefficients (in the step :math:`\epsilon`) of the map's
:math:`\mathbb E\Delta` and :math:`\mathbb E\Delta\Delta^\top`
(:mod:`symflow._stochastic._increment_moments`), the drift :math:`b = \sum_k\epsilon^k b_k`
and the diffusion matrix :math:`D = \sum_k\epsilon^k D_k` of an SDE run for the time
:math:`\tau = \epsilon^q` of one step are found order by order: at :math:`\epsilon^n` the
unknowns :math:`b_{n-q}` and :math:`D_{n-q}` enter the SDE's moments only through
:math:`\tau b` and :math:`\tau D`, with coefficient one, so each is the residual between the
map's coefficient and the SDE's with the lower terms already fixed (Li, Tai & E, JMLR 20,
2019, Theorems 1 and 3: equal moments to :math:`O(\epsilon^{p+1})` give weak order
:math:`p`). Nothing is typed in: SGD's :math:`-\nabla(L + \tfrac h4\lVert\nabla L\rVert^2)`
comes out of this residual.
"""

from __future__ import annotations

import sympy as sp

from .._core._errors import SymflowError
from .._core._guard import as_sympy
from ._increment_moments import IncrementMoments, sde_increment_moments


def match_moments(moments: IncrementMoments, time_step, mean_order: int, second_order: int,
                  where: str = "the rule"):
    r"""``(drift, D)`` matching ``moments.mean`` through ``step**mean_order`` and
    ``moments.second`` through ``step**second_order`` (in the jet symbols of
    ``moments.jets`` when the moments are written in them: ``moments.jets.substitute``
    puts the values in).

    Example (SGD with :math:`\Sigma = 1/2`: drift :math:`-w - \tfrac h2 w`, :math:`D = h/2`)::

        >>> import sympy as sp
        >>> from symflow._core._symbols import h
        >>> from symflow._stochastic._increment_moments import (GradientNoise,
        ...     map_increment_moments)
        >>> w = sp.Symbol("w")
        >>> noise = GradientNoise([w], [w], [[1]], sp.Rational(1, 2))
        >>> mom = map_increment_moments(lambda z, g: z - h * g(z), [w], [w], h, noise, 2)
        >>> match_moments(mom, h, 2, 2)
        (Matrix([[-h*w/2 - w]]), Matrix([[h/2]]))
    """
    coords, step = moments.coords, moments.step
    n = len(coords)
    time_step = as_sympy(time_step)
    q = sp.Poly(time_step, step).degree()
    drift, cov = sp.zeros(n, 1), sp.zeros(n, n)
    top = max(mean_order, second_order)
    for k in range(1, top + 1):
        for kind in ("mean", "second"):
            limit = mean_order if kind == "mean" else second_order
            if k > limit:
                continue
            sde = sde_increment_moments(drift, cov, coords, step, time_step,
                                        k if kind == "mean" else 0,
                                        k if kind == "second" else 0, jets=moments.jets)
            target = moments.mean[k] if kind == "mean" else moments.second[k]
            have = sde.mean[k] if kind == "mean" else sde.second[k]
            resid = (target - have).applyfunc(sp.expand)
            if resid.is_zero_matrix:
                continue
            if k < q:
                raise SymflowError(
                    f"{where}: the {kind} of the increment is of order {step}**{k}, larger "
                    f"than the time {time_step} of one step; no SDE in this time matches it")
            if kind == "mean":
                drift = (drift + step**(k - q) * resid).applyfunc(sp.expand)
            else:
                cov = (cov + step**(k - q) * resid).applyfunc(sp.expand)
    return drift, cov


__all__ = ["match_moments"]
