r"""Rooted trees and the elementary differentials of a gradient field.

A rooted tree :math:`\tau` indexes one *elementary differential* of the gradient
:math:`g = \nabla L`,

.. math::

    G(\bullet) = g, \qquad
    G([\tau_1, \dots, \tau_m]) = g^{(m)}\bigl[G(\tau_1), \dots, G(\tau_m)\bigr]
    = \nabla^{m+1} L\bigl[G(\tau_1), \dots, G(\tau_m)\bigr],

so :math:`G([\bullet]) = H g`, :math:`G([[\bullet]]) = H^2 g`, :math:`G([\bullet,\bullet]) =
T[g, g]` with :math:`H = \nabla^2 L` and :math:`T = \nabla^3 L`. For the field :math:`f =
-g` of gradient flow the usual elementary differentials :math:`F(\tau)` of Hairer, Lubich
& Wanner (*Geometric Numerical Integration*, 2nd ed. 2006, ch. III.1) are
:math:`F(\tau) = (-1)^{|\tau|} G(\tau)` (:math:`|\tau|` the number of nodes).

**Players (colours).** When the parameters are split into blocks (the players of a game,
:math:`\theta = (\phi, \psi)`), every node carries a colour :math:`c` and
:math:`G(\tau) = P_c\, g^{(m)}[G(\tau_1), \dots, G(\tau_m)]` with :math:`P_c` the projection on
block :math:`c`: a leaf of colour 1 is :math:`g_1 = \nabla_\phi L` (padded with zeros), and
``H1 g2`` is player 1's block of :math:`H g_2`. These are the bi-coloured trees of
partitioned methods (HLW ch. III.2, P-series). With one block every colour is 0 and
:math:`P_0 = I`.

A tree is stored canonically as ``(colour, *children)`` with the children sorted:
:math:`\bullet` is ``(0,)``, :math:`[\bullet]` is ``(0, (0,))``, :math:`[\bullet, [\bullet]]`
is ``(0, (0,), (0, (0,)))``. Equal trees are equal tuples, so trees can key dictionaries.

The derivative of an elementary differential along another one is a sum of graftings
(HLW ch. III.1, the proof of Lemma 1.9):
:math:`G(\tau)'\,G(\sigma) = \sum_{\text{nodes } v \text{ of } \tau} G(\tau \circ_v \sigma)`,
where :math:`\tau \circ_v \sigma` attaches :math:`\sigma` as a new child of :math:`v`.

Example::

    >>> from symflow._trees._rooted import LEAF, graft, leaf, text, tree, trees_of_order
    >>> [len(trees_of_order(n)) for n in range(1, 7)]
    [1, 1, 2, 4, 9, 20]
    >>> {text(t): c for t, c in graft(LEAF, tree(LEAF)).items()}
    {'T[g, g]': 1, 'H^2 g': 1}
    >>> text(tree(leaf(1), color=0), players=True)  # player 1's block of H g2
    'H1 g2'
"""

from __future__ import annotations

import functools

import sympy as sp

from .._core._guard import check_symbolic, to_sympy

#: The one-node tree :math:`\bullet` (its elementary differential is :math:`g`).
LEAF: tuple = (0,)


def tree(*children, color: int = 0) -> tuple:
    """The tree :math:`[\\tau_1, \\dots, \\tau_m]` with the given subtrees, canonically ordered."""
    return (color, *sorted(children))


def leaf(color: int = 0) -> tuple:
    """The one-node tree of the given colour."""
    return (color,)


def children(t: tuple) -> tuple:
    """The subtrees :math:`\\tau_1, \\dots, \\tau_m` of the root (sorted)."""
    return t[1:]


def color(t: tuple) -> int:
    """The colour (player) of the root."""
    return t[0]


@functools.lru_cache(maxsize=None)
def order(t: tuple) -> int:
    """Number of nodes :math:`|\\tau|`."""
    return 1 + sum(order(c) for c in t[1:])


@functools.lru_cache(maxsize=None)
def trees_of_order(n: int) -> tuple:
    """All one-colour rooted trees with ``n`` nodes (1, 1, 2, 4, 9, 20, 48, ... of them)."""
    if n < 1:
        return ()
    if n == 1:
        return (LEAF,)
    out = set()
    for smaller in trees_of_order(n - 1):
        out.update(graft(LEAF, smaller))
    return tuple(sorted(out, key=sort_key))


@functools.lru_cache(maxsize=None)
def graft(sigma: tuple, tau: tuple) -> dict:
    r"""``{tree: multiplicity}`` of :math:`\sum_v \tau \circ_v \sigma` (attach ``sigma`` at every node).

    This is the tree form of the derivative :math:`G(\tau)'\,G(\sigma)`.
    """
    kids = tau[1:]
    out: dict = {tree(*kids, sigma, color=tau[0]): 1}
    for i, child in enumerate(kids):
        if i > 0 and kids[i - 1] == child:
            continue  # equal siblings: counted once, weighted below
        same = kids.count(child)
        rest = kids[:i] + kids[i + same:]
        for new_child, mult in graft(sigma, child).items():
            t = tree(*rest, *([child] * (same - 1)), new_child, color=tau[0])
            out[t] = out.get(t, 0) + mult * same
    return out


@functools.lru_cache(maxsize=None)
def symmetry(t: tuple) -> int:
    r"""The symmetry coefficient :math:`\sigma(\tau)` (HLW ch. III.1, Definition 1.7)."""
    out = 1
    for child in set(t[1:]):
        mult = t[1:].count(child)
        out *= sp.factorial(mult) * symmetry(child) ** mult
    return int(out)


def _chain(t: tuple) -> tuple[int, tuple]:
    """``(k, base)`` with ``t`` = ``k`` single-child nodes above ``base``."""
    k = 0
    while len(t) == 2:
        k += 1
        t = t[1]
    return k, t


def _render(t: tuple, players: bool, latex: bool) -> str:
    sub = (lambda c: f"_{{{c + 1}}}" if latex else f"{c + 1}") if players else (lambda c: "")
    kids = t[1:]
    if not kids:
        return "g" + sub(t[0])
    if len(kids) == 1:
        if not players:
            k, base = _chain(t)
            power = "H" if k == 1 else (f"H^{{{k}}}" if latex else f"H^{k}")
            return f"{power} {_render(base, players, latex)}"
        return f"H{sub(t[0])} {_render(kids[0], players, latex)}"
    args = ", ".join(_render(c, players, latex) for c in kids)
    if len(kids) == 2:
        name = "T"
    else:
        name = f"\\nabla^{{{len(kids) + 1}}}L" if latex else f"D^{len(kids) + 1}L"
    return f"{name}{sub(t[0])}[{args}]"


@functools.lru_cache(maxsize=None)
def text(t: tuple, players: bool = False) -> str:
    """Plain-text form of :math:`G(\\tau)`: ``g``, ``H g``, ``H^2 g``, ``T[g, H g]``, ``D^4L[g, g, g]``.

    With ``players`` every operator carries its player: ``g1``, ``H2 g1``, ``T1[g1, g2]``.
    """
    return _render(t, players, latex=False)


@functools.lru_cache(maxsize=None)
def latex(t: tuple, players: bool = False) -> str:
    r"""LaTeX form of :math:`G(\tau)`: ``g``, ``H g``, ``H^{2} g``, ``T[g, g]``, ``\nabla^{4}L[g, g, g]``."""
    return _render(t, players, latex=True)


def sort_key(t: tuple):
    """Display order: by number of nodes, chains first."""
    return (order(t), -_chain(t)[0], len(t), t)


# -- concrete evaluation ------------------------------------------------------------------

class ConcreteDifferentials:
    r"""Evaluate :math:`G(\tau)` as SymPy column matrices for a concrete loss.

    :math:`g^{(m)}[v_1, \dots, v_m]` is computed with placeholder vectors (directional
    derivatives of :math:`L` with the directions held fixed) and the subtrees' values
    substituted afterwards; every subtree is evaluated once. With ``point`` (one value per
    parameter) the values are taken at that point (fast exact checks at rational points).
    ``blocks`` (a list of index lists, one per colour) gives the players' parameters.

    Example::

        >>> import sympy as sp
        >>> from symflow._trees._rooted import ConcreteDifferentials, tree, LEAF
        >>> x, y = sp.symbols("x y")
        >>> G = ConcreteDifferentials(x**3 / 6 + x * y, [x, y])
        >>> G(tree(LEAF, LEAF)).T   # T[g, g] with g = (x**2/2 + y, x)
        Matrix([[(x**2/2 + y)**2, 0]])
    """

    def __init__(self, loss, params, point=None, blocks=None):
        check_symbolic(loss=loss, params=params, point=point)
        self.loss = to_sympy(loss, "loss")
        self.params = tuple(params)
        self.point = None if point is None else {p: to_sympy(c, "at")
                                                 for p, c in zip(self.params, point)}
        dim = len(self.params)
        self.blocks = [list(range(dim))] if blocks is None else [list(b) for b in blocks]
        self._values: dict = {}
        self._derivatives: dict = {}

    def _directional(self, m: int):
        """:math:`g^{(m)}[w_1,\\dots,w_m]` in placeholder symbols ``w``, and the symbols."""
        if m not in self._derivatives:
            dim = len(self.params)
            w = [sp.symbols(f"_w{i}_0:{dim}") for i in range(m)]
            s = self.loss
            for i in range(m):
                s = sp.Add(*[sp.diff(s, p) * w[i][b] for b, p in enumerate(self.params)])
            grad = sp.Matrix([sp.diff(s, p) for p in self.params])
            if self.point is not None:
                grad = grad.xreplace(self.point)
            self._derivatives[m] = (grad, w)
        return self._derivatives[m]

    def __call__(self, t: tuple) -> sp.Matrix:
        if t not in self._values:
            kids = t[1:]
            grad, w = self._directional(len(kids))
            sub = {}
            for i, child in enumerate(kids):
                value = self(child)
                sub.update({w[i][b]: value[b] for b in range(len(self.params))})
            value = grad.xreplace(sub) if sub else grad
            if len(self.blocks) > 1:
                keep = set(self.blocks[t[0]])
                value = sp.Matrix([v if i in keep else 0 for i, v in enumerate(value)])
            self._values[t] = value
        return self._values[t]
