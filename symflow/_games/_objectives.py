r"""Two-player zero-sum games under GDA: each player's modified objective, and the Dirac-GAN.

Gradient descent-ascent on :math:`\min_\phi\max_\theta E(\phi,\theta)` (min player
:math:`\phi` with learning rate :math:`h`, max player :math:`\theta` with :math:`rh`; see
:class:`~symflow.SimultaneousGDA` and :class:`~symflow.AlternatingGDA`) follows a modified
equation :math:`\dot z = \sum_k h^k f_k(z)` like any optimizer. Split into the players'
blocks, it may say that each player follows the gradient of a *modified objective* in its
own variables:

.. math::

    \dot\phi = -\nabla_\phi \tilde E_1, \qquad \dot\theta = r\,\nabla_\theta \tilde E_2,
    \qquad \tilde E_i = E + \sum_{k\ge1} h^k V_{i,k}.

:func:`modified_objectives` derives the :math:`V_{i,k}` with the engine for a *generic*
:math:`E` (an undefined SymPy function, jet arithmetic), so the result holds for every
game. To first order it reproduces the zero-sum case of Rosca, Wu, Dherin & Barrett,
*Discretization drift in two-player games* (ICML 2021), with their learning rates
:math:`\alpha h = h`, :math:`\lambda h = rh`:

.. math::

    \text{simultaneous:}\quad \tilde E_1 = \tilde E_2 = E + \tfrac{h}{4}\lVert\nabla_\phi E
    \rVert^2 - \tfrac{rh}{4}\lVert\nabla_\theta E\rVert^2 ,

.. math::

    \text{alternating }(\phi\text{ first}):\quad \tilde E_1 = E + \tfrac{h}{4}\lVert
    \nabla_\phi E\rVert^2 - \tfrac{rh}{4}\lVert\nabla_\theta E\rVert^2, \qquad
    \tilde E_2 = E - \tfrac{h}{4}\lVert\nabla_\phi E\rVert^2 - \tfrac{rh}{4}\lVert
    \nabla_\theta E\rVert^2 .

Simultaneous GDA is thus again a zero-sum game, one whose drift pays the min player for a
large :math:`\lVert\nabla_\theta E\rVert` (the opponent's gradient) and the max player for
a small :math:`\lVert\nabla_\phi E\rVert`; alternating GDA's modified game is no longer
zero-sum. From order 2 on the blocks are, for a generic :math:`E`, not gradients of any
polynomial in the partial derivatives of :math:`E` (the search is over a complete basis,
so ``None`` there is a proof, not a failure).

The Dirac-GAN (Mescheder, Geiger & Nowozin, *Which training methods for GANs do actually
converge?*, ICML 2018, Sec. 2): generator :math:`p_\theta = \delta_\theta`, linear
discriminator :math:`D_\psi(x) = \psi x`, data :math:`\delta_0`, and
:math:`E(\theta,\psi) = f(\psi\theta) + f(0)` with :math:`f(t) = -\log(1+e^{-t})`;
the generator :math:`\theta` is the min player. Its equilibrium :math:`(0, 0)` is a centre
of the exact flow (eigenvalues :math:`\pm i f'(0)\sqrt r`); see
:func:`symflow.equilibrium_eigenvalues` for what each scheme's modified flows make of it.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import sympy as sp
from sympy.polys.matrices import DomainMatrix

from .._core import _validate as v
from .._core._display import NOT_COMPUTED, computed, shorten
from .._core._errors import SymflowError
from .._core._gradient import expr_is_gradient, expr_potential, is_zero_expr
from .._core._guard import as_sympy, check_symbolic, to_sympy
from .._core._latex import LatexDisplay, aligned
from .._core._readable import readable
from .._core._symbols import h
from .._core._validate import check_order, check_params
from .._engine._algebra import expand_map
from .._engine._bea import modified_field
from .._engine._modified import modified_equation
from .._engine._result import ModifiedEquation
from ..optimizers._gda import AbstractGDA

__all__ = ["GameObjectives", "dirac_gan", "modified_objectives"]


def dirac_gan(f=None):
    r"""The Dirac-GAN objective :math:`E(\theta,\psi) = f(\psi\theta) + f(0)` and its players.

    ``f`` is a function of one SymPy argument (default :math:`f(t) = -\log(1 + e^{-t})`,
    the original GAN of Goodfellow et al. 2014). Returns ``(E, [theta, psi])``: the
    generator :math:`\theta` is the min player (listed first, as GDA expects), the
    discriminator :math:`\psi` the max player (Mescheder et al. 2018).

    Example::

        >>> E, (theta, psi) = dirac_gan()
        >>> E
        -log(1 + exp(-psi*theta)) - log(2)
    """
    theta, psi = sp.symbols("theta psi", real=True)
    if f is None:
        def f(t):
            return -sp.log(1 + sp.exp(-t))
    if not callable(f):
        raise SymflowError(f"got f={f!r}; f must be a function of one SymPy argument, "
                           "e.g. lambda t: -sp.log(1 + sp.exp(-t))")
    return to_sympy(f(psi * theta) + f(sp.S.Zero), "f(t)"), [theta, psi]


@dataclasses.dataclass(frozen=True, repr=False)
class GameObjectives(LatexDisplay):
    r"""Both players' modified objectives under GDA, for a generic game :math:`E`.

    ``first[k]`` / ``second[k]`` is :math:`V_{1,k}` / :math:`V_{2,k}` (``first[0] ==
    second[0] == E``), or ``None`` when that player's order-``k`` drift is not the gradient
    of any polynomial in the partial derivatives of :math:`E`. ``E`` is the undefined
    function applied to ``phi + theta``; ``me`` is the engine's modified equation it was
    read from. Use :meth:`objective` for :math:`\tilde E_i` (generic, or for a concrete
    game), :attr:`zero_sum`, :meth:`latex`.
    """

    optimizer: AbstractGDA
    order: int
    E: sp.Expr
    phi: tuple
    theta: tuple
    first: tuple
    second: tuple
    me: object
    #: ``(L1, L2)`` for a general-sum game (each player descends its own loss), else None
    losses: tuple = None

    def _terms(self, player):
        if player not in (1, 2):
            raise SymflowError(f"got player={player!r}; choose 1 (the min player) or 2 "
                               "(the max player)")
        return self.first if player == 1 else self.second

    def objective(self, player: int, loss=None, params=None):
        r""":math:`\tilde E_i = \sum_k h^k V_{i,k}` (``None`` if a term has no objective).

        With ``loss`` and ``params = [*phi, *theta]`` the generic :math:`E` is replaced by
        that concrete game.
        """
        terms = self._terms(player)
        if any(t is None for t in terms):
            return None
        out = sp.Add(*[h**k * t for k, t in enumerate(terms)])
        return out if loss is None else self.concrete(out, loss, params)

    @property
    def general_sum(self) -> bool:
        """True for a pair of losses ``(L1, L2)``: ``first``/``second`` are the players' own
        modified losses, each descended (``phi' = -grad_phi L~1``, ``theta' = -r grad_theta
        L~2``)."""
        return self.losses is not None

    @functools.cached_property
    def zero_sum(self) -> bool:
        r"""True when both players follow one modified objective (the modified game is zero-sum).

        For a pair of losses: when one :math:`W` has :math:`\nabla_\phi W = \nabla_\phi
        \tilde L_1` and :math:`\nabla_\theta W = -\nabla_\theta\tilde L_2` at every kept
        order (each player's loss is known up to what only the other player moves, so the
        test is on the mixed derivatives :math:`\partial_\theta\partial_\phi`).
        """
        if self.general_sum:
            return all(a is not None and b is not None and all(
                is_zero_expr(sp.diff(a, x, y) + sp.diff(b, x, y))
                for x in self.phi for y in self.theta)
                for a, b in zip(self.first, self.second))
        return all(a is not None and b is not None and sp.expand(a - b) == 0
                   for a, b in zip(self.first, self.second))

    def concrete(self, expr, loss, params):
        """``expr`` with the concrete game ``loss`` in ``params = [*phi, *theta]`` for E."""
        check_symbolic(expr=expr, loss=loss, params=params)
        params = check_params(params)
        generic = self.phi + self.theta
        if len(params) != len(generic):
            raise SymflowError(
                f"got {len(params)} parameters {list(params)}; these objectives were derived "
                f"for {len(self.phi)} + {len(self.theta)} parameters (min player first)")
        loss = to_sympy(loss, "loss").xreplace(dict(zip(params, generic)))
        out = to_sympy(expr, "expr").subs(self.E, loss).doit()
        return out.xreplace(dict(zip(generic, params)))

    def _shown(self, t):
        return readable(t, self.phi + self.theta)

    def latex(self) -> str:
        """The two modified objectives as LaTeX (``no local objective`` where there is none)."""
        rows, name = [], "L" if self.general_sum else "E"
        for i in (1, 2):
            parts = []
            for k, t in enumerate(self._terms(i)):
                body = r"\text{(no local objective)}" if t is None else sp.latex(self._shown(t))
                parts.append(body if k == 0 else
                             f"{sp.latex(h**k)} \\left({body}\\right)")
            rows.append(f"\\tilde{{{name}}}_{i} &= " + " + ".join(parts))
        return aligned(rows)

    def _text(self, limit=None) -> str:
        cut = (lambda t: t) if limit is None else (lambda t: shorten(t, limit))
        if self.general_sum:
            roles = (f"player 1 = {list(self.phi)} descends L1 at rate 1, player 2 = "
                     f"{list(self.theta)} descends L2 at rate r")
            names = ((1, "L~1 (player 1's modified loss)"), (2, "L~2 (player 2's modified loss)"))
        else:
            roles = f"phi = {list(self.phi)} descends, theta = {list(self.theta)} ascends"
            names = ((1, "E~1 (min player)"), (2, "E~2 (max player)"))
        lines = [f"Modified objectives of {self.optimizer!r} to order {self.order} ({roles})"]
        for i, name in names:
            lines.append(f"  {name}:")
            for k, t in enumerate(self._terms(i)):
                shown = self._shown(t) if t is not None else "no local objective"
                lines.append(cut(f"    h^{k}: {shown}"))
        zero_sum = computed(self, "zero_sum")
        if zero_sum is not NOT_COMPUTED:
            lines.append(f"  zero-sum modified game: {zero_sum}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self._text(limit=400)

    def __str__(self) -> str:
        return self._text()


# -- the derivation -------------------------------------------------------------------------

def _generic_derivation(optimizer, E, params, order):
    """The engine's modified equation for an undefined function ``E``: ``(algebra, raw, me)``.

    ``sf.modified_equation`` first builds the closed-form map, which SymPy cannot do for
    an undefined ``E`` evaluated at a moved point (alternating GDA); the jet arithmetic
    never needs it, so the same two engine stages (the map's Taylor coefficients in jets,
    then the backward-error recursion) are called directly.
    """
    hypers = optimizer.hyper_symbols
    alg, d = expand_map(optimizer, E, None, params, h, hypers, order + 1, path="jet")
    raw = modified_field(alg, d, order)
    return alg, raw, ModifiedEquation(optimizer, E, params, order, hypers, alg, raw)


def _degrees(alg, monom):
    """``(number of jet factors, number of derivatives)`` of a jet monomial."""
    jets = monom[alg.dim:alg.dim + len(alg.alphas)]
    return sum(jets), sum(e * sum(a) for e, a in zip(jets, alg.alphas))


def _jet_monomials(alg, n_factors, n_derivs):
    """Every product of ``n_factors`` jets :math:`E_\\alpha` with ``n_derivs`` derivatives,
    as ring elements (the loss :math:`E` itself stands for one factor with none)."""
    if (n_factors, n_derivs) == (1, 0):
        return [None]
    usable = [k for k, a in enumerate(alg.alphas) if sum(a) < max(map(sum, alg.alphas))]
    one, out = alg.ring.domain.one, []
    for combo in itertools.combinations_with_replacement(usable, n_factors):
        if sum(sum(alg.alphas[k]) for k in combo) == n_derivs:
            monom = [0] * alg.ngens
            for k in combo:
                monom[alg.dim + k] += 1
            out.append(alg.ring({tuple(monom): one}))
    return out


def _player_potential(alg, vec, directions, scale):
    r"""The expression :math:`V` with ``vec[i] == scale * D_i V`` for ``i`` in ``directions``.

    :math:`D_i` keeps the number of jet factors and adds one derivative, so :math:`V` is
    sought among *all* jet monomials with the field's factor count and one derivative
    fewer (a complete basis for a generic :math:`E`; :math:`D_i` is injective on it). The
    linear system is solved exactly; ``None`` means no such polynomial :math:`V` exists.
    """
    monoms = {m for i in directions for m in vec[i].keys()}
    if not monoms:
        return sp.S.Zero
    basis = [b for nf, nd in sorted({_degrees(alg, m) for m in monoms})
             for b in _jet_monomials(alg, nf, nd - 1)]
    grad = alg.gradient_jets()
    images = [{i: grad[i] if b is None else alg.diff(b, i) for i in directions} for b in basis]
    field, domain = alg.ring.domain.get_field(), alg.ring.domain
    s = field.from_sympy(as_sympy(scale))
    keys = sorted({(i, m) for i in directions for m in vec[i].keys()}
                  | {(i, m) for img in images for i in directions for m in img[i].keys()})
    rows = [[field.convert_from(img[i].get(m, domain.zero), domain) * s for img in images]
            + [field.convert_from(vec[i].get(m, domain.zero), domain)] for i, m in keys]
    rref, pivots = DomainMatrix(rows, (len(rows), len(basis) + 1), field).rref()
    if len(basis) in pivots:
        return None
    sol = rref.to_list()
    return sp.Add(*[field.to_sympy(sol[r][-1])
                    * (alg.loss if basis[col] is None else alg.to_expr(basis[col]))
                    for r, col in enumerate(pivots)])


@functools.lru_cache(maxsize=32)
def _objectives(optimizer, order, n_second):
    n_first = optimizer.n_first
    if optimizer.players is not None:
        phi, theta = optimizer.players
    else:
        def names(base, n):
            return (sp.Symbol(base, real=True),) if n == 1 else \
                sp.symbols(f"{base}1:{n + 1}", real=True)

        phi, theta = names("phi", n_first), names("theta", n_second)
    params = (*phi, *theta)
    E = sp.Function("E")(*params)
    alg, raw, me = _generic_derivation(optimizer, E, params, order)
    first = [_player_potential(alg, vec, range(n_first), -1) for vec in raw]
    second = [_player_potential(alg, vec, range(n_first, len(params)), optimizer.lr_ratio)
              for vec in raw]
    out = GameObjectives(optimizer, order, E, tuple(phi), tuple(theta), tuple(first),
                         tuple(second), me)
    out.zero_sum
    return out


def _own_potential(term, own, scale, loss=None):
    r""":math:`V` with ``term[i] == scale * dV/d own_i`` for the player's own variables, or None.

    The other player's variables are constants here. Order 0 is matched to the player's
    loss by structure; otherwise the block must have a symmetric Jacobian in ``own`` and
    :math:`V` is found variable by variable (:func:`symflow._core._gradient.expr_potential`,
    checked by differentiating back).
    """
    comps = [as_sympy(c) / scale for c in term]
    if all(c == 0 for c in comps):
        return sp.S.Zero
    if loss is not None and all(is_zero_expr(c - sp.diff(loss, p)) for c, p in zip(comps, own)):
        return loss
    if not expr_is_gradient(comps, own):
        return None
    return expr_potential([-c for c in comps], own)


def _pair_objectives(optimizer, order, losses, params):
    """Each player's modified loss of the general-sum game ``losses = (L1, L2)``."""
    if params is None:
        raise SymflowError("losses=(L1, L2) needs params=[*phi, *theta] (min-first player's "
                           "symbols first)")
    me = modified_equation(optimizer, tuple(losses), params, order)
    n, r = optimizer.n_first, optimizer.lr_ratio
    params = me.params
    phi, theta = params[:n], params[n:]
    l1, l2 = (v.check_loss(loss, params, me.hyper) for loss in losses)
    first = [_own_potential(t[:n], phi, -1, l1 if k == 0 else None)
             for k, t in enumerate(me.terms)]
    second = [_own_potential(t[n:], theta, -r, l2 if k == 0 else None)
              for k, t in enumerate(me.terms)]
    out = GameObjectives(optimizer, order, None, tuple(phi), tuple(theta), tuple(first),
                         tuple(second), me, (l1, l2))
    out.zero_sum
    return out


def modified_objectives(optimizer, order=1, n_second=None, losses=None,
                        params=None) -> GameObjectives:
    r"""Each player's modified objective under GDA, derived with the engine for a generic E.

    Parameters
    ----------
    optimizer : SimultaneousGDA or AlternatingGDA
        Knows the split (``n_first`` or ``players``) and the learning-rate ratio ``r``.
    order : int
        Highest power of :math:`h` (order 4 takes about a second for one parameter per
        player; vector players cost more).
    n_second : int
        Number of max-player parameters when the optimizer was built with ``n_first``
        (default 1; ignored with ``players``).
    losses, params : (sympy.Expr, sympy.Expr), sequence of Symbol
        A general-sum game instead: player 1 (:math:`\phi`, the first ``n_first`` of
        ``params``) descends :math:`L_1` with step :math:`h`, player 2 descends :math:`L_2`
        with step :math:`rh`. Then ``first[k]``/``second[k]`` are each player's own modified
        loss, :math:`\dot\phi = -\nabla_\phi\tilde L_1` and :math:`\dot\theta =
        -r\nabla_\theta\tilde L_2` (``None`` where the player's block is not a gradient in
        its own variables). The zero-sum game is ``losses=(E, -E)``.

    Examples
    --------
    Example (Rosca et al. 2021, zero-sum, simultaneous, :math:`r = 2`)::

        >>> import sympy as sp, symflow as sf
        >>> obj = sf.modified_objectives(sf.SimultaneousGDA(n_first=1, lr_ratio=2), order=1)
        >>> (phi,), (theta,), E = obj.phi, obj.theta, obj.E
        >>> sp.expand(obj.first[1] - (E.diff(phi)**2 / 4 - 2 * E.diff(theta)**2 / 4))
        0
        >>> obj.zero_sum
        True

    A general-sum game (Rosca et al. 2021, Sec. 3): simultaneous GDA on
    :math:`L_1 = \phi^2\theta`, :math:`L_2 = \theta^2/2 + \phi\theta`::

        >>> p, q = sp.symbols("p q")
        >>> g = sf.modified_objectives(sf.SimultaneousGDA(n_first=1), 1,
        ...                            losses=(p**2 * q, q**2 / 2 + p * q), params=[p, q])
        >>> sp.expand(g.first[1]), sp.expand(g.second[1])  # phi' = -d/dp L~1, theta' = -d/dq L~2
        (p**3/3 + p**2*q**2 + p**2*q/2, p*q**2/2 + p*q/2 + q**2/4)
    """
    if losses is not None:
        if not isinstance(optimizer, AbstractGDA):
            raise SymflowError(f"got optimizer={optimizer!r}; a game needs sf.SimultaneousGDA "
                               "or sf.AlternatingGDA")
        return _pair_objectives(optimizer, check_order(order), losses, params)
    if not isinstance(optimizer, AbstractGDA):
        raise SymflowError(
            f"got optimizer={optimizer!r}; a two-player game needs a game optimizer that "
            "knows the split into a min and a max player, e.g. sf.SimultaneousGDA(n_first=1) "
            "or sf.AlternatingGDA(n_first=1)")
    order = check_order(order)
    if optimizer.players is not None:
        n_second = len(optimizer.players[1])
    elif n_second is None:
        n_second = 1
    if isinstance(n_second, bool) or not isinstance(n_second, int) or n_second < 1:
        raise SymflowError(f"got n_second={n_second!r}; the max player needs at least one "
                           "parameter (a positive integer)")
    return _objectives(optimizer, order, n_second)
