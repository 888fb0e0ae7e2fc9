r"""Smooth approximations of non-smooth functions by convolution with an approximate identity.

For a kernel :math:`K` with :math:`\int K = 1`, the family :math:`\delta_s(t) = K(t/s)/s`
tends to the Dirac delta as :math:`s\to0`, so :math:`f_s = f * \delta_s` is a smooth
approximation of :math:`f` (Biswas, Banerjee & Pandey, *SAU: Smooth activation function
using convolution with approximate identities*, 2021; Su Jianlin, "用狄拉克函数来构造非光滑函数的
光滑近似", 2021). Writing :math:`y = x - su`,

.. math::

    f_s(x) = \int f(y)\,\delta_s(x - y)\,dy = \int f(x - su)\,K(u)\,du .

A function with finitely many kinks or jumps is a ``Piecewise`` of smooth pieces
:math:`p_k` on intervals :math:`(a_k, b_k)` (``Max``, ``Min``, ``Abs``, ``sign``,
``Heaviside`` are rewritten so), and the integral splits into
:math:`\int_{(x-b_k)/s}^{(x-a_k)/s} p_k(x - su)K(u)\,du`. When :math:`p_k` is a polynomial,
:math:`p_k(x - su) = \sum_j q_j(x)\,u^j` and every piece is a combination of **partial
moments** of the kernel, :math:`\int_\alpha^\beta u^jK(u)\,du`, which the engine derives once
per kernel from its iterated distribution functions :math:`F_1(c) = \int_{-\infty}^c K`,
:math:`F_{k+1}(c) = \int_{-\infty}^c F_k` by repeated integration by parts:

.. math::

    \int_{-\infty}^{c} u^j K(u)\,du = \sum_{k=0}^{j} (-1)^k \frac{j!}{(j-k)!}\,c^{j-k}
    F_{k+1}(c),

with the upper tail from the symmetry :math:`K(-u) = K(u)`. For example
:math:`\mathrm{relu} * \mathcal N(0, s^2) = x\,\Phi(x/s) + s\,\varphi(x/s)` and
:math:`\mathrm{relu} * \mathrm{logistic}_s = s\log(1 + e^{x/s})` (softplus).

Kernels (``width`` = ``s``): ``"gaussian"`` :math:`\varphi(u)`, ``"logistic"``
:math:`e^{-u}/(1+e^{-u})^2` (:math:`F_1` = sigmoid, :math:`F_{k+1} = -\mathrm{Li}_k(-e^c)`),
``"uniform"`` :math:`\tfrac12` on :math:`[-1, 1]`, ``"cauchy"`` :math:`1/(\pi(1+u^2))`, or any
``sp.Lambda(u, K(u))`` that integrates to one. The Cauchy kernel has no first moment, so
functions that grow (relu, abs) have no Cauchy smoothing: that is an error, not an
infinity in disguise. Pieces that are not polynomials are integrated by SymPy directly;
where SymPy finds no antiderivative the piece stays an unevaluated ``Integral`` over ``u``,
which ``expr.evalf(subs={...})`` evaluates numerically (``method="numeric"`` asks for
that form at once, ``method="exact"`` makes it an error).
"""

from __future__ import annotations

import functools

import mpmath
import sympy as sp

from .._core._errors import SymflowError
from .._core._guard import check_symbolic, to_sympy
from .._core._parse import FUNCTIONS, parse_expression

__all__ = ["KERNELS", "kernel_density", "smooth"]

#: The named approximate identities.
KERNELS = ("gaussian", "logistic", "uniform", "cauchy")

_U = sp.Symbol("u", real=True)
_C = sp.Symbol("c", real=True)
_BAD = (sp.oo, -sp.oo, sp.zoo, sp.nan)


def _named_density(name):
    u = _U
    return {
        "gaussian": sp.exp(-u**2 / 2) / sp.sqrt(2 * sp.pi),
        "logistic": sp.exp(-u) / (1 + sp.exp(-u)) ** 2,
        "uniform": sp.Piecewise((sp.Rational(1, 2), (u >= -1) & (u <= 1)), (0, True)),
        "cauchy": 1 / (sp.pi * (1 + u**2)),
    }[name]


def _integral_of_one(K):
    """``∫K`` over the real line: exact where SymPy can, else a 30-digit quadrature
    (``oo`` when the quadrature does not settle, as for a non-integrable kernel)."""
    total = sp.integrate(K, (_U, -sp.oo, sp.oo), conds="none")
    if not total.has(sp.Integral):
        return total
    f = sp.lambdify(_U, K, "mpmath")
    with mpmath.workdps(30):
        val, err = mpmath.quad(f, [-mpmath.inf, -1, 0, 1, mpmath.inf], error=True)
        return sp.oo if err > 1e-12 * (1 + abs(val)) else sp.Float(val, 30)


class Kernel:
    r"""An approximate identity :math:`\delta_s(t) = K(t/s)/s` with its partial moments.

    ``density`` is :math:`K(u)` in the real symbol ``u``; ``symmetric`` whether
    :math:`K(-u) = K(u)`. :meth:`moment` gives :math:`\int_\alpha^\beta u^jK(u)\,du`.
    """

    def __init__(self, name, density):
        self.name = name
        self.density = density
        self.symmetric = sp.simplify(density.subs(_U, -_U) - density) == 0

    def __repr__(self) -> str:
        return f"Kernel({self.name!r}, {self.density})"

    @functools.lru_cache(maxsize=None)
    def iterated_cdf(self, k):
        r""":math:`F_k(c)` (``k >= 1``), or ``None`` when it diverges or SymPy finds none."""
        prev = self.density if k == 1 else self.iterated_cdf(k - 1)
        if prev is None:
            return None
        prev = prev.subs(_C, _U)
        out = sp.integrate(prev, (_U, -sp.oo, _C), conds="none")
        if out.has(sp.Integral) or out.has(*_BAD):
            out = self._iterated_ansatz(k, prev.subs(_U, _C))
        return None if out is None else sp.expand(out)

    def _iterated_ansatz(self, k, prev):
        """The logistic kernel's :math:`F_{k} = -\\mathrm{Li}_{k-1}(-e^c)`, used only after
        checking that it differentiates to :math:`F_{k-1}` and vanishes at :math:`-\\infty`."""
        if self.name != "logistic" or k < 2:
            return None
        guess = -sp.polylog(k - 1, -sp.exp(_C))
        ok = (sp.simplify(sp.expand_func(guess.diff(_C) - prev)) == 0
              and abs(sp.N(guess.subs(_C, -60))) < 1e-20)
        return guess if ok else None

    @functools.lru_cache(maxsize=None)
    def lower(self, j):
        r""":math:`L_j(c) = \int_{-\infty}^c u^jK(u)\,du`; ``None`` if it diverges or is unknown."""
        if self.name in ("gaussian", "logistic", "uniform"):
            F = [self.iterated_cdf(k + 1) for k in range(j + 1)]
            if all(f is not None for f in F):
                return sp.expand(sp.Add(*[(-1) ** k * sp.ff(j, k) * _C ** (j - k) * F[k]
                                          for k in range(j + 1)]))
        out = sp.integrate(_U**j * self.density, (_U, -sp.oo, _C), conds="none")
        return None if out.has(sp.Integral) or out.has(*_BAD) else out

    @functools.lru_cache(maxsize=None)
    def upper(self, j):
        r""":math:`\int_c^{\infty} u^jK(u)\,du`; ``None`` if it diverges or is unknown."""
        if self.symmetric:
            low = self.lower(j)
            return None if low is None else (-1) ** j * low.subs(_C, -_C)
        out = sp.integrate(_U**j * self.density, (_U, _C, sp.oo), conds="none")
        return None if out.has(sp.Integral) or out.has(*_BAD) else out

    @functools.lru_cache(maxsize=None)
    def antiderivative(self, j):
        """Some antiderivative of :math:`u^jK(u)` (for finite intervals), or ``None``."""
        low = self.lower(j)
        if low is not None:
            return low
        out = sp.integrate(_U**j * self.density, _U)
        return None if out.has(sp.Integral) else out.subs(_U, _C)

    def tail_diverges(self, j, side) -> bool:
        """Whether :math:`\\int u^jK` diverges on the ``side`` (``-1``/``+1``) tail."""
        lim = sp.integrate(_U**j * self.density, (_U, -sp.oo, 0) if side < 0 else (_U, 0, sp.oo),
                           conds="none")
        return lim.has(*_BAD)

    def moment(self, j, lo, hi):
        r""":math:`\int_{lo}^{hi} u^jK(u)\,du` (``lo``/``hi`` may be infinite), or ``None``."""
        if lo == -sp.oo and hi == sp.oo:
            low, up = self.lower(j), self.upper(j)
            if low is None or up is None:
                return None
            return sp.simplify(low.subs(_C, 0) + up.subs(_C, 0))
        if lo == -sp.oo:
            low = self.lower(j)
            return None if low is None else low.subs(_C, hi)
        if hi == sp.oo:
            up = self.upper(j)
            return None if up is None else up.subs(_C, lo)
        anti = self.antiderivative(j)
        return None if anti is None else anti.subs(_C, hi) - anti.subs(_C, lo)


@functools.lru_cache(maxsize=None)
def _named_kernel(name):
    return Kernel(name, _named_density(name))


def kernel_density(kernel) -> Kernel:
    r"""The :class:`Kernel` for a name in :data:`KERNELS` or a ``sp.Lambda(u, K(u))``.

    A user kernel must integrate to one over the real line (checked exactly, or to 1e-10
    by quadrature when SymPy finds no antiderivative).

    Example::

        >>> t = sp.Symbol("t", real=True)
        >>> kernel_density(sp.Lambda(t, sp.exp(-abs(t)) / 2)).symmetric
        True
        >>> kernel_density(sp.Lambda(t, sp.exp(-abs(t))))
        Traceback (most recent call last):
        ...
        symflow.SymflowError: the kernel exp(-Abs(t)) integrates to 2 over the real line, not 1; an approximate identity must integrate to one (divide it by 2)
    """
    if isinstance(kernel, str):
        if kernel not in KERNELS:
            raise SymflowError(f"got kernel={kernel!r}; choose one of {KERNELS} or give "
                               "sp.Lambda(u, K(u)) with K integrating to one")
        return _named_kernel(kernel)
    if isinstance(kernel, Kernel):
        return kernel
    if not isinstance(kernel, sp.Lambda) or len(kernel.variables) != 1:
        raise SymflowError(f"got kernel={kernel!r}; give a name in {KERNELS} or a "
                           "one-variable sp.Lambda(u, K(u))")
    density = kernel.expr.subs(kernel.variables[0], _U)
    if density.free_symbols - {_U}:
        raise SymflowError(f"the kernel {kernel.expr} has free symbols "
                           f"{sorted(map(str, density.free_symbols - {_U}))} besides its "
                           "variable; give numbers (the width is set by width=)")
    total = _integral_of_one(density)
    if total.has(*_BAD):
        raise SymflowError(f"the kernel {kernel.expr} is not integrable over the real line; "
                           "an approximate identity must integrate to one")
    if abs(sp.N(total - 1)) > 1e-10:
        raise SymflowError(f"the kernel {kernel.expr} integrates to {total} over the real line,"
                           f" not 1; an approximate identity must integrate to one (divide it "
                           f"by {total})")
    return Kernel(str(kernel.expr), density)


# -- pieces ----------------------------------------------------------------------------------

def _pieces(expr, x, shown):
    """``[(p, a, b), ...]``: ``expr == p`` on ``(a, b)``, the intervals covering the line.

    ``shown`` is the expression as the user wrote it (for messages)."""
    if expr.has(sp.DiracDelta):
        raise SymflowError(f"got {shown}: a Dirac delta is not a function to smooth; give the "
                           "function (its antiderivative, e.g. Heaviside)")
    pw = sp.piecewise_fold(expr.rewrite(sp.Piecewise))
    if not isinstance(pw, sp.Piecewise):
        return [(pw, -sp.oo, sp.oo)]
    try:
        pairs = pw.as_expr_set_pairs(sp.Reals)
    except (NotImplementedError, TypeError, ValueError) as exc:
        raise SymflowError(f"cannot split {shown} into finitely many smooth pieces ({exc}); "
                           "give it as a Piecewise whose conditions are intervals of x with "
                           "numeric ends") from exc
    out = []
    for piece, where in pairs:
        for part in (where.args if isinstance(where, sp.Union) else (where,)):
            if isinstance(part, sp.FiniteSet) or part is sp.S.EmptySet:
                continue  # isolated points do not change an integral
            if not isinstance(part, sp.Interval):
                raise SymflowError(f"cannot split {shown} into finitely many intervals (got the "
                                   f"set {part}); smooth() needs finitely many kinks or jumps")
            out.append((piece, part.inf, part.sup))
    return out


# -- smoothing -------------------------------------------------------------------------------

def read_function(expr, x):
    """``expr`` as a SymPy expression in the symbol ``x``; a string goes through the safe
    parser, with ``relu``, ``abs``, ``sign`` and ``step`` added to its functions."""
    if not isinstance(x, sp.Symbol):
        raise SymflowError(f"got x={x!r}; give the SymPy symbol of the variable to smooth in")
    if isinstance(expr, str):
        extra = {"relu": lambda z: sp.Max(0, z), "sign": sp.sign, "step": sp.Heaviside}
        return parse_expression(expr, {str(x): x}, {**FUNCTIONS, **extra})
    return to_sympy(expr, "expr")


def _check_width(width):
    s = None if isinstance(width, str) else to_sympy(width, "width")
    if s is None or s.is_positive is not True:
        raise SymflowError(
            f"got width={width!r}; the width must be a positive number or a symbol declared "
            "positive, e.g. sp.Symbol('s', positive=True)")
    return s


def _piece(p, x, a, b, K, s, method, user_x):
    """``∫ p(x - s u) K(u) du`` over ``u`` in ``((x-b)/s, (x-a)/s)``."""
    u = _U
    q = sp.expand(p.subs(x, x - s * u))
    lo = -sp.oo if b == sp.oo else (x - b) / s
    hi = sp.oo if a == -sp.oo else (x - a) / s
    if method != "numeric":
        poly = sp.Poly(q, u) if q.is_polynomial(u) else None
        if poly is not None:
            terms = []
            for (j,), qj in poly.terms():
                m = K.moment(j, lo, hi)
                if m is None:
                    _check_tails(K, j, lo, hi, p.subs(x, user_x), user_x)
                    break
                terms.append(qj * m)
            else:
                return sp.Add(*terms)
        direct = sp.integrate(q * K.density, (u, lo, hi), conds="none")
        if not direct.has(sp.Integral, *_BAD):  # an infinite answer is not trusted either
            return direct
        if method == "exact":
            raise SymflowError(f"no closed form for the piece {p.subs(x, user_x)} on ({a}, {b}) "
                               f"with the {K.name} kernel; use method='auto' for a numeric "
                               "Integral")
    return sp.Integral(q * K.density, (u, lo, hi))


def _check_tails(K, j, lo, hi, p, x):
    for end, side in ((lo, -1), (hi, 1)):
        if end in (sp.oo, -sp.oo) and K.tail_diverges(j, side):
            raise SymflowError(
                f"the convolution diverges: the piece {p} grows like "
                f"|{x}|^{j} on an infinite interval but the {K.name} kernel has no finite moment "
                f"of order {j} (its tails are too heavy). Use a kernel with finite moments "
                "(gaussian, logistic, uniform) or a bounded function")


def smooth(expr, x, kernel="gaussian", width=None, method="auto"):
    r"""The smoothing :math:`f_s = f * \delta_s` of ``expr`` in ``x`` (see the module docstring).

    Parameters
    ----------
    expr : SymPy expression or str
        A function of ``x`` with finitely many kinks or jumps: ``Max``, ``Min``, ``Abs``,
        ``sign``, ``Heaviside``, ``Piecewise`` (on intervals with numeric ends), and smooth
        functions. A string is read by the safe parser, with ``relu``, ``abs``, ``sign``
        and ``step`` added to its functions.
    x : Symbol
    kernel : str or sp.Lambda
        ``"gaussian"``, ``"logistic"``, ``"uniform"``, ``"cauchy"`` or ``sp.Lambda(u, K(u))``
        with :math:`\int K = 1`.
    width : positive number or positive Symbol
        The scale :math:`s` (default ``sp.Symbol("s", positive=True)``).
    method : ``"auto"`` | ``"exact"`` | ``"numeric"``
        ``auto``: closed forms, an unevaluated ``Integral`` for pieces without one;
        ``exact``: error instead of an ``Integral``; ``numeric``: every piece an ``Integral``.

    Examples
    --------
    ::

        >>> x = sp.Symbol("x", real=True); s = sp.Symbol("s", positive=True)
        >>> relu_s = smooth(sp.Max(0, x), x, "gaussian", s)
        >>> Phi = (1 + sp.erf(x / (s * sp.sqrt(2)))) / 2
        >>> phi = sp.exp(-x**2 / (2 * s**2)) / sp.sqrt(2 * sp.pi)
        >>> sp.simplify(relu_s - (x * Phi + s * phi))
        0
        >>> sp.simplify(smooth(sp.Max(0, x), x, "logistic", s) - s * sp.log(1 + sp.exp(x / s)))
        0
        >>> smooth(sp.Heaviside(x), x, "cauchy", s)
        atan(x/s)/pi + 1/2
    """
    if method not in ("auto", "exact", "numeric"):
        raise SymflowError(f"got method={method!r}; choose 'auto', 'exact' or 'numeric'")
    expr = read_function(expr, x)
    s = _check_width(sp.Symbol("s", positive=True) if width is None else width)
    K = kernel_density(kernel)
    xr = sp.Dummy("x", real=True)
    pieces = _pieces(expr.subs(x, xr), xr, expr)
    total = sp.Add(*[_piece(p, xr, a, b, K, s, method, x) for p, a, b in pieces])
    return _tidy(total).subs(xr, x)


def _tidy(expr):
    """Expand, then cancel and merge exponentials term by term (cheap, no ``simplify``)."""
    if expr.has(sp.erfc):
        expr = expr.rewrite(sp.erf)
    terms = sp.Add.make_args(sp.expand(expr))
    return sp.Add(*[t if t.has(sp.Integral) else sp.powsimp(sp.cancel(t)) for t in terms])


def smoothing_gap_at(expr, x, kernel="gaussian", width=None, at=0):
    r""":math:`f_s(x_0) - f(x_0)` exactly (e.g. the error at a kink), as an expression in ``s``.

    Example::

        >>> x = sp.Symbol("x", real=True)
        >>> smoothing_gap_at(sp.Max(0, x), x, "gaussian")
        sqrt(2)*s/(2*sqrt(pi))
    """
    check_symbolic(at=at)
    expr = read_function(expr, x)
    fs = smooth(expr, x, kernel, width)
    at = to_sympy(at, "at")
    f0 = expr.subs(x, at)
    return sp.simplify(fs.subs(x, at) - f0)
