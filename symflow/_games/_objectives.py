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

from .._core._errors import SymflowError
from .._core._latex import LatexDisplay, aligned
from .._core._symbols import h
from .._core._validate import check_order, check_params
from .._engine._algebra import expand_map
from .._engine._bea import modified_field
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
    return sp.sympify(f(psi * theta) + f(sp.S.Zero)), [theta, psi]


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
    def zero_sum(self) -> bool:
        """True when both players follow one modified objective (the modified game is zero-sum)."""
        return all(a is not None and b is not None and sp.expand(a - b) == 0
                   for a, b in zip(self.first, self.second))

    def concrete(self, expr, loss, params):
        """``expr`` with the concrete game ``loss`` in ``params = [*phi, *theta]`` for E."""
        params = check_params(params)
        generic = self.phi + self.theta
        if len(params) != len(generic):
            raise SymflowError(
                f"got {len(params)} parameters {list(params)}; these objectives were derived "
                f"for {len(self.phi)} + {len(self.theta)} parameters (min player first)")
        loss = sp.sympify(loss).xreplace(dict(zip(params, generic)))
        out = sp.sympify(expr).subs(self.E, loss).doit()
        return out.xreplace(dict(zip(generic, params)))

    def latex(self) -> str:
        """The two modified objectives as LaTeX (``no local objective`` where there is none)."""
        rows = []
        for i in (1, 2):
            parts = []
            for k, t in enumerate(self._terms(i)):
                body = r"\text{(no local objective)}" if t is None else sp.latex(t)
                parts.append(body if k == 0 else
                             f"{sp.latex(h**k)} \\left({body}\\right)")
            rows.append(f"\\tilde{{E}}_{i} &= " + " + ".join(parts))
        return aligned(rows)

    def __repr__(self) -> str:
        return (f"<GameObjectives {self.optimizer!r} order={self.order} "
                f"zero_sum={self.zero_sum}>")

    def __str__(self) -> str:
        lines = [f"Modified objectives of {self.optimizer!r} to order {self.order} "
                 f"(phi = {list(self.phi)} descends, theta = {list(self.theta)} ascends)"]
        for i, name in ((1, "E~1 (min player)"), (2, "E~2 (max player)")):
            lines.append(f"  {name}:")
            for k, t in enumerate(self._terms(i)):
                lines.append(f"    h^{k}: {t if t is not None else 'no local objective'}")
        lines.append(f"  zero-sum modified game: {self.zero_sum}")
        return "\n".join(lines)


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
    s = field.from_sympy(sp.sympify(scale))
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
    return GameObjectives(optimizer, order, E, tuple(phi), tuple(theta), tuple(first),
                          tuple(second), me)


def modified_objectives(optimizer, order=1, n_second=None) -> GameObjectives:
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

    Example (Rosca et al. 2021, zero-sum, simultaneous, :math:`r = 2`)::

        >>> import sympy as sp, symflow as sf
        >>> obj = sf.modified_objectives(sf.SimultaneousGDA(n_first=1, lr_ratio=2), order=1)
        >>> (phi,), (theta,), E = obj.phi, obj.theta, obj.E
        >>> sp.expand(obj.first[1] - (E.diff(phi)**2 / 4 - 2 * E.diff(theta)**2 / 4))
        0
        >>> obj.zero_sum
        True
    """
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
