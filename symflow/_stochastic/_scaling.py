r"""Scaling rules: how to change the hyperparameters with the batch size so that the SDE stays.

When the batch size goes from :math:`B` to :math:`\kappa B`, the minibatch noise factor
:math:`c_{N,B}` changes and with it the stochastic modified equation. A *scaling rule* maps
the learning rate and the other hyperparameters so that the SDE (drift and diffusion
matrix, in its own time) is exactly the same. :func:`scaling_rule` derives the SME with a
symbolic batch size (:func:`symflow.sme`), substitutes :math:`B \to \kappa B` and unknown new
values for :math:`h` and the hyperparameter symbols, and *solves* the equations
"new coefficient = old coefficient" with SymPy (sampled at exact rational states, then the
solution is checked exactly on the symbolic SDE). Known answers it reproduces:

* SGD, :math:`d\Theta = -\nabla L\,dt + \sqrt{h/B}\,\Sigma_1^{1/2}dW`: the linear rule
  :math:`h \to \kappa h` (Goyal et al. 2017; Li, Tai & E 2019; Jastrzębski et al. 2017);
* RMSprop and Adam in Malladi, Lyu, Panigrahi & Arora's scaling (NeurIPS 2022,
  Definition 4.3): the square-root rule :math:`h \to \sqrt\kappa h`,
  :math:`1-\beta \to \kappa(1-\beta)`, :math:`\epsilon \to \epsilon/\sqrt\kappa`.
"""

from __future__ import annotations

import random

import sympy as sp

from .._core._errors import SymflowError
from .._core._guard import as_sympy
from .._core._latex import LatexDisplay, aligned
from .._core._symbols import h
from ..optimizers import SGD, AbstractOptimizer
from ._sde import _entries_equal
from ._sme import sme

#: The batch-size factor :math:`\kappa`.
kappa = sp.Symbol("kappa", positive=True)
#: The symbolic batch size used in the derivation.
B = sp.Symbol("B", positive=True, integer=True)


class ScalingRule(LatexDisplay):
    r"""A hyperparameter map under :math:`B \to \kappa B` that leaves an SDE unchanged.

    Attributes
    ----------
    mapping : dict
        ``{symbol: new value}`` for ``sf.h`` and the hyperparameter symbols, in terms of
        the old ones and :data:`kappa`.
    changes : dict
        ``{hyperparameter text: new value text}``, e.g. ``{"1 - beta2": "kappa*(1 - beta2)"}``.
    conditions : tuple of str
        When the rule holds.
    sde, scaled
        The SDE at batch size :math:`B`, and the one at :math:`\kappa B` with the rule
        applied (equal to ``sde`` entry by entry).
    """

    def __init__(self, optimizer, mapping, changes, conditions, sde, scaled):
        self.optimizer, self.mapping = optimizer, dict(mapping)
        self._changes = tuple(changes)  # (lhs, rhs) expressions
        self.changes = {str(lhs): str(rhs) for lhs, rhs in self._changes}
        self.conditions, self.sde, self.scaled = tuple(conditions), sde, scaled

    def latex(self) -> str:
        rows = [f"{sp.latex(lhs)} &\\to {sp.latex(rhs)}" for lhs, rhs in self._changes]
        return aligned(["B &\\to \\kappa B"] + rows)

    def __str__(self) -> str:
        lines = [f"Scaling rule for {self.optimizer.label} when B -> kappa*B "
                 "(leaves the SDE unchanged):"]
        lines += [f"  {k} -> {v}" for k, v in self.changes.items()]
        lines.append("  holds when:")
        lines += [f"    - {c}" for c in self.conditions]
        return "\n".join(lines)

    def __repr__(self) -> str:
        body = ", ".join(f"{k} -> {v}" for k, v in self.changes.items())
        return f"<ScalingRule {self.optimizer.label}: {body}>"


def _with_batch(optimizer, replacement):
    if isinstance(optimizer, SGD):
        return SGD(batch_size=B, replacement=optimizer.replacement), {}
    return optimizer, {"batch_size": B, "replacement": replacement}


def _sample_points(symbols, count=3):
    rng = random.Random(3)
    return [{s: sp.Rational(rng.randint(11, 97), rng.randint(23, 61)) for s in symbols}
            for _ in range(count)]


def _change(name, old, new):
    """How a hyperparameter moves, as ``(lhs, rhs)`` expressions: ``name -> r*name`` when
    the ratio depends on kappa only, ``1 - name -> r*(1 - name)`` likewise, else the new
    value; None when it does not move."""
    old, new = as_sympy(old), as_sympy(new)
    if sp.simplify(new - old) == 0:
        return None
    symbol = sp.Symbol(name)
    ratio = sp.simplify(new / old)
    if ratio.free_symbols <= {kappa}:
        return symbol, ratio * symbol
    gap = sp.simplify((1 - new) / (1 - old))
    if gap.free_symbols <= {kappa}:
        return 1 - symbol, sp.Mul(gap, 1 - symbol, evaluate=False)
    return symbol, new


def scaling_rule(optimizer, losses=None, params=None, dataset=None, replacement=True,
                 hyper=(), order: int = 1) -> ScalingRule:
    r"""Solve for the hyperparameter map under :math:`B \to \kappa B` that keeps the SDE.

    The optimizer's hyperparameters should be symbols (or expressions in symbols and
    ``sf.h``, e.g. Malladi et al.'s ``beta2 = 1 - c2*sf.h**2``): those symbols and ``sf.h``
    are the unknowns. The training set is any one (the rule must hold for it; a generic
    one with full-rank gradient noise gives the general rule).

    Example::

        >>> import sympy as sp, symflow as sf
        >>> w = sp.Symbol("w")
        >>> rule = sf.scaling_rule(sf.SGD(batch_size=1), losses=[w**2, 3*w**2 + w, w**4],
        ...                        params=[w])
        >>> rule.mapping[sf.h]
        h*kappa
        >>> print(rule)                                       # doctest: +NORMALIZE_WHITESPACE
        Scaling rule for SGD(B=B) when B -> kappa*B (leaves the SDE unchanged):
          h -> h*kappa
          holds when:
            - for the SME of order 1 (weak order 1 in h)
            - minibatches drawn with replacement
            - the order-2 SME is not kept: its O(h) drift changes under this rule
    """
    if isinstance(optimizer, type) or not isinstance(optimizer, AbstractOptimizer):
        raise SymflowError(f"got optimizer={optimizer!r}; pass an instance such as "
                           "sf.SGD(batch_size=1) or sf.Adam(beta1=..., beta2=..., eps=...)")
    opt, extra = _with_batch(optimizer, replacement)
    sde = sme(opt, losses=losses, params=params, dataset=dataset, order=order, hyper=hyper,
              **extra)
    unknown = sorted(({h} | set(opt.hyper_symbols)) - {B}, key=str)
    unknown = [s for s in unknown if s in sde.constants]
    new = {s: sp.Dummy(f"{s}_new", positive=True) for s in unknown}
    scaled = sde.subs({B: kappa * B, **new}) if unknown else sde.subs({B: kappa * B})
    equations = set()
    points = _sample_points(sde.params)
    for mat_old, mat_new in ((sde.drift, scaled.drift), (sde.covariance, scaled.covariance)):
        for a, b in zip(mat_old, mat_new):
            diff = b - a
            if diff == 0:
                continue
            for pt in points:
                eq = sp.together(diff.xreplace(pt))
                num = sp.numer(eq)
                if num != 0:
                    equations.add(sp.expand(num))
    unknowns = [new[s] for s in unknown]
    if not equations:
        solution = {}
    else:
        found = sp.solve(list(equations), unknowns, dict=True)
        found = [f for f in found if all(_positive(v) for v in f.values())]
        if not found:
            raise SymflowError(
                f"no change of {[str(s) for s in unknown]} keeps the SDE of {opt.label} "
                "unchanged when B -> kappa*B (the equations new = old have no positive "
                "solution)")
        solution = found[0]
    mapping = {s: sp.simplify(solution.get(new[s], new[s])) for s in unknown}
    applied = scaled.subs({new[s]: v for s, v in mapping.items()
                           if not v.has(*new.values())}) if mapping else scaled
    if not (_entries_equal(applied.drift, sde.drift)
            and _entries_equal(applied.covariance, sde.covariance)):
        raise SymflowError(f"internal: the rule {mapping} does not leave the SDE of "
                           f"{opt.label} unchanged")
    back = {d: s for s, d in new.items()}
    mapping = {s: v.xreplace(back) for s, v in mapping.items()}
    changes = []
    if h in mapping:
        changes.append((h, mapping[h]))
    for name, value in opt.hyperparameters().items():
        if name in ("batch_size", "replacement"):
            continue
        value = as_sympy(value)
        moved = _change(name, value, value.xreplace(mapping))
        if moved:
            changes.append(moved)
    conditions = [f"for the SME of order {order} (weak order {order} in h)",
                  "minibatches drawn with replacement" if (
                      opt.replacement if isinstance(opt, SGD) else replacement) else
                  "minibatches drawn without replacement, kappa*B <= N"]
    if "Malladi" in sde.name:
        conditions.append("in Malladi et al.'s scaling: 1 - beta = c*h**2, eps = eps0/h, "
                          "sigma_0 = h*sqrt(c_NB) fixed")
    if order == 1 and not opt.memory_size(len(sde.params)) and mapping:
        try:
            sde2 = sme(opt, losses=losses, params=params, dataset=dataset, order=2,
                       hyper=hyper, **extra)
            moved = sde2.subs({B: kappa * B, **mapping})
            kept = _entries_equal(moved.drift, sde2.drift)
        except SymflowError:
            kept = None
        if kept is False:
            conditions.append("the order-2 SME is not kept: its O(h) drift changes under "
                              "this rule")
        elif kept:
            conditions.append("the order-2 SME is kept as well")
    return ScalingRule(opt, mapping, changes, conditions, sde, applied)


def _positive(value) -> bool:
    pts = _sample_points(value.free_symbols, 2)
    try:
        return all(complex(value.xreplace(p).evalf()).real > 0 and
                   abs(complex(value.xreplace(p).evalf()).imag) < 1e-12 for p in pts)
    except (TypeError, ValueError):
        return False


__all__ = ["B", "ScalingRule", "kappa", "scaling_rule"]
