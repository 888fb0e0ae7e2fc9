r"""When can a modified equation be trusted?

The modified-equation series is asymptotic. For gradient descent on a quadratic with
Hessian eigenvalue :math:`\lambda` the exact modified field is
:math:`\frac{\log(1 - h\lambda)}{h}\,\theta`, whose series in :math:`h` converges only for
:math:`|h\lambda| < 1`; near that edge truncations are poor, and beyond
:math:`h\lambda = 2` the iteration itself diverges. The local quantity to watch is
therefore :math:`h\,\max_i|\lambda_i(\nabla^2 L(\theta))|`.

Every optimizer states its own two limits (:meth:`~symflow.AbstractOptimizer.linear_limits`):
the *stability edge* of the iteration (heavy ball: :math:`h\lambda < 2(1+\beta)`) and the
*radius* of its reduced series (heavy ball: :math:`h\lambda < (1-\sqrt\beta)^2`, where the
two roots of its characteristic polynomial collide). Adaptive methods measure
:math:`\lambda` on the preconditioned Hessian :math:`P^{-1/2}\nabla^2 L\,P^{-1/2}`
(Cohen et al., *Adaptive gradient methods at the edge of stability*, 2022).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import sympy as sp

from .._core import _validate as v
from .._core._errors import SymflowError, ValidityWarning
from .._core._guard import as_sympy
from .._core._symbols import h
from .._core._table import Table, TableDisplay
from ..optimizers import GD

#: Below this fraction of the series radius h*|lambda|_max is trusted without comment.
SAFE = 0.5


@dataclasses.dataclass(frozen=True, repr=False)
class ValidityReport(TableDisplay):
    """Result of :func:`check_validity`."""

    lr: float
    point: tuple
    eigenvalues: tuple
    h_lambda_max: float
    trusted: bool
    message: str
    #: The optimizer's stability edge and series radius for h*lambda (None: unknown).
    edge: float | None = 2.0
    radius: float | None = 1.0

    def _table(self) -> Table:
        def num(v):
            return "unknown" if v is None else f"{v:.4g}"

        rows = [["learning rate h", f"{self.lr:g}"], ["point", f"{self.point}"],
                ["h*|lambda|_max", f"{self.h_lambda_max:.4g}"],
                ["stability edge (h*lambda)", num(self.edge)],
                ["series radius (h*lambda)", num(self.radius)],
                ["trusted", "yes" if self.trusted else "no"]]
        return Table(["quantity", "value"], rows, "validity of the modified equation",
                     [self.message])

    def __str__(self) -> str:
        return f"h*|lambda|_max = {self.h_lambda_max:.4g} at {self.point}: {self.message}"


def _by_name(expr, values):
    """``expr`` with its symbols replaced by the numbers in ``values`` (keyed by name)."""
    expr = as_sympy(expr)
    return expr.xreplace({s: values.get(s.name, s) for s in expr.free_symbols})


def _limits(optimizer, values):
    """``(name, edge, radius, edge_text, radius_text)`` with numbers for the limits."""
    name = "GD" if optimizer is None else optimizer.label
    edge, radius = (None, None) if optimizer is None else optimizer.linear_limits()
    if edge is None and radius is None:
        edge, radius = GD().linear_limits()
        if optimizer is not None:
            name += " (limits unknown: GD's are used)"

    formulas = getattr(optimizer, "limits_text", (None, None))

    def number(expr, formula):
        if expr is None:
            return None, None
        expr = as_sympy(expr)
        value = _by_name(expr, values).subs(h, values["h"]).evalf()
        if value.free_symbols:
            missing = ", ".join(sorted(map(str, value.free_symbols)))
            raise SymflowError(f"the limits of {name} depend on {{{missing}}}; give their "
                               "numbers in hyper_values")
        number_ = float(value)
        formula = formula or (str(expr) if expr.free_symbols else None)
        text = f"{number_:.4g}" if formula in (None, f"{number_:g}") else \
            f"{formula} = {number_:.4g}"
        return number_, text

    (edge, edge_text), (radius, radius_text) = (number(edge, formulas[0]),
                                                number(radius, formulas[1]))
    return name, edge, radius, edge_text, radius_text


def check_validity(loss, params, point, lr, hyper_values=None, warn: bool = True,
                   optimizer=None, series: bool = True):
    r"""Report :math:`h\max|\lambda(\nabla^2 L)|` at ``point`` and warn when it is too large.

    ``optimizer`` (default: gradient descent) sets the limits: its stability edge and the
    radius of its reduced series (:meth:`~symflow.AbstractOptimizer.linear_limits`), and,
    for adaptive methods, the preconditioner. For a two-player game (gradient
    descent-ascent) :math:`\lambda` runs over the eigenvalues of the game Jacobian
    :math:`S\nabla^2 E`, complex in general (the rotation of the Dirac-GAN); their moduli
    are compared with the limits. ``series=False`` checks the stability edge
    only (for flows on the whole state). ``hyper_values`` gives numbers for the symbols of
    the loss and of the optimizer's hyperparameters.

    Example::

        >>> import sympy as sp, symflow as sf
        >>> x = sp.Symbol("x")
        >>> sf.check_validity(5 * x**2 / 2, [x], point=[1.0], lr=0.05).h_lambda_max
        0.25
        >>> rep = sf.check_validity(5 * x**2 / 2, [x], [1.0], 0.05, optimizer=sf.HeavyBall(0.9),
        ...                         warn=False)
        >>> rep.trusted, round(rep.radius, 5), rep.edge
        (False, 0.00263, 3.8)
    """
    v.check_symbolic(loss=loss, params=params, point=point, lr=lr, hyper_values=hyper_values)
    params = v.check_params(params)
    hyper_values = v.resolve_values(hyper_values, v.to_sympy(loss, "loss"))
    missing = v.to_sympy(loss, "loss").free_symbols - set(params) - set(hyper_values)
    if missing:
        names = ", ".join(sorted(map(str, missing)))
        raise SymflowError(
            f"the loss contains {{{names}}}, which are not parameters; give their numbers "
            f"with hyper_values={{{', '.join(repr(n) + ': ...' for n in names.split(', '))}}}"
        )
    loss = v.check_loss(loss, params, frozenset(hyper_values))
    point = tuple(float(p) for p in np.ravel(point))
    if len(point) != len(params) or not all(np.isfinite(point)):
        raise SymflowError(
            f"got point={point}; give {len(params)} finite numbers, one per parameter"
        )
    if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and lr > 0):
        raise SymflowError(f"got lr={lr!r}; the learning rate must be a positive number")
    subs = {**dict(zip(params, point)), **hyper_values}
    values = {**{str(k): val for k, val in hyper_values.items()}, "h": lr}
    name, edge, radius, edge_text, radius_text = _limits(optimizer, values)
    hess = np.array(sp.hessian(loss, params).xreplace(subs).evalf().tolist(), dtype=float)
    scale = None if optimizer is None else optimizer.preconditioner(
        [float(sp.diff(loss, p).xreplace(subs)) for p in params])
    if scale is not None:
        scale = np.array([float(_by_name(c, values)) for c in scale])
        hess = hess / np.sqrt(np.outer(scale, scale))
    what = "h*lambda" if scale is None else "h*lambda (of the preconditioned Hessian)"
    if hasattr(optimizer, "scaling"):  # a game: its flow is -S grad E, its Jacobian S*H
        S = _by_name(optimizer.scaling(len(params)), values)
        if S.free_symbols:
            missing = ", ".join(sorted(map(str, S.free_symbols)))
            raise SymflowError(f"the game Jacobian of {optimizer.label} depends on {{{missing}}}; "
                               "give their numbers in hyper_values")
        eig = np.linalg.eigvals(np.array(S.evalf().tolist(), dtype=float) @ hess)
        eig = eig[np.argsort(-np.abs(eig))]
        what = "h*|mu| (mu: the eigenvalues of the game Jacobian S*H)"
    else:
        eig = np.linalg.eigvalsh(hess)
    ratio = float(lr * np.max(np.abs(eig)))
    if radius is None or not series:
        trusted = ratio < SAFE * edge
        message = ("the iteration is well inside its stability region" if trusted else
                   f"{what} is close to the stability edge {edge_text} of {name}")
    elif ratio < SAFE * radius:
        message, trusted = "the modified-equation series is trustworthy here", True
    elif ratio < radius:
        message, trusted = (f"{what} is close to {radius_text}, where the modified-equation "
                            "series stops converging: truncations are inaccurate"), False
    else:
        message, trusted = (f"{what} >= {radius_text}: the modified-equation series diverges "
                            f"(on a quadratic it converges only for h*lambda < {radius_text})"
                            ), False
    if ratio >= edge:
        message += f"; {name} itself is unstable here (stable only for h*lambda < {edge_text})"
    elif not trusted:
        message += f"; {name} is stable for h*lambda < {edge_text}"
    eig = tuple(float(e.real) if e.imag == 0 else complex(e) for e in np.asarray(eig, complex))
    report = ValidityReport(lr, point, eig, ratio, trusted, message, edge, radius)
    if warn and not trusted:
        warnings.warn(str(report), ValidityWarning, stacklevel=2)
    return report
