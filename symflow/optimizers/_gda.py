r"""Gradient descent-ascent (GDA) on a two-player zero-sum game :math:`\min_\phi\max_\theta E`.

The parameters are split into two players: the first ``n_first`` (:math:`\phi`, the *min*
player, learning rate :math:`h`) descend :math:`E`, the others (:math:`\theta`, the *max*
player, learning rate :math:`r h`, ``lr_ratio`` :math:`r`) ascend it. In the notation of
Rosca et al. (2021), learning rates :math:`\alpha h` and :math:`\lambda h`, this is
:math:`\alpha = 1`, :math:`\lambda = r` (rescale :math:`h` for another :math:`\alpha`).

The game reaches the engine as one loss ``E`` and one parameter list ``[*phi, *theta]``:
the gradient oracle returns :math:`\nabla E = (\nabla_\phi E, \nabla_\theta E)` and the
update applies opposite signs to the two blocks, so :func:`symflow.modified_equation`
(any order) and ``solvers.verify_order`` work on GDA as on any other optimizer. The
exact flow of the game is :math:`\dot z = -S\,\nabla E(z)` with
:math:`S = \mathrm{diag}(1,\dots,1,-r,\dots,-r)` (:meth:`AbstractGDA.scaling`).

*General-sum games.* Two players with their own losses :math:`L_1(\phi,\theta)` and
:math:`L_2(\phi,\theta)`, each descending its own: pass ``loss=(L1, L2)``. The oracle then
returns :math:`(\nabla_\phi L_1, -\nabla_\theta L_2)` (:meth:`AbstractGDA.pair_field`),
so the same update rules give :math:`\phi - h\nabla_\phi L_1` and
:math:`\theta - rh\nabla_\theta L_2`; the zero-sum game is :math:`(L_1, L_2) = (E, -E)`.

References: Mescheder, Geiger & Nowozin, *Which training methods for GANs do actually
converge?*, ICML 2018; Rosca, Wu, Dherin & Barrett, *Discretization drift in two-player
games*, ICML 2021.
"""

from __future__ import annotations

import numbers

import sympy as sp

from .._core._errors import SymflowError
from .._core._guard import as_sympy
from ._base import AbstractOptimizer, check_positive


def _check_players(n_first, players):
    """Normalise the split into ``(n_first, (phi, theta) or None)``."""
    if players is None:
        if n_first is None:
            raise SymflowError(
                "no split of the parameters into two players; pass n_first (how many of the "
                "parameters, in order, belong to the first, min player) or players=(phi, theta)")
        if isinstance(n_first, bool) or not isinstance(n_first, numbers.Integral) or n_first < 1:
            raise SymflowError(
                f"got n_first={n_first!r}; n_first must be a positive integer: the number of "
                "parameters of the first (min) player, the rest belonging to the second (max)")
        return int(n_first), None
    if n_first is not None:
        raise SymflowError(
            f"got both n_first={n_first!r} and players=...; give one of them: the number "
            "of parameters of the first (min) player, or the two lists of symbols")
    if (isinstance(players, (str, sp.Basic)) or not hasattr(players, "__len__")
            or len(players) != 2):
        raise SymflowError(
            f"got players={players!r}; a two-player game needs players=(phi, theta): two "
            "lists of SymPy symbols, the min player's and the max player's")
    groups = []
    for name, group in zip(("first (min)", "second (max)"), players):
        group = (group,) if isinstance(group, sp.Symbol) else tuple(group)
        if not group:
            raise SymflowError(
                f"the {name} player has no parameters (got players={players!r}); a game "
                "needs two players, each with at least one parameter")
        for s in group:
            if not isinstance(s, sp.Symbol):
                raise SymflowError(f"got {s!r} ({type(s).__name__}) in players; the players' "
                                   "parameters must be SymPy symbols")
        groups.append(group)
    both = groups[0] + groups[1]
    if len(set(both)) != len(both):
        raise SymflowError(f"got players={players!r}; a parameter belongs to exactly one player")
    return len(groups[0]), (groups[0], groups[1])


class AbstractGDA(AbstractOptimizer):
    r"""What :class:`SimultaneousGDA` and :class:`AlternatingGDA` share: the split and :math:`r`.

    Parameters
    ----------
    n_first : int
        The first ``n_first`` parameters are the min player :math:`\phi`, the others the
        max player :math:`\theta`.
    lr_ratio : number or sympy.Symbol
        :math:`r > 0`, the max player's learning rate divided by the min player's.
    players : (sequence of Symbol, sequence of Symbol)
        Instead of ``n_first``: the two players' symbols; the parameters given to the
        engine must then be exactly ``[*phi, *theta]``, in this order (checked).
    """

    #: Human-readable name for tables and figures.
    title = "GDA"

    def __init__(self, n_first=None, lr_ratio=1, players=None):
        self.n_first, self.players = _check_players(n_first, players)
        self.lr_ratio = check_positive(lr_ratio, "lr_ratio")

    def hyperparameters(self) -> dict:
        return {"n_first": self.n_first, "lr_ratio": self.lr_ratio}

    def _key(self):
        return super()._key() + (self.players,)

    def split(self, z):
        """The ``(phi, theta)`` blocks of a column ``z``, after checking that both are non-empty."""
        n, dim = self.n_first, len(z)
        if dim <= n:
            raise SymflowError(
                f"{self!r} needs two players, but got {dim} parameter(s) with n_first={n}: the "
                "second (max) player would have none. Pass params=[*phi, *theta] with both "
                "players' symbols, or a smaller n_first")
        if self.players is not None and all(isinstance(c, sp.Symbol) for c in z):
            expected = list(self.players[0] + self.players[1])
            if list(z) != expected:
                raise SymflowError(
                    f"got params={list(z)}, but this optimizer was built with players "
                    f"{list(self.players[0])} (min) and {list(self.players[1])} (max); pass "
                    f"params={expected}")
        return z[:n, :], z[n:, :]

    def pair_field(self, losses, params) -> sp.Matrix:
        r"""The field :math:`F = (-\nabla_\phi L_1,\ \nabla_\theta L_2)` of a general-sum game.

        With it the oracle returns :math:`-F`, and the update rules (which scale the max
        player's block by :math:`-r`) step :math:`\phi - h\nabla_\phi L_1` and
        :math:`\theta - rh\nabla_\theta L_2`: each player descends its own loss. The exact
        flow is :math:`\dot\phi = f`, :math:`\dot\theta = r g` with
        :math:`f = -\nabla_\phi L_1`, :math:`g = -\nabla_\theta L_2`.

        >>> import sympy as sp
        >>> p, q = sp.symbols("phi theta")
        >>> SimultaneousGDA(n_first=1).pair_field((p * q, -p * q), [p, q]).T  # zero-sum E = pq
        Matrix([[-theta, -phi]])
        """
        if isinstance(losses, str) or not hasattr(losses, "__len__") or len(losses) != 2:
            raise SymflowError(
                f"got loss={losses!r}; a general-sum game takes loss=(L1, L2), the min-first "
                "player's loss and the second player's, each a SymPy expression")
        for k, loss in enumerate(losses, 1):
            if isinstance(loss, str) or not isinstance(loss, (sp.Expr, numbers.Number)):
                raise SymflowError(
                    f"got L{k}={loss!r} ({type(loss).__name__}); each loss of loss=(L1, L2) "
                    "must be a SymPy expression (parse strings with sf.parse_expression)")
        z = sp.Matrix(params)
        phi, theta = self.split(z)
        l1, l2 = (as_sympy(loss) for loss in losses)
        return sp.Matrix([-sp.diff(l1, p) for p in phi] + [sp.diff(l2, q) for q in theta])

    def scaling(self, dim: int) -> sp.Matrix:
        r""":math:`S = \mathrm{diag}(1,\dots,1,-r,\dots,-r)`: the game's flow is :math:`\dot z = -S\nabla E`."""
        self.split(sp.zeros(dim, 1))
        return sp.diag(*([1] * self.n_first + [-self.lr_ratio] * (dim - self.n_first)))

    @property
    def label(self) -> str:
        ratio = "" if self.lr_ratio == 1 else f", r={self.lr_ratio}"
        return f"{self.title}{ratio}"

    def __repr__(self) -> str:
        split = (f"players=({list(self.players[0])}, {list(self.players[1])})"
                 if self.players is not None else f"n_first={self.n_first}")
        return f"{type(self).__name__}({split}, lr_ratio={self.lr_ratio})"


class SimultaneousGDA(AbstractGDA):
    r"""Simultaneous gradient descent-ascent: both players step from the same point.

    .. math::

        \phi_{n+1} = \phi_n - h\,\nabla_\phi E(\phi_n, \theta_n), \qquad
        \theta_{n+1} = \theta_n + r h\,\nabla_\theta E(\phi_n, \theta_n),

    i.e. :math:`z_{n+1} = z_n - h S\nabla E(z_n)`, explicit Euler on the game's flow. To
    first order in :math:`h` both players follow the gradients of one modified game,
    :math:`\tilde E = E + \tfrac{h}{4}\lVert\nabla_\phi E\rVert^2 - \tfrac{rh}{4}
    \lVert\nabla_\theta E\rVert^2` (Rosca et al. 2021; derived by
    :func:`symflow.modified_objectives`). On a bilinear game the :math:`h` term turns the
    rotation of the exact flow into an outward spiral (Mescheder et al. 2018).

    Example::

        >>> import sympy as sp, symflow as sf
        >>> p, q = sp.symbols("phi theta")
        >>> me = sf.modified_equation(sf.SimultaneousGDA(n_first=1), p * q, [p, q], order=1)
        >>> me.terms[0].T, me.terms[1].T  # a rotation, plus an outward h/2 * (phi, theta)
        (Matrix([[-theta, phi]]), Matrix([[phi/2, theta/2]]))
    """

    name = "sim-gda"
    title = "simultaneous GDA"

    def step(self, theta, grad, h):
        self.split(theta)
        return theta - h * self.scaling(len(theta)) * grad(theta)


class AlternatingGDA(AbstractGDA):
    r"""Alternating gradient descent-ascent: one player moves, then the other sees that move.

    With ``first_mover="min"`` (default)

    .. math::

        \phi_{n+1} = \phi_n - h\,\nabla_\phi E(\phi_n, \theta_n), \qquad
        \theta_{n+1} = \theta_n + r h\,\nabla_\theta E(\phi_{n+1}, \theta_n);

    with ``first_mover="max"`` the max player :math:`\theta` moves first and :math:`\phi`
    answers at :math:`\theta_{n+1}`. On a bilinear game the step's Jacobian has determinant
    one, so the modified flows keep the rotation (purely imaginary eigenvalues at the
    equilibrium) instead of spiralling out (Mescheder et al. 2018; Rosca et al. 2021).

    Example::

        >>> import sympy as sp, symflow as sf
        >>> p, q = sp.symbols("phi theta")
        >>> me = sf.modified_equation(sf.AlternatingGDA(n_first=1), p * q, [p, q], order=1)
        >>> me.terms[1].T  # trace-free: no spiral at order 1
        Matrix([[phi/2, -theta/2]])
    """

    name = "alt-gda"
    title = "alternating GDA"

    def __init__(self, n_first=None, lr_ratio=1, players=None, first_mover="min"):
        super().__init__(n_first, lr_ratio, players)
        if first_mover not in ("min", "max"):
            raise SymflowError(
                f"got first_mover={first_mover!r}; choose 'min' (the first, descending player "
                "moves first) or 'max'")
        self.first_mover = first_mover

    def _key(self):
        return super()._key() + (self.first_mover,)

    def step(self, theta, grad, h):
        phi, th = self.split(theta)
        n, r = self.n_first, self.lr_ratio
        if self.first_mover == "min":
            phi = phi - h * grad(theta)[:n, :]
            th = th + r * h * grad(sp.Matrix.vstack(phi, th))[n:, :]
        else:
            th = th + r * h * grad(theta)[n:, :]
            phi = phi - h * grad(sp.Matrix.vstack(phi, th))[:n, :]
        return sp.Matrix.vstack(phi, th)

    @property
    def label(self) -> str:
        return super().label + (", max first" if self.first_mover == "max" else "")

    def __repr__(self) -> str:
        extra = ", first_mover='max'" if self.first_mover == "max" else ""
        return super().__repr__()[:-1] + extra + ")"
