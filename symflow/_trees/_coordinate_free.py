r"""Coordinate-free modified equations: exact combinations of elementary differentials of :math:`L`.

For an optimizer whose update is a linear combination, with scalar coefficients, of the
parameters, the memory and gradients evaluated at such combinations (GD, heavy ball,
Nesterov, extragradient, Runge–Kutta-like ``Custom`` rules, gradient descent-ascent), every
term of the modified equation is a universal combination of elementary differentials
:math:`G(\tau)` of :math:`g = \nabla L` indexed by rooted trees (:mod:`symflow._trees._rooted`), with
exact coefficients that do not depend on the model:

.. math::

    \dot\theta = \sum_{k\ge0} h^k f_k, \qquad f_k = \sum_\tau c_k(\tau)\, G(\tau),
    \qquad\text{GD: } f_0 = -g,\; f_1 = -\tfrac12 Hg,\;
    f_2 = -\tfrac13 H^2 g - \tfrac1{12} T[g, g].

**How.** The update rule is parsed into vector-linear forms (:mod:`symflow._trees._linear_rule`)
and expanded as a B-series (:mod:`symflow._trees._bseries`). Memory is eliminated on its invariant
manifold :math:`m = M_h(\theta)`, a tree series solving :math:`M_h(\Phi_h(\theta)) = N(\theta,
M_h(\theta))` order by order: each pass corrects the manifold by :math:`-J^{-1}` times the
residual, :math:`J = B - I - c\,a` the linearisation at :math:`h = 0` (:math:`B` the memory
map, :math:`M_0 = c\,\theta`, :math:`a` the memory's weight in the parameter update). The
modified field of the reduced one-step map then follows from the triangular recursion of
:mod:`symflow._engine._bea` with Jacobian-vector products replaced by grafting of trees. See Hairer,
Lubich & Wanner, *Geometric Numerical Integration*, 2nd ed. 2006, ch. III.1 (B-series),
III.2 (P-series, for the players of a game) and IX.9 (modified equations of B-series
methods).

Optimizers that act coordinate-wise (RMSprop, Adam: squares and square roots of the
gradient) have no such form: :func:`coordinate_free_equation` raises :class:`SymflowError`
and points to the concrete form.

Example::

    >>> import symflow as sf
    >>> print(sf.modified_equation(sf.GD(), order=2).field)
    h^0: -g
    h^1: -1/2 H g
    h^2: -1/3 H^2 g - 1/12 T[g, g]
"""

from __future__ import annotations

import sympy as sp

from .._core._display import shorten
from .._core._errors import SymflowError
from .._core._guard import as_sympy, check_symbolic
from .._core._latex import LatexDisplay, aligned
from .._core._progress import progress_bar
from .._core._validate import check_order
from ..optimizers._base import check_optimizer
from . import _rooted as tr
from ._bseries import block_of, is_theta, series_arithmetic, theta_token
from ._linear_rule import THETA, LinearRule, linear_rule, memory_node

# -- display ---------------------------------------------------------------------------------


def _flip_signs(c):
    """``(sign, [(base, exp), ...])`` of ``c`` with factors like ``beta - 1`` as ``1 - beta``."""
    number, factors = sp.S.One, []
    for f in sp.Mul.make_args(sp.factor(c)):
        if f.is_number:
            number *= f
            continue
        base, exp = f.as_base_exp()
        if isinstance(base, sp.Add) and exp.is_integer and base.as_coeff_Add()[0] < 0:
            base = -base
            number *= sp.Integer(-1) ** exp
        factors.append((base, exp))
    return number, factors


def _coefficient(c, latex: bool) -> tuple[bool, str]:
    """``(negative, text of |c|)``; the text is empty for 1."""
    c = as_sympy(c)
    number, factors = _flip_signs(c)
    if not number.is_Rational:
        body = sp.latex(c) if latex else str(c)
        return False, f"\\left({body}\\right)" if latex else f"({body})"
    negative = number < 0
    number = abs(number)

    def fmt(base, exp, alone):
        b = sp.latex(base) if latex else str(base)
        compound = isinstance(base, (sp.Add, sp.Mul)) or (not latex and isinstance(base, sp.Pow))
        if compound and not (latex and alone and exp == 1):
            b = f"\\left({b}\\right)" if latex else f"({b})"
        if exp == 1:
            return b
        return f"{b}^{{{sp.latex(exp)}}}" if latex else f"{b}**{exp}"

    ups = [(b, e) for b, e in factors if not (e.is_number and e < 0)]
    downs = [(b, -e) for b, e in factors if e.is_number and e < 0]
    num = [fmt(b, e, len(ups) == 1 and number.p == 1) for b, e in ups]
    den = [fmt(b, e, len(downs) == 1 and number.q == 1) for b, e in downs]
    if number.p != 1 or not num:
        num.insert(0, str(number.p))
    if number.q != 1:
        den.insert(0, str(number.q))
    sep = " " if latex else "*"
    top = sep.join(num)
    if not den:
        return negative, "" if top == "1" else top
    bottom = sep.join(den)
    if latex:
        return negative, f"\\frac{{{top}}}{{{bottom}}}"
    if len(den) > 1:
        bottom = f"({bottom})"
    return negative, f"{top}/{bottom}"


def _items(coeffs: dict, theta=(), latex: bool = False, players: bool = False) -> list:
    """``[(coefficient, name), ...]`` of a combination, theta first, then trees in display order."""
    items = []
    for b, a in enumerate(theta):
        if a != 0:
            name = ("\\theta" if latex else "theta")
            if players:
                name += f"_{{{b + 1}}}" if latex else f"{b + 1}"
            items.append((a, name))
    for t in sorted(coeffs, key=tr.sort_key):
        items.append((coeffs[t], tr.latex(t, players) if latex else tr.text(t, players)))
    return items


def _combination(coeffs: dict, theta=(), latex: bool = False, players: bool = False) -> str:
    items = _items(coeffs, theta, latex, players)
    if not items:
        return "0"
    out = []
    for i, (c, name) in enumerate(items):
        neg, body = _coefficient(c, latex)
        body = f"{body} {name}".strip()
        if i == 0:
            out.append(("-" if neg else "") + body)
        else:
            out.append((" - " if neg else " + ") + body)
    return "".join(out)


# -- results ---------------------------------------------------------------------------------

class TreeSeries(LatexDisplay):
    r"""A vector series :math:`\sum_k h^k\bigl(\sum_b a_{k,b}\,\theta_b + \sum_\tau c_k(\tau)\,G(\tau)\bigr)`.

    ``terms[k]`` is the dict ``{tree: c_k(tree)}`` (exact SymPy coefficients of the
    elementary differentials :math:`G(\tau)` of :math:`g = \nabla L`, see
    :mod:`symflow._trees._rooted`) and ``theta[k]`` the tuple of coefficients :math:`a_{k,b}` of
    :math:`\theta` (one per player block; zero for a modified field, a memory manifold may
    hold one). ``blocks`` is the number of player blocks.
    """

    def __init__(self, terms, theta=None, name: str = "f", blocks: int = 1):
        self.terms = tuple(dict(t) for t in terms)
        zero = (sp.S.Zero,) * blocks
        self.theta = tuple(tuple(a) for a in theta) if theta is not None else \
            (zero,) * len(self.terms)
        self.name = name
        self.blocks = blocks

    @property
    def order(self) -> int:
        return len(self.terms) - 1

    def concrete(self, loss, params, at=None, blocks=None) -> tuple:
        """``terms`` evaluated for a concrete loss: a tuple of SymPy column matrices.

        With ``at`` (one value per parameter) the terms are evaluated at that point;
        ``blocks`` lists each player's parameter indices.
        """
        check_symbolic(loss=loss, params=params, at=at, blocks=blocks)
        params = tuple(params)
        G = tr.ConcreteDifferentials(loss, params, at, blocks)
        theta = sp.Matrix(params if at is None else list(at))
        masks = G.blocks
        out = []
        for k, coeffs in enumerate(self.terms):
            vec = sp.zeros(len(params), 1)
            for b, a in enumerate(self.theta[k]):
                if a != 0:
                    vec += a * sp.Matrix([theta[i] if i in masks[b] else 0
                                          for i in range(len(params))])
            for t, c in coeffs.items():
                vec = vec + c * G(t)
            out.append(sp.ImmutableMatrix(vec))
        return tuple(out)

    def term_text(self, k: int) -> str:
        return _combination(self.terms[k], self.theta[k], players=self.blocks > 1)

    def term_latex(self, k: int) -> str:
        return _combination(self.terms[k], self.theta[k], latex=True, players=self.blocks > 1)

    def latex(self) -> str:
        """The series as LaTeX: ``-g - \\frac{1}{2} h H g + h^{2}\\left(...\\right)``."""
        parts = []
        for k in range(len(self.terms)):
            items = _items(self.terms[k], self.theta[k], True, self.blocks > 1)
            if not items:
                continue
            hk = "" if k == 0 else ("h" if k == 1 else f"h^{{{k}}}")
            if k == 0 or len(items) > 1:
                body = self.term_latex(k)
                if k == 0:
                    parts.append(body if body.startswith("-") else f"+ {body}")
                else:
                    parts.append(f"+ {hk}\\left({body}\\right)")
                continue
            (c, name), = items
            neg, coef = _coefficient(c, True)
            parts.append(" ".join(p for p in ("-" if neg else "+", coef, hk, name) if p))
        if not parts:
            return "0"
        text = " ".join(parts)
        if text.startswith("+ "):
            return text[2:]
        return "-" + text[2:] if text.startswith("- ") else text

    def __str__(self) -> str:
        return "\n".join(f"h^{k}: {self.term_text(k)}" for k in range(len(self.terms)))

    def __repr__(self) -> str:
        return f"<TreeSeries {self.name} order={self.order}>"


class CoordinateFreeEquation(LatexDisplay):
    r"""The modified equation :math:`\dot\theta = \sum_{k\le p} h^k f_k` in elementary differentials.

    Attributes
    ----------
    terms : tuple of dict
        ``terms[k]`` maps rooted trees (:mod:`symflow._trees._rooted`) to the exact coefficient of
        :math:`G(\tau)` in :math:`f_k` (rationals, or expressions in the hyperparameters).
    field : TreeSeries
        The same terms with printing, LaTeX and :meth:`concrete`.
    manifold : tuple of TreeSeries or None
        For optimizers with memory: the invariant manifold :math:`m = M_h(\theta)`, one
        series per memory slot (to order ``order + 1``); ``None`` without memory.
    rule : LinearRule
        The update rule as vector-linear forms (what ``solvers`` runs on a network).
    optimizer, order, hyper, blocks
        What was derived; ``hyper`` are the symbols in the coefficients, ``blocks`` the
        number of players (1, or 2 for gradient descent-ascent).
    """

    def __init__(self, optimizer, order, field, manifold, rule: LinearRule):
        self.optimizer = optimizer
        self.order = order
        self.field = field
        self.terms = field.terms
        self.manifold = manifold
        self.rule = rule
        self.hyper = rule.hyper
        self.blocks = rule.blocks

    @property
    def time_scale(self):
        r"""The constant :math:`c` with :math:`f_0 = -c\,g` (heavy ball: :math:`1/(1-\beta)`), else None."""
        if self.blocks == 1 and set(self.terms[0]) == {tr.LEAF}:
            return -self.terms[0][tr.LEAF]
        return None

    def player_blocks(self, dim: int) -> list | None:
        """The index lists of the players' parameters among ``dim`` (None for one player)."""
        if self.blocks == 1:
            return None
        players = getattr(self.optimizer, "players", None)
        n = len(players[0]) if players else self.optimizer.n_first
        return [list(range(n)), list(range(n, dim))]

    def concrete(self, loss, params, at=None) -> tuple:
        """The terms for a concrete loss, comparable with ``sf.modified_equation(...).terms``.

        ``at``: evaluate at that point (one value per parameter) instead.

        Example::

            >>> import sympy as sp, symflow as sf
            >>> x, y = sp.symbols("x y")
            >>> cf = sf.modified_equation(sf.GD(), order=1)
            >>> cf.concrete(x**2 * y / 2, [x, y])[1].T   # -1/2 H g
            Matrix([[-x**3/4 - x*y**2/2, -x**2*y/2]])
        """
        return self.field.concrete(loss, params, at, self.player_blocks(len(params)))

    def truncate(self, order: int) -> "CoordinateFreeEquation":
        """The same equation keeping the terms up to ``h**order``."""
        order = check_order(order)
        if order > self.order:
            raise SymflowError(f"got order={order}; this equation was derived to order "
                               f"{self.order} only")
        field = TreeSeries(self.terms[: order + 1], blocks=self.blocks)
        return CoordinateFreeEquation(self.optimizer, order, field, self.manifold, self.rule)

    def _legend(self) -> str:
        if self.blocks > 1:
            return ("g1, g2 = the players' blocks of grad L; H1 v, T1[u, v], D^kL1[...] = "
                    "player 1's block of H v, of the third and k-th derivatives")
        return "g = grad L, H = Hessian, T = third derivative, D^kL = k-th derivative"

    def latex(self) -> str:
        r"""``\dot\theta = ...`` (and the memory manifold, if any) as LaTeX."""
        rows = [f"\\dot\\theta &= {self.field.latex()}"]
        for j, series in enumerate(self.manifold or ()):
            rows.append(f"m_{{{j}}} &= {series.latex()}")
        return aligned(rows)

    def __str__(self) -> str:
        lines = [f"Coordinate-free modified equation of {self.optimizer!r} to order "
                 f"{self.order} in h (t = n*h; {self._legend()})"]
        lines += ["  " + line for line in str(self.field).splitlines()]
        for j, series in enumerate(self.manifold or ()):
            lines.append(f"  memory slot {j} on its invariant manifold:")
            lines += ["    " + line for line in str(series).splitlines()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return "\n".join(shorten(line, 400) for line in str(self).splitlines())


# -- the derivation ------------------------------------------------------------------------------

def _newton_steps(S, rule, optimizer):
    """Per block: ``(M_0 coefficients c, correction matrix -J^{-1})`` of the invariance equation."""
    n_mem = len(rule.memory)
    K = S.K
    out = []
    for b in range(rule.blocks):
        B, C, a = sp.zeros(n_mem, n_mem), sp.zeros(n_mem, 1), sp.zeros(1, n_mem)
        for i, slot in enumerate(rule.memory):
            for node, s in slot[b]:
                c0 = K.to_sympy(S.scalar(s)[0])
                if node[0] == "m":
                    B[i, node[1]] += c0
                elif node == THETA:
                    C[i] += c0
        for node, s in rule.theta[b]:
            if node[0] == "m":
                a[0, node[1]] += K.to_sympy(S.scalar(s)[0])
        relax = sp.eye(n_mem) - B
        if sp.simplify(relax.det()) == 0:
            mem = sp.Matrix([sp.Symbol(f"m_{j}") for j in range(n_mem)])
            raise SymflowError(
                f"the memory of {optimizer!r} does not relax: at h = 0 it maps m to "
                f"{list(B * mem)} (an eigenvalue 1), so there is no invariant manifold "
                "m = M_h(theta) to eliminate it on and no coordinate-free flow on theta alone")
        start = (relax.inv() * C).applyfunc(sp.cancel)
        J = (B - sp.eye(n_mem) - start * a).applyfunc(sp.cancel)
        if sp.simplify(J.det()) == 0:
            raise SymflowError(
                f"the invariance equation of the memory of {optimizer!r} is degenerate at "
                "h = 0; its memory cannot be eliminated order by order")
        step = (-J.inv()).applyfunc(sp.cancel)
        out.append(([K.from_sympy(v) for v in start],
                    [[K.from_sympy(step[i, j]) for j in range(n_mem)] for i in range(n_mem)]))
    return out


def _reduce_memory(S, rule, optimizer, progress):
    """Solve the invariance equation; return (theta_next vector, manifold vectors)."""
    n_mem = len(rule.memory)
    steps = _newton_steps(S, rule, optimizer)
    M = [{(0, theta_token(b)): steps[b][0][i] for b in range(rule.blocks) if steps[b][0][i]}
         for i in range(n_mem)]
    theta = S.theta()
    full = S.T
    # pass i fixes the order-h^i part of the manifold, so it needs truncation at h^i only;
    # a last pass at full order checks that the invariance equation holds
    for degree in progress_bar([*range(full + 1), full], desc="memory manifold", unit="order",
                                progress=progress):
        S.T = degree
        env = {THETA: theta, **{memory_node(j): M[j] for j in range(n_mem)}}
        memo: dict = {}
        theta_next = S.evaluate(rule.theta, env, memo)
        residual = [S.add(S.evaluate(rule.memory[i], env, memo), S.compose(M[i], theta_next),
                          -S.K.one) for i in range(n_mem)]
        if degree == full and not any(residual):
            return theta_next, M
        for b, (_, step) in enumerate(steps):
            parts = [S.restrict(r, b) for r in residual]
            for i in range(n_mem):
                for j in range(n_mem):
                    if step[i][j]:
                        M[i] = S.add(M[i], parts[j], step[i][j])
    raise SymflowError(
        f"could not find the invariant manifold of the memory of {optimizer!r} order by order "
        "(the invariance equation did not close); its memory may not relax geometrically")


def _tree_series(S, vec, name, length=None):
    """A series dict ``{(k, key): c}`` as a :class:`TreeSeries` with SymPy coefficients
    (``length`` terms, by default ``S.T + 1``)."""
    length = S.T + 1 if length is None else length
    terms = [dict() for _ in range(length)]
    theta = [[sp.S.Zero] * S.blocks for _ in range(length)]
    for (k, t), c in vec.items():
        c = sp.cancel(S.K.to_sympy(c))
        if is_theta(t):
            theta[k][block_of(t)] = c
        else:
            terms[k][t] = c
    return TreeSeries(terms, theta, name=name, blocks=S.blocks)


def coordinate_free_equation(optimizer, order, progress=None) -> CoordinateFreeEquation:
    r"""The modified equation of ``optimizer`` as exact combinations of elementary differentials.

    Also reached as ``sf.modified_equation(optimizer, order=k)`` (no loss).

    Parameters
    ----------
    optimizer : AbstractOptimizer
        ``sf.GD()``, ``sf.HeavyBall(beta)``, ``sf.Nesterov(beta)``, a ``Custom`` rule built
        from gradient evaluations, or a two-player scheme (simultaneous or alternating
        gradient descent-ascent); hyperparameters may be numbers or symbols.
    order : int
        Highest power of :math:`h` kept.
    progress : bool or None
        Progress bars: None (default) once the work has run for a second, True from the
        start, False never.

    Notes
    -----
    Raises :class:`SymflowError` for optimizers that act coordinate-wise (RMSprop, Adam)
    or mix coordinates: they have no coordinate-free form.

    Examples
    --------
    ::

        >>> import sympy as sp, symflow as sf
        >>> from symflow._trees._coordinate_free import coordinate_free_equation
        >>> hb = coordinate_free_equation(sf.HeavyBall(beta=sp.Symbol("beta")), order=1)
        >>> print(hb.field)
        h^0: -1/(1 - beta) g
        h^1: -(beta + 1)/(2*(1 - beta)**3) H g
    """
    optimizer = check_optimizer(optimizer)
    order = check_order(order)
    rule = linear_rule(optimizer)
    S = series_arithmetic(rule, order + 1)
    manifold = None
    if rule.memory:
        theta_next, M = _reduce_memory(S, rule, optimizer, progress)
        manifold = tuple(_tree_series(S, vec, f"m_{j}") for j, vec in enumerate(M))
    else:
        theta_next = S.evaluate(rule.theta, {THETA: S.theta()})
    d = [dict() for _ in range(S.T + 1)]
    for k, t, c in S.split_point(theta_next, f"the update of {optimizer!r}"):
        d[k][t] = c
    f = S.modified_field(d, order, progress)
    field = _tree_series(S, {(k, t): c for k, fk in enumerate(f) for t, c in fk.items()}, "f",
                         order + 1)
    return CoordinateFreeEquation(optimizer, order, field, manifold, rule)
