r"""Itô stochastic differential equations with symbolic drift and diffusion.

An :class:`SDE` is

.. math::

    d\Theta_t = b(\Theta_t)\,dt + \sigma(\Theta_t)\,dW_t ,\qquad
    D(\theta) = \sigma(\theta)\sigma(\theta)^\top ,

with :math:`b` a column of :math:`d` expressions, :math:`\sigma` a :math:`d\times m` matrix
and :math:`W` an :math:`m`-dimensional Brownian motion; the time of an optimizer's SDE is
:math:`t = nh` (:math:`n` steps of learning rate :math:`h`). :math:`D` is the (exact)
diffusion matrix of the generator
:math:`\mathcal L\varphi = b\cdot\nabla\varphi + \tfrac12 D:\nabla^2\varphi`
(Øksendal, *Stochastic Differential Equations*, ch. 7).
"""

from __future__ import annotations

import copy
import functools
import numbers

import mpmath
import sympy as sp

from .._core import _validate as v
from .._core._display import shorten
from .._core._errors import SymflowError
from .._core._gradient import is_zero_expr, random_points
from .._core._guard import as_sympy
from .._core._latex import LatexDisplay
from .._core._readable import readable
from .._core._symbols import h


def refuse_strings(value, what: str) -> None:
    """Raise on strings anywhere in ``value``: SymPy would ``eval`` them (the guard)."""
    v.check_symbolic(**{what: value})


def _as_column(drift, what="drift") -> sp.Matrix:
    refuse_strings(drift, what)
    if isinstance(drift, (list, tuple)):
        drift = sp.Matrix(drift)
    if isinstance(drift, sp.Expr) or isinstance(drift, numbers.Number):
        drift = sp.Matrix([drift])
    if not isinstance(drift, sp.MatrixBase):
        raise SymflowError(f"got {what}={v._describe(drift)}; give a SymPy column Matrix "
                           "(or a list of expressions), one entry per parameter")
    if drift.shape[1] != 1:
        if drift.shape[0] == 1:
            drift = drift.T
        else:
            raise SymflowError(f"got a {drift.shape[0]}x{drift.shape[1]} {what}; it must be "
                               "a column (d x 1)")
    return sp.Matrix(drift).applyfunc(lambda e: v.to_sympy(e, what))


def _as_matrix(mat, what: str) -> sp.Matrix:
    refuse_strings(mat, what)
    if isinstance(mat, (list, tuple)):
        mat = sp.Matrix(mat)
    if not isinstance(mat, sp.MatrixBase):
        raise SymflowError(f"got {what}={v._describe(mat)}; give a SymPy Matrix")
    return sp.Matrix(mat).applyfunc(lambda e: v.to_sympy(e, what))


def _sign(expr):
    """True if ``expr >= 0`` is known, False if ``expr < 0`` is known, else None."""
    expr = as_sympy(expr)
    if expr.is_nonnegative:
        return True
    if expr.is_negative:
        return False
    if expr.is_number:
        val = expr.evalf(30)
        if val.is_real:
            return bool(val >= 0)
    return None


def psd_factor(matrix, what: str = "covariance") -> sp.Matrix:
    r"""An exact factor :math:`G` with :math:`G G^\top = A` of a symmetric PSD matrix :math:`A`.

    Rank-revealing Cholesky: pivot :math:`k` gives the column
    :math:`A_{:,k}/\sqrt{A_{kk}}`; a zero pivot requires a zero row (else :math:`A` is not
    positive semidefinite). Returns a :math:`d\times r` matrix, :math:`r` the rank. A pivot
    whose sign is decidable and negative raises :class:`SymflowError`; undecidable
    (symbolic) pivots are accepted as they are.

    Example::

        >>> import sympy as sp
        >>> psd_factor(sp.Matrix([[4, 2], [2, 2]]))
        Matrix([
        [2, 0],
        [1, 1]])
    """
    a = sp.Matrix(matrix)
    n = a.shape[0]
    if a.shape != (n, n):
        raise SymflowError(f"got a {a.shape[0]}x{a.shape[1]} {what}; it must be square")
    for i in range(n):
        for j in range(i + 1, n):
            if not is_zero_expr(a[i, j] - a[j, i]):
                raise SymflowError(
                    f"the {what} is not symmetric: entry ({i},{j}) = {a[i, j]} but ({j},{i}) "
                    f"= {a[j, i]}; a covariance matrix must equal its transpose")
    cols = []
    for k in range(n):
        piv = sp.simplify(a[k, k]) if a[k, k].free_symbols else a[k, k]
        sign = _sign(piv)
        if sign is False:
            raise SymflowError(
                f"the {what} is not positive semidefinite: pivot {k} of its Cholesky "
                f"factorization is {piv} < 0 (got {what}={matrix.tolist()}); a covariance "
                "must satisfy v^T C v >= 0 for every v")
        if is_zero_expr(piv):
            rest = [a[k, j] for j in range(k + 1, n) if not is_zero_expr(a[k, j])]
            if rest:
                raise SymflowError(
                    f"the {what} is not positive semidefinite: a zero pivot at {k} with "
                    f"non-zero off-diagonal entries {rest} (got {what}={matrix.tolist()})")
            continue
        col = sp.zeros(n, 1)
        root = sp.sqrt(piv)
        for i in range(k, n):
            col[i] = a[i, k] / root
        a = (a - col * col.T).applyfunc(sp.expand if not a.free_symbols else sp.cancel)
        cols.append(col)
    if not cols:
        return sp.zeros(n, 1)
    return sp.Matrix.hstack(*cols)


def check_psd_numeric(matrix, params=(), what: str = "covariance", count: int = 6) -> None:
    """Raise when a state-dependent matrix has a clearly negative eigenvalue at some test point.

    Parameters take random rational values in [-3, 3], other symbols (constants) values
    in (0, 1]; a cheap refutation, not a proof of positive semidefiniteness.
    """
    import random

    import numpy as np

    symbols = sorted(matrix.free_symbols, key=str)
    if not symbols:
        return
    rng = random.Random(1)
    for _ in range(count):
        point = {s: (sp.Rational(rng.randint(-300, 300), 100) if s in params
                     else sp.Rational(rng.randint(1, 100), 100)) for s in symbols}
        try:
            num = np.array(matrix.xreplace(point).evalf(20).tolist(), dtype=float)
        except (TypeError, ValueError):
            return
        if not np.all(np.isfinite(num)):
            continue
        low = float(np.linalg.eigvalsh((num + num.T) / 2).min())
        scale = max(1.0, float(np.abs(num).max()))
        if low < -1e-10 * scale:
            pt = {str(k): val for k, val in point.items()}
            raise SymflowError(
                f"the {what} is not positive semidefinite: at {pt} its smallest eigenvalue "
                f"is {low:.3g} < 0; a covariance must satisfy v^T C v >= 0 for every v")


def factor_covariance(cov, params, what: str = "covariance") -> sp.Matrix:
    """:func:`psd_factor` of ``cov``, after :func:`check_psd_numeric` when it depends on
    ``params`` (for a constant matrix the exact factorization is itself the PSD test)."""
    if cov.free_symbols & set(params):
        check_psd_numeric(cov, params, what)
    return psd_factor(cov, what)


def expanded_product(*mats) -> sp.Matrix:
    """The expanded product of matrices, entry by entry with the zero terms skipped.
    SymPy's matrix product first builds a common domain for the entries, which takes
    seconds when they hold a logistic loss's exponentials; this takes the sums directly."""
    out = sp.Matrix(mats[0])
    for right in mats[1:]:
        right = sp.Matrix(right)
        if out.cols != right.rows:
            raise SymflowError(f"cannot multiply a {out.rows}x{out.cols} matrix by a "
                               f"{right.rows}x{right.cols} one")
        out = sp.Matrix(out.rows, right.cols, lambda i, j: sp.expand(sp.Add(*[
            out[i, k] * right[k, j] for k in range(out.cols)
            if out[i, k] != 0 and right[k, j] != 0])))
    return out


def _entries_equal(a, b, exact: bool = True) -> bool:
    """``a == b`` entrywise. Exact (expansion, then :func:`is_zero_expr`, whose ``simplify``
    can take minutes on large non-polynomial entries), or with ``exact=False`` a consistency
    check: equal expansions, or no difference at six random rational points (30 digits)."""
    diff = [e for e in (sp.Matrix(a) - sp.Matrix(b)) if sp.expand(e) != 0]
    if exact:
        return all(is_zero_expr(e) for e in diff)
    points = random_points(set().union(*(e.free_symbols for e in diff)), 6) if diff else []
    return all(_vanishes_at(e, points) for e in diff)


def _vanishes_at(expr, points) -> bool:
    """No clearly nonzero value of ``expr`` at ``points`` (30 digits). Compiled once with
    ``lambdify(..., "mpmath")``: substituting rationals into a large expression first makes
    SymPy evaluate exact powers and exponentials, about 30x slower."""
    symbols = sorted(expr.free_symbols, key=str)
    fn = sp.lambdify(symbols, expr, "mpmath")
    with mpmath.workdps(30):
        for point in points:
            try:
                value = fn(*[mpmath.mpf(point[s].p) / point[s].q for s in symbols])
            except (ZeroDivisionError, ValueError, OverflowError):
                continue
            if mpmath.isfinite(value) and abs(value) > 1e-20:
                return False
    return True


class SDE(LatexDisplay):
    r"""An Itô SDE :math:`d\Theta = b(\Theta)\,dt + \sigma(\Theta)\,dW` (time :math:`t = nh`).

    Parameters
    ----------
    drift : column Matrix or list
        :math:`b`, one expression per parameter.
    diffusion : Matrix, scalar or None
        :math:`\sigma` (:math:`d\times m`). A scalar ``s`` means :math:`s I_d`; ``None``
        (with no ``covariance``) gives an ODE (:math:`m = 1`, zero column).
    params : sequence of Symbol
    covariance : Matrix, optional
        :math:`D = \sigma\sigma^\top` given directly. Alone, it is factored exactly
        (rank-revealing Cholesky, :func:`psd_factor`) after a positive-semidefiniteness
        check (exact for constant matrices, at random points for state-dependent ones).
        With ``diffusion`` it must equal :math:`\sigma\sigma^\top`.
    name : str
        A label used by ``str``.
    time : str, optional
        How the SDE's time relates to the steps, for ``str`` (e.g. ``"s = n*sqrt(h)"``);
        by default ``"t = n*h"`` when the SDE has ``h``, else ``"time t"``.
    potential : sympy.Expr, optional
        A :math:`V` with :math:`b = -\nabla V`, when known (checked); the Fokker–Planck
        stationary density uses it instead of integrating the drift.

    Notes
    -----
    Other symbols (the learning rate ``sf.h``, hyperparameters) are constants; they are
    listed in :attr:`constants`.

    Examples
    --------
    ::

        >>> import sympy as sp, symflow as sf
        >>> x, s = sp.symbols("x s", positive=True)
        >>> sde = SDE(drift=[-x], diffusion=sp.sqrt(sf.h) * s, params=[x])
        >>> sde.covariance
        Matrix([[h*s**2]])
        >>> sde.is_additive, sde.constants
        (True, (h, s))
    """

    def __init__(self, drift, diffusion=None, params=None, covariance=None, name: str = "SDE",
                 potential=None, time: str | None = None):
        v.check_symbolic(drift=drift, diffusion=diffusion, params=params,
                         covariance=covariance, potential=potential)
        if params is None:
            raise SymflowError("give params=[...], the state symbols of the SDE")
        self.params = v.check_params(params)
        d = len(self.params)
        self.drift = sp.ImmutableMatrix(_as_column(drift))
        if self.drift.shape[0] != d:
            raise SymflowError(
                f"got a drift with {self.drift.shape[0]} entries for {d} parameters "
                f"{list(self.params)}; give one drift component per parameter")
        cov = None
        if covariance is not None:
            cov = _as_matrix(covariance, "covariance")
            if cov.shape != (d, d):
                raise SymflowError(f"got a {cov.shape[0]}x{cov.shape[1]} covariance for "
                                   f"{d} parameters; it must be {d}x{d}")
        if diffusion is None and cov is None:
            sigma = sp.zeros(d, 1)
        elif diffusion is None:
            sigma = factor_covariance(cov, self.params)
        else:
            if isinstance(diffusion, (sp.Expr, numbers.Number)) and not isinstance(
                    diffusion, sp.MatrixBase):
                sigma = sp.eye(d) * v.to_sympy(diffusion, "diffusion")
            else:
                sigma = _as_matrix(diffusion, "diffusion")
            if sigma.shape[0] != d:
                raise SymflowError(
                    f"got a {sigma.shape[0]}x{sigma.shape[1]} diffusion for {d} parameters; "
                    f"sigma must be {d} x m (m = number of Brownian motions)")
        self.diffusion = sp.ImmutableMatrix(sigma)
        computed = expanded_product(self.diffusion, self.diffusion.T)
        if cov is not None and diffusion is not None:
            if not _entries_equal(cov, computed, exact=False):
                raise SymflowError(
                    "the covariance given does not equal diffusion * diffusion.T; give one of "
                    "them, or make them consistent")
        self.covariance = sp.ImmutableMatrix(cov if cov is not None else computed)
        for what, mat in (("drift", self.drift), ("diffusion", self.diffusion)):
            bad = [e for e in mat if not e.is_finite and e.is_number]
            if bad:
                raise SymflowError(f"the {what} has non-finite entries {bad}")
        self.name = name
        self._time = time
        self.potential = None
        if potential is not None:
            refuse_strings(potential, "potential")
            pot = v.to_sympy(potential, "potential")
            if not _entries_equal(self.drift, [-sp.diff(pot, p) for p in self.params],
                                  exact=False):
                raise SymflowError(f"got potential={pot}, but the drift is not -grad of it")
            self.potential = pot

    # -- structure ---------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Number of state components :math:`d`."""
        return len(self.params)

    @property
    def noise_dim(self) -> int:
        """Number of Brownian motions :math:`m` (columns of :math:`\\sigma`)."""
        return self.diffusion.shape[1]

    @property
    def constants(self) -> tuple:
        """Symbols other than the parameters (``h``, hyperparameters), sorted by name."""
        free = set().union(self.drift.free_symbols, self.diffusion.free_symbols,
                           self.covariance.free_symbols)
        return tuple(sorted(free - set(self.params), key=str))

    @property
    def is_deterministic(self) -> bool:
        """True when :math:`\\sigma = 0`."""
        return all(e == 0 for e in self.diffusion)

    @property
    def is_additive(self) -> bool:
        """True when :math:`\\sigma` does not depend on the state."""
        return not (self.diffusion.free_symbols & set(self.params))

    @property
    def is_diagonal(self) -> bool:
        """True when :math:`\\sigma` is square and diagonal."""
        s = self.diffusion
        return s.shape[0] == s.shape[1] and all(
            s[i, j] == 0 for i in range(s.shape[0]) for j in range(s.shape[1]) if i != j)

    @functools.cached_property
    def isotropic_variance(self):
        """:math:`c` when :math:`D = c\\,I` with :math:`c` constant, else None."""
        cov = self.covariance
        c = cov[0, 0]
        if c.free_symbols & set(self.params):
            return None
        d = self.dim
        for i in range(d):
            for j in range(d):
                target = c if i == j else 0
                if not is_zero_expr(cov[i, j] - target):
                    return None
        return c

    # -- calculus ----------------------------------------------------------------------
    def generator(self, phi):
        r""":math:`\mathcal L\varphi = b\cdot\nabla\varphi + \tfrac12\sum_{ij}D_{ij}\partial_i\partial_j\varphi`."""
        phi = v.to_sympy(phi, "phi")
        grad = [sp.diff(phi, p) for p in self.params]
        out = sum((self.drift[i] * grad[i] for i in range(self.dim)), sp.S.Zero)
        for i, pi in enumerate(self.params):
            for j, pj in enumerate(self.params):
                if self.covariance[i, j] != 0:
                    out += self.covariance[i, j] * sp.diff(grad[i], pj) / 2
        return out

    def stratonovich_drift(self) -> sp.ImmutableMatrix:
        r"""The drift of the equivalent Stratonovich SDE:
        :math:`b_i - \tfrac12\sum_{j,k}\sigma_{jk}\,\partial_j\sigma_{ik}`."""
        s = self.diffusion
        corr = sp.zeros(self.dim, 1)
        for i in range(self.dim):
            for k in range(self.noise_dim):
                for j, pj in enumerate(self.params):
                    if s[j, k] != 0:
                        corr[i] += s[j, k] * sp.diff(s[i, k], pj)
        return sp.ImmutableMatrix((sp.Matrix(self.drift) - corr / 2).applyfunc(sp.expand))

    def subs(self, values) -> "SDE":
        """The same SDE with constants replaced (``{symbol or name: value}``)."""
        v.check_symbolic(values=values)
        mapping = v.resolve_values(values, sp.Matrix.hstack(self.drift, self.diffusion,
                                                            self.covariance))
        mapping = {k: v.to_sympy(val, f"values[{k}]") for k, val in mapping.items()}
        return self._with(potential=(None if self.potential is None
                                     else self.potential.xreplace(mapping)),
                          drift=self.drift.xreplace(mapping),
                          diffusion=self.diffusion.xreplace(mapping),
                          covariance=self.covariance.xreplace(mapping))

    def _with(self, **changes) -> "SDE":
        """A copy with some fields replaced (not validated again: each caller keeps the SDE's
        meaning), without the values cached from the old fields."""
        new = copy.copy(self)
        for name, attr in vars(SDE).items():  # values cached from the old fields go
            if isinstance(attr, functools.cached_property):
                new.__dict__.pop(name, None)
        new.__dict__.update(changes)
        return new

    # -- display -----------------------------------------------------------------------
    def latex(self) -> str:
        """``d\\theta = b\\,dt + \\sigma\\,dW`` as LaTeX."""
        theta = sp.Matrix(self.params)
        drift = sp.Matrix([readable(c, self.params) for c in self.drift])
        body = (f"d{sp.latex(theta)} = {sp.latex(drift)}\\,dt")
        if not self.is_deterministic:
            body += f" + {sp.latex(sp.Matrix(self.diffusion))}\\,dW_t"
        return body

    def simplify(self) -> "SDE":
        """A copy with drift, diffusion and covariance passed to ``sp.simplify`` (same SDE)."""
        drift, diffusion, covariance = (
            m.applyfunc(sp.simplify) for m in (self.drift, self.diffusion, self.covariance))
        return self._with(drift=drift, diffusion=diffusion, covariance=covariance)

    def rounded(self, digits: int = 6) -> "SDE":
        """A display copy with every number shown to ``digits`` significant digits.

        The exact SDE is unchanged; long exact rationals (data moments of a large dataset)
        read better this way. Use the exact one for derivations.
        """
        if isinstance(digits, bool) or not isinstance(digits, int) or digits < 1:
            raise SymflowError(f"got digits={digits!r}; give a positive integer")
        rnd = (lambda m: sp.ImmutableMatrix(m).evalf(digits))
        return self._with(name=f"{self.name} (rounded)", potential=None, drift=rnd(self.drift),
                          diffusion=rnd(self.diffusion), covariance=rnd(self.covariance))

    def _long_numbers(self) -> bool:
        atoms = set().union(*(m.atoms(sp.Rational) for m in
                              (self.drift, self.diffusion, self.covariance)))
        return any(len(str(q)) > 12 for q in atoms)

    def _text(self, limit=None) -> str:
        cut = (lambda t: t) if limit is None else (lambda t: shorten(t, limit))
        time = self._time or ("t = n*h" if h in self.constants else "time t")
        lines = [f"{self.name}: Ito SDE in theta = ({', '.join(map(str, self.params))}), "
                 f"{time}, d={self.dim}, {self.noise_dim} Brownian motion(s)",
                 cut(f"  drift     b = {[readable(c, self.params) for c in self.drift]}"),
                 cut(f"  diffusion sigma = {self.diffusion.tolist()}"),
                 cut(f"  covariance sigma sigma^T = {self.covariance.tolist()}")]
        if self._long_numbers():
            lines.append("  (exact rationals; .rounded() shows them to 6 digits)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._text()

    def __repr__(self) -> str:
        return self._text(limit=400)

    def __eq__(self, other) -> bool:
        return isinstance(other, SDE) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self):
        return (self.params, self.drift, self.diffusion, self.covariance)


__all__ = ["SDE", "check_psd_numeric", "expanded_product", "factor_covariance", "psd_factor"]
