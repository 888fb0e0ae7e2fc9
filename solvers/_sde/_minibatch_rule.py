r"""Any optimizer's symbolic map as a batched JAX step fed by minibatch gradients.

The rule is run once on a *recording oracle*: each call ``grad(point)`` stores the point (an
expression in the state :math:`z = (\theta, m)` and the gradients returned so far) and returns
fresh symbols :math:`g^{(k)}`. So

.. math::

    p_k = P_k(z, g^{(1)}, \dots, g^{(k-1)}),\quad
    g^{(k)} = \frac1B\sum_{i\in\mathcal B_n}\nabla\ell_i(p_k),\quad
    z_{n+1} = \Phi(z_n, g^{(1)}, \dots, g^{(K)}),

with the *same* minibatch :math:`\mathcal B_n` for every gradient of step :math:`n`, as in real
training (and as :func:`symflow.sme` assumes). :math:`P_k` and :math:`\Phi` are compiled with
:func:`solvers.vector_function`; heavy ball, RMSprop and Adam evaluate one gradient at
:math:`\theta`, Nesterov one at the look-ahead point, ``sf.Custom`` rules as many as they call.

Example (heavy ball: one gradient at :math:`\theta`, state :math:`(w, v_w)`)::

    >>> import sympy as sp, symflow as sf
    >>> w = sp.Symbol("w")
    >>> rule = MinibatchRule(sf.HeavyBall(beta=sp.Rational(1, 2)), (w,))
    >>> rule.names, rule.n_gradients
    (('w', 'v_w'), 1)
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import sympy as sp

from symflow import SymflowError
from symflow._core._symbols import h

from .._ode._compile import vector_function


def _memory_names(optimizer, params, size):
    names = getattr(optimizer, "memory_names", None)
    names = list(names(params)) if names is not None else [f"m{k}" for k in range(size)]
    return names if len(names) == size else [f"m{k}" for k in range(size)]


class MinibatchRule:
    """``optimizer``'s step on the state ``(theta, memory)`` with gradient slots (see module)."""

    def __init__(self, optimizer, params):
        self.params = tuple(params)
        dim = len(self.params)
        self.dim = dim
        size = optimizer.memory_size(dim)
        self.names = tuple(map(str, self.params)) + tuple(_memory_names(optimizer, params, size))
        memory = sp.Matrix([sp.Dummy(n) for n in self.names[dim:]]) if size else sp.zeros(0, 1)
        theta = sp.Matrix(self.params)
        self.state = self.params + tuple(memory)
        points, slots = [], []

        def oracle(point):
            point = sp.Matrix(point)
            if point.shape != (dim, 1):
                raise SymflowError(f"{optimizer!r} asked for a gradient at a point of shape "
                                   f"{point.shape}; a point has {dim} components")
            g = sp.Matrix([sp.Dummy(f"g{len(slots)}_{i}") for i in range(dim)])
            points.append(None if point == theta else point)
            slots.append(g)
            return g

        if size:
            nxt, mem = optimizer.step_memory(theta, memory, oracle, h)
            out = sp.Matrix.vstack(sp.Matrix(nxt), sp.Matrix(mem))
        else:
            out = sp.Matrix(optimizer.step(theta, oracle, h))
        if not slots:
            raise SymflowError(f"{optimizer!r} never evaluates a gradient: a minibatch run "
                               "needs a rule that calls grad(point)")
        self.n_gradients = len(slots)
        grads = tuple(s for g in slots for s in g)
        taken = set(self.state) | set(grads) | {h}
        self.hyper = tuple(sorted(out.free_symbols.union(*[p.free_symbols for p in points
                                                          if p is not None]) - taken,
                                  key=str))
        extra = (h,) + self.hyper
        self._points = [None if p is None else
                        vector_function(p, self.state + grads[: k * dim], extra)
                        for k, p in enumerate(points)]
        self._out = vector_function(out, self.state + grads, extra)
        self._init = self._initial(optimizer, theta, size, extra)

    def _initial(self, optimizer, theta, size, extra):
        if not size:
            return None

        def refuse(point):
            raise SymflowError(f"the initial memory of {optimizer!r} evaluates a gradient; "
                               "pass memory0=... (numbers) to start a minibatch run")

        init = sp.Matrix(optimizer.initial_memory(theta, refuse, h))
        return vector_function(init, self.params, extra)

    def initial_memory(self, theta, extra):
        """The optimizer's initial memory at ``theta (d, n)``, as ``(m, n)``."""
        return self._init(theta, extra)

    def step(self, z, batch_gradient, extra):
        """One step of the states ``z (D, n)``; ``batch_gradient(point (d, n)) -> (d, n)``."""
        parts = [z]
        for fn in self._points:
            point = z[: self.dim] if fn is None else fn(jnp.concatenate(parts), extra)
            parts.append(batch_gradient(point))
        return self._out(jnp.concatenate(parts), extra)


@functools.lru_cache(maxsize=64)
def minibatch_rule(optimizer, params) -> MinibatchRule:
    """Cached :class:`MinibatchRule` (optimizers compare by their hyperparameters)."""
    return MinibatchRule(optimizer, params)


__all__ = ["MinibatchRule", "minibatch_rule"]
