r"""Deep linear networks: the factorised loss, its conserved quantities and the end-to-end flow.

A depth-:math:`N` linear network computes :math:`W = W_N W_{N-1}\cdots W_1` and is trained on
a loss :math:`\ell(W)` of the end-to-end matrix. Gradient flow on the factors is

.. math::  \dot W_j = -W_{N:j+1}^\top\,\nabla\ell(W)\,W_{j-1:1}^\top,
           \qquad W_{b:a} = W_b W_{b-1}\cdots W_a,

and conserves the *balancedness* :math:`D_j = W_{j+1}^\top W_{j+1} - W_j W_j^\top`
(:math:`\dot D_j = 0` for every loss). From a balanced start (:math:`D_j = 0`) the product
follows (Arora, Cohen & Hazan, *On the optimization of deep networks: implicit acceleration
by overparameterization*, ICML 2018, Theorem 1)

.. math::  \dot W = -\sum_{j=1}^{N} (WW^\top)^{\frac{j-1}{N}}\,\nabla\ell(W)\,
           (W^\top W)^{\frac{N-j}{N}},

and each singular value :math:`\sigma_r` of :math:`W` with singular vectors
:math:`u_r, v_r` moves as :math:`\dot\sigma_r = -N\sigma_r^{2-2/N}\langle\nabla\ell(W),
u_r v_r^\top\rangle` (Arora, Cohen, Hu & Luo, *Implicit regularization in deep matrix
factorization*, NeurIPS 2019, Theorem 3): large singular values move fast, small ones
slowly, so depth drives towards low rank. Gradient *descent* with step :math:`h` adds, at
first order, the implicit regulariser :math:`\tfrac h4\sum_j\lVert\nabla_{W_j}L\rVert_F^2`
(the coordinate-free term :math:`-\tfrac12 Hg` of :func:`symflow.modified_equation`), which on
balanced factors weighs the loss gradient with :math:`\sigma^{2-2/N}`.

Example::

    >>> import symflow as sf
    >>> net = sf.deep_linear(depth=3, shape=(2, 2))
    >>> net.conserved()                 # d/dt (W_{j+1}^T W_{j+1} - W_j W_j^T) = 0, any loss
    True
    >>> net.singular_value_rate()       # -N sigma^(2 - 2/N) <grad l, u v^T>
    -3*g_uv*sigma**(4/3)
"""

from __future__ import annotations

import functools

import sympy as sp

from .._core._errors import SymflowError
from .._core._latex import LatexDisplay
from .._core._symbols import h
from .._engine._modified import modified_equation
from ..optimizers._gd import GD


def _positive_int(value, name, least=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise SymflowError(f"got {name}={value!r}; {name} must be an integer >= {least}")
    return value


def _cayley(t):
    """The rotation with tan(angle/2) = t, with rational entries (exact simplification)."""
    return sp.Matrix([[1 - t**2, -2 * t], [2 * t, 1 - t**2]]) / (1 + t**2)


class DeepLinear(LatexDisplay):
    r"""A depth-``N`` linear network ``W = W_N ... W_1`` with symbolic factors.

    Attributes
    ----------
    factors : tuple of sympy Matrix
        :math:`W_1, \dots, W_N` with entries ``w{j}_{a}{b}`` (shapes ``widths[j] x widths[j-1]``).
    params : tuple of Symbol
        All factor entries, ``W_1`` first (the parameters of the factorised loss).
    product : sympy Matrix
        The end-to-end matrix :math:`W`.
    grad_loss : sympy Matrix
        :math:`\nabla\ell(W)`: the loss's gradient at the product, or, without a loss, a
        matrix of free symbols ``g_ab`` standing for it (results then hold for every loss).
    loss : sympy Expr or None
        The factorised loss :math:`L = \ell(W_N\cdots W_1)`.
    """

    def __init__(self, depth, shape, widths=None, loss=None):
        self.depth = _positive_int(depth, "depth")
        if (not isinstance(shape, (tuple, list)) or len(shape) != 2):
            raise SymflowError(f"got shape={shape!r}; shape must be (rows, columns) of the "
                               "end-to-end matrix, e.g. shape=(2, 2)")
        m, n = (_positive_int(s, "shape entry") for s in shape)
        self.shape = (m, n)
        if widths is None:
            widths = [max(m, n)] * (self.depth - 1)
        widths = [_positive_int(wd, "width") for wd in widths]
        if len(widths) != self.depth - 1:
            raise SymflowError(f"got {len(widths)} hidden widths for depth {self.depth}; give "
                               f"depth - 1 = {self.depth - 1} of them")
        self.widths = (n, *widths, m)
        self.factors = tuple(
            sp.Matrix(self.widths[j + 1], self.widths[j],
                      lambda a, b, j=j: sp.Symbol(f"w{j + 1}_{a}{b}", real=True))
            for j in range(self.depth))
        self.params = tuple(s for W in self.factors for s in W)
        self.product = self._chain(self.depth, 1)
        self.end = sp.Matrix(m, n, lambda a, b: sp.Symbol(f"e_{a}{b}", real=True))
        if loss is None:
            self.loss = None
            self.grad_loss = sp.Matrix(m, n, lambda a, b: sp.Symbol(f"g_{a}{b}", real=True))
        else:
            self.loss, self.grad_loss = self._read_loss(loss)

    def _read_loss(self, loss):
        if isinstance(loss, str) or not callable(loss):
            raise SymflowError(
                f"got loss={loss!r}; pass a function of the end-to-end matrix, "
                "loss=lambda W: ... returning a SymPy scalar (strings are not executed)")
        value = loss(self.end)
        if isinstance(value, sp.MatrixBase) and value.shape == (1, 1):
            value = value[0, 0]
        if not isinstance(value, sp.Expr) or value.free_symbols - set(self.end):
            raise SymflowError(
                f"loss(W) returned {value!r}; it must be a SymPy scalar in the entries of W "
                "only (declare data as numbers)")
        at = dict(zip(self.end, self.product))
        grad = self.end.applyfunc(lambda e: sp.diff(value, e)).xreplace(at)
        return sp.expand(value.xreplace(at)), grad.applyfunc(sp.expand)

    def _chain(self, b, a):
        r""":math:`W_{b:a} = W_b\cdots W_a` (the identity when ``b < a``)."""
        if b < a:
            return sp.eye(self.widths[a - 1])
        out = self.factors[a - 1]
        for j in range(a + 1, b + 1):
            out = self.factors[j - 1] * out
        return out

    # -- gradient flow on the factors ----------------------------------------------------
    @functools.cached_property
    def factor_flow(self) -> tuple:
        r""":math:`\dot W_j = -W_{N:j+1}^\top \nabla\ell(W) W_{j-1:1}^\top`, one Matrix per
        factor."""
        N = self.depth
        return tuple(-self._chain(N, j + 1).T * self.grad_loss * self._chain(j - 1, 1).T
                     for j in range(1, N + 1))

    def balancedness(self) -> tuple:
        r""":math:`D_j = W_{j+1}^\top W_{j+1} - W_j W_j^\top`, :math:`j = 1..N-1`."""
        F = self.factors
        return tuple(F[j].T * F[j] - F[j - 1] * F[j - 1].T for j in range(1, self.depth))

    def balancedness_rates(self) -> tuple:
        r""":math:`\dot D_j` along the factor flow, expanded (zero matrices: conservation)."""
        F, dF = self.factors, self.factor_flow
        return tuple((dF[j].T * F[j] + F[j].T * dF[j] - dF[j - 1] * F[j - 1].T
                      - F[j - 1] * dF[j - 1].T).applyfunc(sp.expand)
                     for j in range(1, self.depth))

    def conserved(self) -> bool:
        """True when every :math:`\\dot D_j` expands to the zero matrix (exact, for any loss)."""
        return all(D.is_zero_matrix for D in self.balancedness_rates())

    @functools.cached_property
    def end_to_end_rate(self) -> sp.Matrix:
        r""":math:`\dot W = \sum_j W_{N:j+1}\dot W_j W_{j-1:1}`: the factor flow mapped through
        the product (exact, any start)."""
        N = self.depth
        out = sp.zeros(*self.shape)
        for j in range(1, N + 1):
            out += self._chain(N, j + 1) * self.factor_flow[j - 1] * self._chain(j - 1, 1)
        return out

    # -- balanced starts -------------------------------------------------------------------
    def balanced_point(self, singular=None, angles=None) -> dict:
        r"""Balanced factors :math:`W_j = U_j S U_{j-1}^\top` (``{factor symbol: value}``).

        For square 2 x 2 networks: :math:`U_j` are rotations (Cayley-parametrised by
        ``angles``, :math:`\tan(\phi_j/2)`, :math:`N+1` of them) and :math:`S =
        \mathrm{diag}(s_1, s_2)`; then :math:`W = U_N S^N U_0^\top` and every :math:`D_j = 0`.
        By default :math:`s_1, s_2` are symbols and the frames exact rational rotations
        (:math:`t_j = 1/(j+2)`); symbolic ``angles`` give fully symbolic factors (the exact
        check then takes seconds for :math:`N = 2` and minutes for :math:`N = 3`).
        """
        if self.widths != (2,) * (self.depth + 1):
            raise SymflowError(f"balanced_point builds 2 x 2 factors; this network has widths "
                               f"{self.widths}")
        s = singular or sp.symbols("s1 s2", positive=True)
        t = angles or [sp.Rational(1, j + 2) for j in range(self.depth + 1)]
        S = sp.diag(*s)
        U = [_cayley(tj) for tj in t]
        point = {}
        for j, W in enumerate(self.factors, start=1):
            value = U[j] * S * U[j - 1].T
            point.update({W[a, b]: value[a, b] for a in range(2) for b in range(2)})
        self._balanced = (U, S)
        return point

    def end_to_end_formula(self, point) -> sp.Matrix:
        r""":math:`-\sum_j (WW^\top)^{(j-1)/N}\nabla\ell(W)(W^\top W)^{(N-j)/N}` at a point from
        :meth:`balanced_point` (the powers from its SVD, exactly)."""
        U, S = self._balanced
        N = self.depth
        G = self.grad_loss.xreplace(point)
        out = sp.zeros(2, 2)
        for j in range(1, N + 1):
            left = U[N] * S**(2 * (j - 1)) * U[N].T
            right = U[0] * S**(2 * (N - j)) * U[0].T
            out += -left * G * right
        return out

    def check_end_to_end(self, angles=None) -> bool:
        """Exact check, on balanced 2 x 2 factors with symbolic singular values and a symbolic
        loss gradient, that the product of the factor flow is :meth:`end_to_end_formula`
        (Arora, Cohen & Hazan 2018); ``angles`` as in :meth:`balanced_point`."""
        point = self.balanced_point(angles=angles)
        assert all(D.xreplace(point).applyfunc(sp.cancel).is_zero_matrix
                   for D in self.balancedness()), "the start is not balanced"
        gap = self.end_to_end_rate.xreplace(point) - self.end_to_end_formula(point)
        return gap.applyfunc(sp.cancel).is_zero_matrix

    def singular_value_rate(self):
        r""":math:`\dot\sigma = u^\top\dot W v` under the end-to-end flow, for any depth.

        With :math:`(WW^\top)^q u = \sigma^{2q}u` and :math:`v^\top(W^\top W)^q =
        \sigma^{2q}v^\top` the sum over :math:`j` is evaluated by SymPy for the symbolic depth;
        ``g_uv`` stands for :math:`\langle\nabla\ell, uv^\top\rangle = u^\top\nabla\ell\, v`.
        """
        sigma = sp.Symbol("sigma", positive=True)
        g_uv = sp.Symbol("g_uv", real=True)
        N, j = sp.Symbol("N", positive=True, integer=True), sp.Symbol("j", integer=True)
        rate = -sp.summation(sigma**(2 * (j - 1) / N) * g_uv * sigma**(2 * (N - j) / N),
                             (j, 1, N))
        rate = sp.powsimp(sp.simplify(rate), force=True)
        return sp.expand_power_base(rate.subs(N, self.depth), force=True)

    # -- gradient descent: modified equation ------------------------------------------------
    def _need_loss(self, what):
        if self.loss is None:
            raise SymflowError(f"{what} needs a concrete loss: sf.deep_linear(..., "
                               "loss=lambda W: ...)")

    def modified_equation(self, order=1, **kwargs):
        """``sf.modified_equation(sf.GD(), L, params, order)`` of the factorised loss."""
        self._need_loss("modified_equation")
        return modified_equation(GD(), loss=self.loss, params=list(self.params), order=order,
                                 **kwargs)

    def implicit_regularizer(self):
        r""":math:`\tfrac h4\sum_j\lVert\nabla_{W_j}L\rVert_F^2` with
        :math:`\nabla_{W_j}L = -\dot W_j` (GD's order-1 modified loss is :math:`L` plus this)."""
        return h / 4 * sum(sum(c**2 for c in dW) for dW in self.factor_flow)

    def balanced_regularizer(self):
        r"""The regulariser on balanced scalar factors (``shape=(1, 1)``, :math:`|w_j| = s`,
        :math:`W = s^N`): :math:`\tfrac h4 N\,|W|^{2-2/N}\,\ell'(W)^2`."""
        if self.shape != (1, 1) or set(self.widths) != {1}:
            raise SymflowError("balanced_regularizer is the scalar (1 x 1, width 1) case")
        s = sp.Symbol("s", positive=True)
        reg = self.implicit_regularizer().xreplace({p: s for p in self.params})
        return sp.simplify(reg)

    def latex(self) -> str:
        N = self.depth
        return (rf"\dot W_j = -W_{{{N}:j+1}}^\top \nabla\ell(W) W_{{j-1:1}}^\top,\ \ "
                rf"\dot W = -\sum_{{j=1}}^{{{N}}} (WW^\top)^{{\frac{{j-1}}{{{N}}}}} \nabla\ell(W) "
                rf"(W^\top W)^{{\frac{{{N}-j}}{{{N}}}}}")

    def __repr__(self) -> str:
        return f"<DeepLinear depth={self.depth} shape={self.shape} widths={self.widths}>"


def deep_linear(depth, shape, widths=None, loss=None) -> DeepLinear:
    r"""A depth-``depth`` linear network with end-to-end matrix of ``shape`` (:class:`DeepLinear`).

    ``loss`` is a function of the end-to-end SymPy Matrix returning a scalar, e.g.
    ``loss=lambda W: (W[0, 0] - 1)**2 / 2``; without it the results hold for every loss.

    Example::

        >>> import sympy as sp, symflow as sf
        >>> net = sf.deep_linear(depth=2, shape=(1, 1), widths=[1],
        ...                      loss=lambda W: (W[0, 0] - 1)**2 / 2)
        >>> me = net.modified_equation(order=1)
        >>> gap = me.modified_loss - net.loss - net.implicit_regularizer()
        >>> [sp.expand(sp.diff(gap, q)) for q in net.params]   # equal up to a constant
        [0, 0]
    """
    return DeepLinear(depth, shape, widths, loss)
