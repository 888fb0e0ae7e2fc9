r"""General-sum two-player games: ``loss=(L1, L2)`` for gradient descent-ascent.

Each player descends its own loss, :math:`\phi` with step :math:`h` on :math:`L_1` and
:math:`\theta` with step :math:`rh` on :math:`L_2` (Rosca, Wu, Dherin & Barrett,
*Discretization drift in two-player games*, ICML 2021, Sec. 3). The pair enters the engine
as the field :math:`F = (f, g)`, :math:`f = -\nabla_\phi L_1`, :math:`g = -\nabla_\theta
L_2` (:meth:`symflow.AbstractGDA.pair_field`), so backward error analysis runs unchanged
(:mod:`symflow._engine._field`). To first order it gives

.. math::

    \dot\phi = f - \tfrac h2\,(f_\phi f + r f_\theta g), \qquad
    \dot\theta = r g - \tfrac{rh}2\,(g_\phi f + r g_\theta g) \quad\text{(simultaneous)},

and :math:`\dot\theta = r g - \tfrac{rh}2\,(r g_\theta g - g_\phi f)` when :math:`\phi`
moves first (alternating). The zero-sum game is :math:`(L_1, L_2) = (E, -E)`.
"""

from __future__ import annotations

from .._core import _validate as v
from .._core._errors import SymflowError
from ..optimizers._gda import AbstractGDA
from ._field import field_modified_equation


def is_loss_pair(optimizer, loss) -> bool:
    """True when ``loss`` is a pair of losses given to a game optimizer."""
    return isinstance(optimizer, AbstractGDA) and isinstance(loss, (tuple, list))


def game_pair_equation(optimizer, losses, params, order, hyper=(), progress=None,
                       path="auto", reduce=True):
    r"""The modified equation of GDA on the general-sum game ``losses = (L1, L2)``.

    Returns the engine's :class:`~symflow._engine._field_result.FieldModifiedEquation` of
    the field :math:`F = (-\nabla_\phi L_1, \nabla_\theta L_2)`; ``terms[k]`` stacks both
    players' order-:math:`k` drifts (min player first). Each player's modified loss is
    :func:`symflow.modified_objectives` with ``losses=``.

    >>> import sympy as sp, symflow as sf
    >>> p, q = sp.symbols("phi theta")
    >>> me = sf.modified_equation(sf.SimultaneousGDA(n_first=1), (p * q, -p * q), [p, q], 1)
    >>> me.terms[1].T  # the zero-sum Dirac-like game: the outward h/2 * (phi, theta)
    Matrix([[phi/2, theta/2]])
    """
    if params is None or order is None:
        raise SymflowError("a general-sum game loss=(L1, L2) needs params=[*phi, *theta] and "
                           "order=k")
    params = v.check_params(params)
    allowed = v.check_symbols(hyper, "hyper", params) | v.check_constant_hyper(optimizer, params)
    optimizer.pair_field(losses, params)  # the shape of the pair, before checking each loss
    checked = [v.check_loss(loss, params, allowed) for loss in losses]
    field = optimizer.pair_field(checked, params)
    return field_modified_equation(optimizer, None, params, order, field=field, hyper=hyper,
                                   progress=progress, path=path, reduce=reduce)
