"""The abstract optimizer: a symbolic one-step map on the parameters."""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable
from typing import NamedTuple

import sympy as sp

from .._core._errors import SymflowError
from .._core._guard import as_sympy, check_symbolic, to_sympy
from .._core._symbols import h

GradOracle = Callable[[sp.MatrixBase], sp.MatrixBase]


def _guarded(method):
    """``method(self, theta, [memory,] grad, h)`` with its symbolic arguments checked first."""
    @functools.wraps(method)
    def wrapper(self, theta, *args, **kwargs):
        check_symbolic(theta=theta, **{f"argument {i + 2}": a for i, a in enumerate(args)},
                       **kwargs)
        return method(self, theta, *args, **kwargs)

    wrapper._guarded = True
    return wrapper


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

    def __init_subclass__(cls, **kwargs):
        """Every subclass's one-step methods check their symbolic arguments (no strings)."""
        super().__init_subclass__(**kwargs)
        for method in ("step", "step_memory", "initial_memory"):
            if method in cls.__dict__ and not getattr(cls.__dict__[method], "_guarded", False):
                setattr(cls, method, _guarded(cls.__dict__[method]))

    #: :meth:`linear_limits` as formulas in the hyperparameters' names, for messages.
    limits_text = (None, None)

    #: False when the memory does not relax to a function of theta (AdaGrad's accumulator).
    memory_relaxes: bool = True

    #: False when the reduced flow expands :math:`\sqrt{v}` about :math:`g^2` with
    #: :math:`\epsilon` outside the root (RMSprop, Adam): its terms then grow like
    #: :math:`1/|g_i|^k` where a gradient component :math:`g_i` vanishes.
    smooth_at_zero_gradient: bool = True

    @abc.abstractmethod
    def step(self, theta: sp.MatrixBase, grad: GradOracle, h) -> sp.MatrixBase:
        """Return the parameters after one step from ``theta``."""

    # -- memory (momentum buffers, moment estimates) ---------------------------------------
    def memory_size(self, dim: int) -> int:
        """Number of memory components for ``dim`` parameters (0: a one-step method)."""
        return 0

    def initial_memory(self, theta: sp.MatrixBase, grad: GradOracle, h) -> sp.MatrixBase:
        """The memory a real run starts from (zeros unless overridden)."""
        return sp.zeros(self.memory_size(len(theta)), 1)

    def step_memory(self, theta: sp.MatrixBase, memory: sp.MatrixBase, grad: GradOracle, h):
        """One step on the whole state: ``(theta, memory) -> (theta_next, memory_next)``."""
        return self.step(theta, grad, h), memory

    def hyperparameters(self) -> dict:
        """Hyperparameters by name (numbers or SymPy expressions)."""
        return {}

    # -- linear stability (see symflow.check_validity) -------------------------------------
    def linear_limits(self):
        r"""How large :math:`h\lambda` may be on a quadratic with Hessian eigenvalue :math:`\lambda`.

        Returns ``(edge, radius)``, expressions in the hyperparameters: the iteration is
        stable for :math:`0 < h\lambda <` ``edge``, and the series of the (reduced) modified
        equation converges for :math:`h\lambda <` ``radius``. ``None`` where unknown.
        """
        return None, None

    def preconditioner(self, grad):
        r"""Diagonal :math:`P` (a list) at a point with gradient ``grad`` (floats): the
        :math:`\lambda` of :meth:`linear_limits` are those of :math:`P^{-1/2} H P^{-1/2}`.
        ``None`` for the identity (non-adaptive methods)."""
        return None

    @property
    def hyper_symbols(self) -> frozenset:
        """The SymPy symbols that occur in the hyperparameters."""
        out = set()
        for value in self.hyperparameters().values():
            out |= getattr(as_sympy(value), "free_symbols", set())
        return frozenset(out)

    @property
    def label(self) -> str:
        """Short human-readable name for tables and figures."""
        return repr(self)

    def _key(self):
        return (type(self), tuple(sorted((k, as_sympy(v)) for k, v in
                                         self.hyperparameters().items())))

    def __eq__(self, other) -> bool:
        return isinstance(other, AbstractOptimizer) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


class StateRule(NamedTuple):
    """An optimizer's rule in the variables where its whole state moves by ``O(step)``."""

    #: ``rule(theta, memory, grad, step) -> (theta_next, memory_next)``, in the scaled memory.
    rule: Callable
    #: The expansion variable (``h``, or ``delta = sqrt(h)``, or ``kappa = h**2``).
    step: sp.Symbol
    #: The learning rate as a function of ``step``.
    h_value: sp.Expr
    #: Names of the scaled memory variables.
    names: list
    #: The time the flow runs in, as text (``"t = n*h"``).
    time: str
    #: The scaled memory is ``memory_scale * memory`` (``memory_scale`` an expression in ``step``).
    memory_scale: sp.Expr = sp.S.One


class AbstractMemoryOptimizer(AbstractOptimizer):
    r"""An optimizer whose state is :math:`z = (\theta, m)`: parameters plus memory.

    Subclasses implement :meth:`memory_size` and :meth:`step_memory`. The memory is a
    column ``Matrix`` (momentum buffer, moment estimates, ...); :meth:`initial_memory`
    is what a real run starts from. When the memory relaxes geometrically, the modified
    equation eliminates it on its invariant manifold :math:`m = M_h(\theta)`.
    """

    @abc.abstractmethod
    def memory_size(self, dim: int) -> int:
        """Number of memory components for ``dim`` parameters."""

    @abc.abstractmethod
    def step_memory(self, theta, memory, grad, h):
        """One step on the whole state: ``(theta, memory) -> (theta_next, memory_next)``."""

    def memory_names(self, params) -> list[str]:
        """Names of the memory components (for the flow on the whole state)."""
        return [f"m{k}" for k in range(self.memory_size(len(params)))]

    def state_rule(self, params) -> StateRule:
        r"""The rule in the variables where the whole state moves at :math:`O(\text{step})`
        (a :class:`StateRule`). By default the memory is used as is and the step is ``h``
        (right when the memory is itself slow, e.g. ``beta = 1 - c*h``).
        """
        return StateRule(self.step_memory, h, h, self.memory_names(params), "t = n*h")

    def step(self, theta, grad, h):
        raise SymflowError(
            f"{self!r} has memory; call step_memory(theta, memory, grad, h) instead of step()"
        )


class VelocityMemory:
    r"""Mixin for momentum methods whose memory is the last displacement :math:`v_n`.

    With :math:`1 - \beta = c\sqrt{h}` the whole state is slow in the variables
    :math:`u = v/\delta`, :math:`\delta = \sqrt h`, and time :math:`s = n\delta`: the limit is
    the damped oscillator :math:`\ddot\theta + c\dot\theta = -\nabla L`.
    """

    def memory_names(self, params) -> list[str]:
        return [f"v_{p}" for p in params]

    def state_rule(self, params):
        if not self.beta.has(sp.sqrt(h)):
            return super().state_rule(params)
        delta = sp.Symbol("delta", positive=True)
        scaled = type(self)(beta=self.beta.subs(h, delta**2))

        def rule(theta, u, grad, step):
            nxt, mem = scaled.step_memory(theta, step * u, grad, step**2)
            return nxt, (mem / step).applyfunc(sp.expand)

        return StateRule(rule, delta, delta**2, [f"u_{p}" for p in params], "s = n*sqrt(h)",
                         1 / delta)


def hyper_value(value, name: str, requirement: str = "a finite real number"):
    """A hyperparameter as an exact SymPy value: a number (floats read as the rationals
    they were written as) or an expression in symbols; strings and booleans are refused.
    ``requirement`` completes the message "``name`` must be ..." for a number that is not
    finite and real."""
    if isinstance(value, (str, bool)) or value is None:
        raise SymflowError(f"got {name}={value!r}; {name} must be a number or a SymPy "
                           "expression (strings are not parsed here: use sf.parse_expression)")
    check_symbolic(**{name: value})
    if isinstance(value, (dict, list, tuple, set)):
        raise SymflowError(f"got {name}={value!r}; {name} must be a number or a SymPy "
                           "expression")
    try:
        value = to_sympy(value, name)
    except (sp.SympifyError, TypeError) as err:
        raise SymflowError(f"got {name}={value!r}; {name} must be a number or a SymPy "
                           "expression") from err
    if not value.free_symbols and (not value.is_real or not value.is_finite):
        raise SymflowError(f"got {name}={value}; {name} must be {requirement}")
    return value


def _check_number(value, name, ok, requirement):
    value = hyper_value(value, name, requirement)
    if not value.free_symbols and not ok(value):
        raise SymflowError(f"got {name}={value}; {name} must be {requirement}")
    return value


def check_unit_interval(value, name: str):
    """Validate a decay rate in [0, 1) (1 would never forget); symbols pass through."""
    return _check_number(value, name, lambda v: 0 <= v < 1,
                         "in [0, 1) (a number, or a SymPy symbol; 1 would never forget)")


def check_positive(value, name: str):
    """Validate a numeric hyperparameter > 0; symbols pass through."""
    return _check_number(value, name, lambda v: v > 0, "a positive number (or a SymPy symbol)")


def check_nonnegative(value, name: str):
    """Validate a numeric hyperparameter >= 0; symbols pass through."""
    return _check_number(value, name, lambda v: v >= 0,
                         "a non-negative number (or a SymPy symbol)")


def check_adaptive_eps(eps, eps_root, name: str):
    r"""Validate :math:`\epsilon \ge 0` and :math:`\epsilon_{\text{root}} \ge 0` of an adaptive method.

    :math:`\epsilon = 0` is the eps-free regime (Cattaneo, Klusowski & Shigida, *On the
    implicit bias of Adam*, ICML 2024): allowed when :math:`\epsilon_{\text{root}} > 0`
    keeps the root :math:`\sqrt{v + \epsilon_{\text{root}}}` away from zero. With both
    zero the step :math:`g/\sqrt{g^2} = \operatorname{sign}(g)` is not smooth at a zero
    gradient component and has no expansion in :math:`h` there: refused.

    >>> check_adaptive_eps(0, sp.Rational(1, 10**6), "Adam")
    (0, 1/1000000)
    """
    eps = check_nonnegative(eps, "eps")
    eps_root = check_nonnegative(eps_root, "eps_root")
    if eps == 0 and eps_root == 0:
        raise SymflowError(
            f"got eps={eps} and eps_root={eps_root} for {name}: with no epsilon the step "
            "g/sqrt(g^2) = sign(g) is singular where a gradient component vanishes, so it has "
            "no expansion in h there. Give eps_root > 0 (epsilon inside the root, "
            "sqrt(v + eps_root): the eps-free regime) or eps > 0")
    return eps, eps_root


def check_optimizer(optimizer) -> AbstractOptimizer:
    """``optimizer`` if it is an optimizer instance; a clear error for a class or anything else."""
    if isinstance(optimizer, type) and issubclass(optimizer, AbstractOptimizer):
        raise SymflowError(
            f"got the class {optimizer.__name__}; pass an instance, e.g. sf.{optimizer.__name__}()"
        )
    if not isinstance(optimizer, AbstractOptimizer):
        raise SymflowError(
            f"got optimizer={optimizer!r}; pass an optimizer such as sf.GD() or "
            "sf.Custom(update=lambda theta, grad, h: ...)"
        )
    return optimizer

