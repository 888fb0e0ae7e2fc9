r"""Divergences between two multivariate normal laws, exact where SymPy can be.

For :math:`p = \mathcal N(\mu_1, \Sigma_1)` and :math:`q = \mathcal N(\mu_2, \Sigma_2)` on
:math:`\mathbb R^d`, with :math:`\Delta = \mu_2 - \mu_1` (Su Jianlin, "两个多元正态分布的KL散度、
巴氏距离和W距离", 2021; Kullback 1959; Bhattacharyya 1943; Dowson & Landau 1982, Olkin &
Pukelsheim 1982, Givens & Shortt 1984 for :math:`W_2`):

.. math::

    \mathrm{KL}(p\Vert q) &= \tfrac12\Bigl[\operatorname{tr}(\Sigma_2^{-1}\Sigma_1)
        + \Delta^\top\Sigma_2^{-1}\Delta - d + \log\frac{\det\Sigma_2}{\det\Sigma_1}\Bigr],\\
    D_B(p, q) &= -\log\!\int\!\sqrt{pq} = \tfrac18\Delta^\top\bar\Sigma^{-1}\Delta
        + \tfrac12\log\frac{\det\bar\Sigma}{\sqrt{\det\Sigma_1\det\Sigma_2}},
        \qquad \bar\Sigma = \tfrac12(\Sigma_1 + \Sigma_2),\\
    W_2(p, q)^2 &= \lVert\Delta\rVert^2 + \operatorname{tr}\Sigma_1 + \operatorname{tr}\Sigma_2
        - 2\operatorname{tr}\bigl(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}\bigr)^{1/2}.

**The matrix square root in** :math:`W_2`. Only the trace
:math:`\tau = \operatorname{tr}(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2})^{1/2}` is needed.
:math:`\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}` is similar to :math:`\Sigma_1\Sigma_2`, so
:math:`\tau = \sum_i \sqrt{\lambda_i(\Sigma_1\Sigma_2)}`, and :func:`trace_sqrt_product`
takes the first route that applies:

======================  ==================================================================
``d = 1``               :math:`\sqrt{\sigma_1^2\sigma_2^2}`
both diagonal           :math:`\sum_i\sqrt{a_i b_i}`
``d = 2``               :math:`\sqrt{\operatorname{tr}(\Sigma_1\Sigma_2) + 2\sqrt{\det\Sigma_1
                        \det\Sigma_2}}` (from :math:`(\sqrt{\lambda_1}+\sqrt{\lambda_2})^2`)
commuting               :math:`\operatorname{tr}(\Sigma_1^{1/2}\Sigma_2^{1/2})`, when
                        :func:`matrix_sqrt` has both roots in closed form
otherwise (exact)       the characteristic polynomial of :math:`\Sigma_1\Sigma_2` is factored;
                        factors of degree :math:`\le 2` give explicit roots, each other
                        factor :math:`P` gives ``RootSum(P, Lambda(l, sqrt(l)))``: an exact
                        algebraic number (``.evalf(50)`` gives 50 digits), never a float
floating-point input    ``mpmath`` at 30 digits (eigen-decompositions); a ``sympy.Float``
======================  ==================================================================

Covariances must be symmetric and positive definite: numeric ones are checked (an error
names the smallest eigenvalue), symbolic ones are refused when SymPy can prove they are
not positive definite and otherwise assumed to be (the result holds where they are).
Numbers give numbers (exact rationals give exact results, floats give floats); the JAX
version for ensembles is :func:`solvers.gaussian_divergences`.
"""

from __future__ import annotations

import numbers

import mpmath
import sympy as sp

from .._core._errors import SymflowError
from .._core._guard import check_symbolic, to_sympy

__all__ = ["gaussian_bhattacharyya", "gaussian_kl", "gaussian_w2", "matrix_sqrt",
           "trace_sqrt_product"]

_DPS = 30


# -- input ---------------------------------------------------------------------------------

def _matrix(obj, what):
    """A SymPy Matrix from a scalar, nested list, numpy array or SymPy matrix."""
    check_symbolic(**{what: obj})
    if isinstance(obj, sp.MatrixBase):
        M = sp.Matrix(obj)
    elif isinstance(obj, (numbers.Number, sp.Expr)):
        M = sp.Matrix([[to_sympy(obj, what)]])
    else:
        try:
            tolist = getattr(obj, "tolist", None)
            M = sp.Matrix(tolist() if tolist else obj)
        except (TypeError, ValueError, sp.SympifyError) as exc:
            raise SymflowError(f"got {what}={obj!r}; give a number, a list or a SymPy/numpy "
                               "matrix") from exc
    if any(e.is_number and e.is_finite is not True for e in M):
        raise SymflowError(f"got {what}={M.tolist()} with a non-finite entry (nan or inf); "
                           "give finite numbers")
    return M


def _is_numeric(*mats) -> bool:
    """True when every entry is a number and at least one is a float."""
    entries = [e for M in mats for e in M]
    return all(e.is_number for e in entries) and any(e.has(sp.Float) for e in entries)


def _to_mp(M):
    return mpmath.matrix([[mpmath.mpf(sp.N(M[i, j], _DPS + 5)) for j in range(M.cols)]
                          for i in range(M.rows)])


def _check_covariance(S, what, d):
    if S.shape != (d, d):
        raise SymflowError(f"got {what} of shape {S.shape} for a mean of length {d}; the "
                           f"covariance must be {d}x{d}")
    asym = (S - S.T).applyfunc(lambda e: sp.simplify(e) if not e.is_number else e)
    if any(e != 0 and not (e.is_number and abs(sp.N(e)) < 1e-12 * (1 + abs(sp.N(S[0, 0]))))
           for e in asym):
        raise SymflowError(f"got a non-symmetric {what}={S.tolist()}; a covariance matrix "
                           "must equal its transpose")
    if all(e.is_number for e in S):
        with mpmath.workdps(_DPS):
            eig = mpmath.eigsy(_to_mp((S + S.T) / 2), eigvals_only=True)
            lo = min(eig[i] for i in range(d))
        if lo <= 0:
            raise SymflowError(f"{what} is not positive definite: its smallest eigenvalue is "
                               f"{mpmath.nstr(lo, 6)}; a normal law needs a symmetric "
                               "positive-definite covariance")
    elif S.is_positive_definite is False:
        raise SymflowError(f"{what}={S.tolist()} is not positive definite (SymPy proves it); "
                           "a normal law needs a symmetric positive-definite covariance")


def _law(mu, Sigma, which):
    mu = _matrix(mu, f"mu{which}")
    if mu.cols != 1:
        mu = mu.reshape(len(mu), 1) if mu.rows == 1 else None
    if mu is None:
        raise SymflowError(f"got a matrix mu{which}; the mean must be a vector")
    S = _matrix(Sigma, f"Sigma{which}")
    _check_covariance(S, f"Sigma{which}", mu.rows)
    return mu, S


def _pair(mu1, Sigma1, mu2, Sigma2):
    m1, S1 = _law(mu1, Sigma1, 1)
    m2, S2 = _law(mu2, Sigma2, 2)
    if m1.rows != m2.rows:
        raise SymflowError(f"the laws live in different dimensions ({m1.rows} and {m2.rows});"
                           " give means and covariances of one dimension")
    return m1, S1, m2, S2


def _quad(v, A):
    return (v.T * A * v)[0, 0]


# -- divergences ---------------------------------------------------------------------------

def gaussian_kl(mu1, Sigma1, mu2, Sigma2):
    r"""Kullback–Leibler divergence :math:`\mathrm{KL}(\mathcal N(\mu_1,\Sigma_1)\Vert
    \mathcal N(\mu_2,\Sigma_2))` (formula in the module docstring).

    Means are vectors (or scalars in 1-D), covariances matrices (or variances).

    Example::

        >>> import sympy as sp
        >>> m, s = sp.symbols("m s", positive=True)
        >>> sp.simplify(gaussian_kl(0, 1, m, s**2) - (sp.log(s) + (1 + m**2)/(2*s**2) - sp.S(1)/2))
        0
        >>> gaussian_kl([0, 0], [[2, 0], [0, 1]], [1, 0], [[1, 0], [0, 1]])
        1 - log(2)/2
    """
    m1, S1, m2, S2 = _pair(mu1, Sigma1, mu2, Sigma2)
    if _is_numeric(m1, S1, m2, S2):
        with mpmath.workdps(_DPS):
            A1, A2, dm = _to_mp(S1), _to_mp(S2), _to_mp(m2 - m1)
            inv2 = mpmath.inverse(A2)
            val = (sum((inv2 * A1)[i, i] for i in range(A1.rows)) + (dm.T * inv2 * dm)[0, 0]
                   - A1.rows + mpmath.log(mpmath.det(A2) / mpmath.det(A1))) / 2
            return sp.Float(val, _DPS)
    inv2 = S2.inv()
    d = m1.rows
    rational = sp.cancel((inv2 * S1).trace() + _quad(m2 - m1, inv2) - d)
    return rational / 2 + sp.log(sp.cancel(S2.det() / S1.det())) / 2


def gaussian_bhattacharyya(mu1, Sigma1, mu2, Sigma2):
    r"""Bhattacharyya distance :math:`D_B = -\log\int\sqrt{p\,q}\,dx` between two normal laws.

    Example::

        >>> import sympy as sp
        >>> a, b = sp.symbols("a b", positive=True)
        >>> sp.simplify(gaussian_bhattacharyya(0, a**2, 0, b**2)
        ...             - sp.log((a**2 + b**2)/(2*a*b))/2)
        0
    """
    m1, S1, m2, S2 = _pair(mu1, Sigma1, mu2, Sigma2)
    if _is_numeric(m1, S1, m2, S2):
        with mpmath.workdps(_DPS):
            A1, A2, dm = _to_mp(S1), _to_mp(S2), _to_mp(m2 - m1)
            Sb = (A1 + A2) / 2
            val = ((dm.T * mpmath.inverse(Sb) * dm)[0, 0] / 8
                   + mpmath.log(mpmath.det(Sb) / mpmath.sqrt(mpmath.det(A1) * mpmath.det(A2)))
                   / 2)
            return sp.Float(val, _DPS)
    Sb = (S1 + S2) / 2
    return (sp.cancel(_quad(m2 - m1, Sb.inv())) / 8
            + sp.log(sp.cancel(Sb.det()) / sp.sqrt(sp.cancel(S1.det() * S2.det()))) / 2)


def gaussian_w2(mu1, Sigma1, mu2, Sigma2, squared=False):
    r"""2-Wasserstein distance between two normal laws (``squared=True``: :math:`W_2^2`).

    The trace of the matrix square root is taken by :func:`trace_sqrt_product` (the routes
    are listed in the module docstring).

    Example::

        >>> import sympy as sp
        >>> m, a, b = sp.symbols("m a b", positive=True)
        >>> sp.simplify(gaussian_w2(0, a**2, m, b**2, squared=True) - (m**2 + (a - b)**2))
        0
        >>> gaussian_w2([0, 0], [[2, 1], [1, 2]], [0, 0], [[1, 0], [0, 1]], squared=True)
        4 - 2*sqrt(3)
    """
    m1, S1, m2, S2 = _pair(mu1, Sigma1, mu2, Sigma2)
    dm = m2 - m1
    w2sq = (dm.T * dm)[0, 0] + S1.trace() + S2.trace() - 2 * trace_sqrt_product(S1, S2)
    if not _is_numeric(m1, S1, m2, S2):
        w2sq = sp.expand(w2sq)
    if squared:
        return w2sq
    if isinstance(w2sq, sp.Float):
        return sp.Float(mpmath.sqrt(max(mpmath.mpf(w2sq), 0)), _DPS)
    return sp.sqrt(w2sq)


# -- the matrix square root ------------------------------------------------------------------

def _is_diagonal(M) -> bool:
    return all(M[i, j] == 0 for i in range(M.rows) for j in range(M.cols) if i != j)


def _mp_sqrtm(A):
    """Symmetric square root of a symmetric positive semi-definite mpmath matrix."""
    ev, Q = mpmath.eigsy(A)
    D = mpmath.diag([mpmath.sqrt(max(ev[i], 0)) for i in range(A.rows)])
    return Q * D * Q.T


def matrix_sqrt(S):
    r"""The symmetric positive square root :math:`S^{1/2}` of a positive-definite matrix.

    Closed forms: 1x1, diagonal, and 2x2,
    :math:`S^{1/2} = (S + \sqrt{\det S}\,I)/\sqrt{\operatorname{tr}S + 2\sqrt{\det S}}`
    (Cayley–Hamilton). A larger exact matrix is diagonalized when SymPy can
    (:math:`P\sqrt{D}P^{-1}`); a float matrix is done numerically (``mpmath``, 30 digits).
    Otherwise a :class:`SymflowError` says so: :func:`gaussian_w2` does not need this
    function there, since it uses :math:`\sum_i\sqrt{\lambda_i(\Sigma_1\Sigma_2)}`.

    Example::

        >>> R = matrix_sqrt([[2, 1], [1, 2]])
        >>> sp.simplify(R * R - sp.Matrix([[2, 1], [1, 2]]))
        Matrix([
        [0, 0],
        [0, 0]])
    """
    S = _matrix(S, "S")
    if S.rows != S.cols:
        raise SymflowError(f"got a {S.rows}x{S.cols} matrix; the square root needs a square "
                           "symmetric positive-definite matrix")
    n = S.rows
    if _is_numeric(S):
        with mpmath.workdps(_DPS):
            R = _mp_sqrtm(_to_mp(S))
            return sp.Matrix(n, n, lambda i, j: sp.Float(R[i, j], _DPS))
    if _is_diagonal(S):
        return sp.diag(*[sp.sqrt(S[i, i]) for i in range(n)])
    if n == 2:
        r = sp.sqrt(S.det())
        return (S + r * sp.eye(2)) / sp.sqrt(S.trace() + 2 * r)
    if not S.free_symbols:
        try:
            P, D = S.diagonalize()
        except (sp.MatrixError, NotImplementedError):
            P = None
        if P is not None and not D.has(sp.CRootOf):
            return (P * D.applyfunc(sp.sqrt) * P.inv()).applyfunc(sp.radsimp)
    raise SymflowError(
        f"no closed form for the square root of this {n}x{n} matrix (SymPy cannot "
        "diagonalize it in radicals); give floats for a numeric root. gaussian_w2 does not "
        "need it: it uses the eigenvalues of Sigma1*Sigma2")


def _tidy(expr):
    """Denest square roots of exact numbers (symbolic expressions are left as they are)."""
    return sp.sqrtdenest(sp.expand(expr)) if expr.is_number else expr


def trace_sqrt_product(Sigma1, Sigma2):
    r""":math:`\operatorname{tr}\bigl(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}\bigr)^{1/2}
    = \sum_i\sqrt{\lambda_i(\Sigma_1\Sigma_2)}`, by the first route of the module docstring
    that applies.

    Example::

        >>> trace_sqrt_product([[2, 0], [0, 3]], [[8, 0], [0, 3]])
        7
    """
    S1, S2 = _matrix(Sigma1, "Sigma1"), _matrix(Sigma2, "Sigma2")
    n = S1.rows
    if _is_numeric(S1, S2):
        with mpmath.workdps(_DPS):
            R = _mp_sqrtm(_to_mp(S1))
            ev = mpmath.eigsy(R * _to_mp(S2) * R, eigvals_only=True)
            return sp.Float(sum(mpmath.sqrt(max(ev[i], 0)) for i in range(n)), _DPS)
    if n == 1:
        return sp.sqrt(S1[0, 0] * S2[0, 0])
    if _is_diagonal(S1) and _is_diagonal(S2):
        return sp.Add(*[sp.sqrt(S1[i, i] * S2[i, i]) for i in range(n)])
    if n == 2:
        return _tidy(sp.sqrt((S1 * S2).trace() + 2 * sp.sqrt(S1.det() * S2.det())))
    if (S1 * S2 - S2 * S1).applyfunc(sp.simplify).is_zero_matrix:
        try:
            return _tidy((matrix_sqrt(S1) * matrix_sqrt(S2)).trace())
        except SymflowError:
            pass
    charpoly = (S1 * S2).charpoly(sp.Dummy("lambda"))
    lam = charpoly.gens[0]
    total = sp.S.Zero
    for poly, mult in charpoly.factor_list()[1]:
        if poly.degree() <= 2:
            roots = sp.roots(poly)
            total += mult * sp.Add(*[k * sp.sqrt(r) for r, k in roots.items()])
        else:
            total += mult * sp.RootSum(poly, sp.Lambda(lam, sp.sqrt(lam)))
    return total
