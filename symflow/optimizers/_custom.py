"""Any user-written one-step update rule."""

from __future__ import annotations

import sympy as sp

from .._errors import SymflowError
from .._validate import check_symbols
from ._base import AbstractOptimizer


class Custom(AbstractOptimizer):
    r"""An optimizer given by its update rule ``update(theta, grad, h) -> next theta``.

    ``theta`` is a SymPy column ``Matrix``, ``grad(point)`` returns the gradient column at
    any point (so rules that evaluate the gradient elsewhere are covered), and ``h`` is the
    learning rate. Extragradient, for instance,

    .. math::  \theta_{n+1} = \theta_n - h\,\nabla L\bigl(\theta_n - h\,\nabla L(\theta_n)\bigr),

    is ``sf.Custom(update=lambda th, g, h: th - h*g(th - h*g(th)))``
    (Korpelevich, *Ekonomika i Matematicheskie Metody* 12, 1976).

    Symbols other than the parameters and ``h`` used inside the rule must be declared in
    ``hyper`` so that they are known to be constants.

    Example::

        >>> import sympy as sp, symflow as sf
        >>> x = sp.Symbol("x")
        >>> eg = sf.Custom(update=lambda th, g, h: th - h * g(th - h * g(th)))
        >>> sf.modified_equation(eg, loss=x**2 / 2, params=[x], order=1).terms[1]
        Matrix([[x/2]])
    """

    def __init__(self, update, hyper=(), name: str = "custom"):
        if not callable(update):
            raise SymflowError(
                f"got update={update!r}; update must be a function "
                "update(theta, grad, h) returning the next parameters"
            )
        self.update = update
        self.hyper = check_symbols(hyper, "hyper")
        self.name = name

    def hyperparameters(self) -> dict:
        return {str(s): s for s in sorted(self.hyper, key=str)}

    def step(self, theta, grad, h):
        try:
            out = self.update(theta, grad, h)
        except SymflowError:
            raise
        except Exception as err:  # the user's code failed on symbolic input
            raise SymflowError(
                f"the update rule raised {type(err).__name__}: {err}. It is called as "
                "update(theta, grad, h) with theta a SymPy column Matrix, grad(point) "
                "returning a column Matrix and h a SymPy symbol"
            ) from err
        if isinstance(out, (list, tuple)):
            out = sp.Matrix(out)
        if not isinstance(out, sp.MatrixBase) or out.shape != theta.shape:
            shape = getattr(out, "shape", type(out).__name__)
            raise SymflowError(
                f"the update rule returned {shape}; it must return a column Matrix of "
                f"shape {theta.shape}, like theta"
            )
        return out

    @property
    def label(self) -> str:
        return self.name

    def _key(self):
        return (type(self), self.update, self.hyper)

    def __repr__(self) -> str:
        return f"Custom(name={self.name!r}, hyper={sorted(map(str, self.hyper))})"
