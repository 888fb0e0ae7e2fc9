"""Any user-written one-step update rule."""

from __future__ import annotations

import sympy as sp

from .._core._errors import SymflowError
from .._core._guard import check_symbolic
from .._core._validate import check_symbols
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

    **Rules with memory.** Give ``memory0``, the initial memory: a list of numbers or
    expressions, or a function ``memory0(theta)`` returning them (its length fixes the
    memory size). The rule is then ``update(theta, memory, grad, h) -> (theta_next,
    memory_next)``. Heavy ball, for instance::

        >>> import sympy as sp, symflow as sf
        >>> x = sp.Symbol("x")
        >>> hb = sf.Custom(update=lambda th, v, g, h: (th + v / 2 - h * g(th), v / 2 - h * g(th)),
        ...                memory0=lambda th: sp.zeros(len(th), 1), name="hb")
        >>> sf.modified_equation(hb, loss=x**2 / 2, params=[x], order=1).terms
        (Matrix([[-2*x]]), Matrix([[-6*x]]))

    Example::

        >>> import sympy as sp, symflow as sf
        >>> x = sp.Symbol("x")
        >>> eg = sf.Custom(update=lambda th, g, h: th - h * g(th - h * g(th)))
        >>> sf.modified_equation(eg, loss=x**2 / 2, params=[x], order=1).terms[1]
        Matrix([[x/2]])
    """

    def __init__(self, update, hyper=(), name: str = "custom", memory0=None):
        check_symbolic(memory0=memory0)
        if memory0 is not None and not callable(memory0) and not isinstance(
                memory0, (list, tuple, sp.MatrixBase)):
            raise SymflowError(f"got memory0={memory0!r}; give a list of initial memory values "
                               "or a function memory0(theta) returning them")
        self.memory0 = memory0
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

    # -- memory ------------------------------------------------------------------------------
    def initial_memory(self, theta, grad=None, h=None):
        if self.memory0 is None:
            return sp.zeros(0, 1)
        value = self.memory0(theta) if callable(self.memory0) else self.memory0
        check_symbolic(memory0=value)
        return sp.Matrix(list(value) if not isinstance(value, sp.MatrixBase) else value)

    def memory_size(self, dim: int) -> int:
        if self.memory0 is None:
            return 0
        return len(self.initial_memory(sp.Matrix(sp.symbols(f"t0:{dim}"))))

    def step_memory(self, theta, memory, grad, h):
        if self.memory0 is None:
            return self.step(theta, grad, h), memory
        try:
            out = self.update(theta, memory, grad, h)
        except SymflowError:
            raise
        except Exception as err:  # the user's code failed on symbolic input
            raise SymflowError(
                f"the update rule raised {type(err).__name__}: {err}. A rule with memory is "
                "called as update(theta, memory, grad, h) and returns (theta_next, "
                "memory_next), both column Matrices") from err
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise SymflowError("a rule with memory must return the pair (theta_next, "
                               f"memory_next); got {type(out).__name__}")
        check_symbolic(**{"the rule's (theta_next, memory_next)": out})
        nxt, mem = (sp.Matrix(o) if isinstance(o, (list, tuple)) else o for o in out)
        if not isinstance(nxt, sp.MatrixBase) or nxt.shape != theta.shape:
            raise SymflowError(f"theta_next has shape {getattr(nxt, 'shape', None)}; "
                               f"expected {theta.shape}")
        if not isinstance(mem, sp.MatrixBase) or mem.shape != memory.shape:
            raise SymflowError(f"memory_next has shape {getattr(mem, 'shape', None)}; "
                               f"expected {memory.shape}, like memory0")
        return nxt, mem

    def step(self, theta, grad, h):
        if self.memory0 is not None:
            raise SymflowError(f"{self!r} has memory; call step_memory(theta, memory, grad, h)")
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
        check_symbolic(**{"the rule's theta_next": out})
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
        return (type(self), self.update, self.hyper, id(self.memory0) if callable(self.memory0)
                else (None if self.memory0 is None else tuple(self.memory0)))

    def __repr__(self) -> str:
        return f"Custom(name={self.name!r}, hyper={sorted(map(str, self.hyper))})"
