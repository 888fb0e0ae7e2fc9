r"""When can a modified equation be trusted?

The modified-equation series is asymptotic. For gradient descent on a quadratic with
Hessian eigenvalue :math:`\lambda` the exact modified field is
:math:`\frac{\log(1 - h\lambda)}{h}\,\theta`, whose series in :math:`h` converges only for
:math:`|h\lambda| < 1`; near that edge truncations are poor, and beyond
:math:`h\lambda = 2` the iteration itself diverges. The local quantity to watch is
therefore :math:`h\,\max_i|\lambda_i(\nabla^2 L(\theta))|`.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import sympy as sp

from . import _validate as v
from ._errors import SymflowError, ValidityWarning

#: Below this value of h*|lambda|_max the series is trusted without comment.
SAFE = 0.5


@dataclasses.dataclass(frozen=True)
class ValidityReport:
    """Result of :func:`check_validity`."""

    lr: float
    point: tuple
    eigenvalues: tuple
    h_lambda_max: float
    trusted: bool
    message: str

    def __str__(self) -> str:
        return f"h*|lambda|_max = {self.h_lambda_max:.4g} at {self.point}: {self.message}"


def check_validity(loss, params, point, lr, hyper_values=None, warn: bool = True):
    r"""Report :math:`h\max|\lambda(\nabla^2 L)|` at ``point`` and warn when it is too large.

    Example::

        >>> import sympy as sp, symflow as sf
        >>> x = sp.Symbol("x")
        >>> sf.check_validity(5 * x**2 / 2, [x], point=[1.0], lr=0.05).h_lambda_max
        0.25
    """
    params = v.check_params(params)
    hyper_values = v.resolve_values(hyper_values, sp.sympify(loss))
    missing = sp.sympify(loss).free_symbols - set(params) - set(hyper_values)
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
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise SymflowError(f"got lr={lr!r}; the learning rate must be a positive number")
    subs = {**dict(zip(params, point)), **hyper_values}
    hess = sp.hessian(loss, params).xreplace(subs).evalf()
    hess = np.array(hess.tolist(), dtype=float)
    eig = np.linalg.eigvalsh(hess)
    ratio = float(lr * np.max(np.abs(eig)))
    if ratio < SAFE:
        message, trusted = "the modified-equation series is trustworthy here", True
    elif ratio < 1:
        message, trusted = ("h*lambda is close to 1: the series converges slowly and "
                            "truncations are inaccurate"), False
    else:
        message, trusted = ("h*lambda >= 1: the modified-equation series diverges (for GD "
                            "on a quadratic it converges only for h*lambda < 1)"), False
        if ratio > 2:
            message += "; GD itself is unstable here (h*lambda > 2)"
    report = ValidityReport(lr, point, tuple(float(e) for e in eig), ratio, trusted, message)
    if warn and not trusted:
        warnings.warn(str(report), ValidityWarning, stacklevel=2)
    return report
