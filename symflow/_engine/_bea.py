r"""Backward error analysis of a one-step map, to any order, in :math:`O(N^3)` JVPs.

Given a map :math:`\Phi_h(\theta) = \theta + \sum_{k\ge1} h^k d_k(\theta)`, find the vector
field :math:`f_h = \sum_{k\ge0} h^k f_k` whose exact time-:math:`h` flow reproduces it:

.. math::

    \exp(h D_{f_h})\,\theta = \theta + \sum_{j\ge1} \frac{h^j}{j!} u_j,
    \qquad u_1 = f_h,\quad u_j = (\partial u_{j-1})\, f_h ,

where :math:`D_f` is the Lie derivative along :math:`f`. Writing :math:`u_j[m]` for the
coefficient of :math:`h^m` in :math:`u_j` and comparing powers :math:`h^{n+1}`,

.. math::

    f_n = d_{n+1} - \sum_{j=2}^{n+1} \frac{1}{j!}\, u_j[n+1-j],
    \qquad u_j[m] = \sum_{a+b=m} \bigl(\partial u_{j-1}[a]\bigr)\, f_b .

Every :math:`u_j[m]` on the right-hand side involves only :math:`f_0,\dots,f_{n-1}`, so the
recursion is triangular. Order :math:`N` needs :math:`O(N^3)` Jacobian-vector products
(each Jacobian is computed once and cached), instead of the exponentially many terms of
an expansion over compositions or trees. See Hairer, Lubich & Wanner, *Geometric
Numerical Integration*, 2nd ed., Springer 2006, ch. IX.1.
"""

from __future__ import annotations

import math

import sympy as sp

from .._core._progress import progress_bar


def _add(u, v):
    return tuple(a + b for a, b in zip(u, v))


def _jvp(alg, jac, v):
    """Jacobian (list of rows) times vector."""
    out = []
    for row in jac:
        acc = alg.zero
        for entry, vi in zip(row, v):
            if not alg.is_zero(entry) and not alg.is_zero(vi):
                acc = acc + entry * vi
        out.append(acc)
    return tuple(out)


def modified_field(alg, d, order: int, progress: bool | None = None):
    r"""Return ``[f_0, ..., f_order]`` for the map with increments ``d[k]`` (``d[0]`` unused).

    ``d`` must hold the Taylor coefficients :math:`d_1, \dots, d_{N+1}` (indices 1..N+1).
    """
    dim = len(d[1])
    zero = (alg.zero,) * dim
    f: list[tuple] = []
    u: dict[tuple[int, int], tuple] = {}
    jacobians: dict[tuple[int, int], list] = {}
    inv_fact = [alg.const(sp.Rational(1, math.factorial(j))) for j in range(order + 2)]

    def jacobian(key):
        if key not in jacobians:
            vec = u[key]
            jacobians[key] = [[alg.diff(c, i) for i in range(dim)] for c in vec]
        return jacobians[key]

    for n in progress_bar(range(order + 1), desc="modified equation", unit="order",
                          progress=progress):
        correction = zero
        for j in range(2, n + 2):
            m = n + 1 - j
            acc = zero
            for a in range(m + 1):
                if all(alg.is_zero(c) for c in u[(j - 1, a)]):
                    continue
                acc = _add(acc, _jvp(alg, jacobian((j - 1, a)), f[m - a]))
            u[(j, m)] = acc
            correction = _add(correction, tuple(c * inv_fact[j] for c in acc))
        f_n = tuple(dk - ck for dk, ck in zip(d[n + 1], correction))
        f.append(f_n)
        u[(1, n)] = f_n
    return f

