"""The abstract optimizer: a symbolic one-step map on the parameters."""

from __future__ import annotations

import abc
from collections.abc import Callable

import sympy as sp

GradOracle = Callable[[sp.MatrixBase], sp.MatrixBase]


class AbstractOptimizer(abc.ABC):
    r"""A one-step optimization method as a symbolic map :math:`\theta_{n+1} = \Phi_h(\theta_n)`.

    Subclasses implement :meth:`step`, which receives the current parameters as a SymPy
    column ``Matrix``, a gradient oracle ``grad(point)`` returning :math:`\nabla L` at any
    point (a column ``Matrix``), and the learning rate ``h`` (a symbol or a number), and
    returns the next parameters. The same map serves the symbolic derivation (it is
    expanded as a series in ``h``) and the numerics (it is compiled to JAX).
    """

    #: Short name used in printed output and by the command-line interface.
    name: str = "optimizer"

    @abc.abstractmethod
    def step(self, theta: sp.MatrixBase, grad: GradOracle, h) -> sp.MatrixBase:
        """Return the parameters after one step from ``theta``."""

    def hyperparameters(self) -> dict:
        """Hyperparameters by name (numbers or SymPy expressions)."""
        return {}

    @property
    def hyper_symbols(self) -> frozenset:
        """The SymPy symbols that occur in the hyperparameters."""
        out = set()
        for value in self.hyperparameters().values():
            out |= getattr(sp.sympify(value), "free_symbols", set())
        return frozenset(out)

    @property
    def label(self) -> str:
        """Short human-readable name for tables and figures."""
        return repr(self)

    def _key(self):
        return (type(self), tuple(sorted((k, sp.sympify(v)) for k, v in
                                         self.hyperparameters().items())))

    def __eq__(self, other) -> bool:
        return isinstance(other, AbstractOptimizer) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"
