r"""Run an optimizer on a JAX model: its update rule, parsed once, applied to parameter pytrees.

The coordinate-free derivation parses an update rule into vector-linear forms
(:mod:`symflow._trees._linear_rule`): :math:`\theta_{n+1}` and each memory slot are combinations,
with scalar coefficients in :math:`h` and the hyperparameters, of :math:`\theta`, the
memory and gradients at such combinations. The same forms drive the real optimizer here,
so the iterates and the modified flow come from one description of the method. Gradients
are ``jax.grad`` of ``loss_fn(params, batch)``; the scalars are compiled once with
:func:`solvers.vector_function` and take the learning rate at run time.

Example::

    >>> import jax.numpy as jnp, symflow as sf, solvers as sv
    >>> loss = lambda p, batch: 0.5 * jnp.sum(p ** 2)
    >>> run = sv.network_optimizer(sf.HeavyBall(beta=0.5), loss)
    >>> theta, (v,) = run.final(jnp.array([1.0]), None, lr=0.1, n_steps=2)
    >>> float(theta[0])   # 1 -> 0.9 -> 0.9 + 0.5 (-0.1) - 0.1 * 0.9
    0.76
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import sympy as sp

import symflow as sf
from symflow import SymflowError
from symflow._core._guard import as_sympy
from symflow._trees._linear_rule import THETA, linear_rule

from .._ode._compile import hyper_vector, vector_function
from .._ode._iterate import check_lr, check_steps
from ._tree_eval import (
    axpy,
    check_inputs,
    check_params,
    freeze_hyper,
    project,
    split_model,
    tmap,
)


class NetworkOptimizer:
    """An optimizer's update rule on parameter pytrees: ``step``, ``final``, ``trajectory``.

    The state is ``(params, memory)`` with ``memory`` a tuple of pytrees like ``params``
    (one per memory slot; empty for one-step methods). Two-player rules take ``params`` as
    the pair ``(phi, theta)``.
    """

    def __init__(self, rule, loss_fn, hyper=None):
        self.rule = rule
        self.loss_fn = loss_fn
        self._frozen = freeze_hyper(hyper)
        self.n_memory = len(rule.memory)
        scalars = list(dict.fromkeys(as_sympy(s) for s in rule.scalars()))
        self._index = {s: i for i, s in enumerate(scalars)}
        syms = rule.hyper
        self._hyper = hyper_vector(syms, hyper)
        self._scalars = vector_function(sp.Matrix(scalars), [sf.h], syms)
        self._checked = set()
        self._final_jit = jax.jit(self._final)
        self._trajectory = jax.jit(self._scan, static_argnames=("n_saves", "observe"))

    # -- one step ----------------------------------------------------------------------
    def _evaluate(self, forms, env, coef, grad, memo):
        terms = []
        for b, form in enumerate(forms):
            for node, s in form:
                if node[0] == "G":
                    if (node, b) not in memo:
                        point = self._evaluate(node[1], env, coef, grad, memo)
                        memo[(node, b)] = project(grad(point), b, self.rule.blocks)
                    v = memo[(node, b)]
                else:
                    v = project(env[node], b, self.rule.blocks)
                terms.append((coef[self._index[as_sympy(s)]], v))
        return axpy(terms)

    def step(self, state, batch, lr):
        """One step ``(params, memory) -> (params, memory)`` at learning rate ``lr``."""
        theta, memory = state
        coef = self._scalars(jnp.reshape(jnp.asarray(lr, dtype=jnp.float64), (1,)), self._hyper)
        grad = lambda p: jax.grad(self.loss_fn)(p, batch)  # noqa: E731
        env = {THETA: theta, **{("m", j): m for j, m in enumerate(memory)}}
        memo: dict = {}
        nxt = self._evaluate(self.rule.theta, env, coef, grad, memo)
        mem = tuple(self._evaluate(slot, env, coef, grad, memo) for slot in self.rule.memory)
        return nxt, mem

    # -- many steps ----------------------------------------------------------------------
    def _final(self, state, batch, lr, n_steps):
        return jax.lax.fori_loop(0, n_steps, lambda _, z: self.step(z, batch, lr), state)

    def _scan(self, state, batch, lr, every, n_saves, observe):
        def body(z, _):
            z = jax.lax.fori_loop(0, every, lambda _, s: self.step(s, batch, lr), z)
            return z, observe(z[0])

        return jax.lax.scan(body, state, None, length=n_saves)

    def start(self, params, batch, memory0=None):
        """The initial state: checked float64 ``params`` and ``memory0`` (zeros by default)."""
        params = check_inputs(self.loss_fn, params, batch, self.rule.blocks, self._checked)
        if memory0 is None:
            memory0 = tuple(tmap(jnp.zeros_like, params) for _ in range(self.n_memory))
        memory0 = tuple(memory0)
        if len(memory0) != self.n_memory:
            raise SymflowError(f"got {len(memory0)} memory pytree(s); {self.rule.optimizer!r} "
                               f"keeps {self.n_memory}")
        memory0 = tuple(check_params(m, f"memory0[{j}]") for j, m in enumerate(memory0))
        shapes = jax.tree_util.tree_map(jnp.shape, params)
        for j, m in enumerate(memory0):
            if jax.tree_util.tree_map(jnp.shape, m) != shapes:
                raise SymflowError(f"got memory0[{j}] with leaf shapes "
                                   f"{jax.tree_util.tree_map(jnp.shape, m)}; each memory pytree "
                                   f"must be shaped like params: {shapes}")
        return params, memory0

    def bound(self, params):
        """``(runner, arrays)``: this runner, or the one of the bound loss when ``params`` is
        a model with non-array leaves (see :class:`solvers._networks._tree_eval.BoundLoss`;
        the results then hold ``None`` at those leaves)."""
        loss_fn, arrays = split_model(self.loss_fn, params)
        if loss_fn is self.loss_fn:
            return self, arrays
        return _cached(self.rule, loss_fn, self._frozen), arrays

    def final(self, params, batch, lr, n_steps, memory0=None):
        """``(params_n, memory_n)`` after ``n_steps`` steps from ``params`` (and ``memory0``)."""
        run, params = self.bound(params)
        state = run.start(params, batch, memory0)
        return run._final_jit(state, batch, check_lr(lr), check_steps(n_steps))

    def trajectory(self, params, batch, lr, n_steps, observe, every=1, memory0=None):
        """``observe(params_k)`` for ``k = every, 2 every, ...`` up to ``n_steps``, and the
        final state. ``observe`` is a JAX function of the parameters (compiled once per
        function and number of observations)."""
        if not callable(observe):
            raise SymflowError(f"got observe={observe!r}; pass a JAX function of the parameters, "
                               "e.g. lambda p: loss_fn(p, batch)")
        run, params = self.bound(params)
        state = run.start(params, batch, memory0)
        n_steps, every = check_steps(n_steps), check_steps(every, "every")
        if not 1 <= every <= n_steps:
            raise SymflowError(f"got every={every} with n_steps={n_steps}; observe every 1 to "
                               "n_steps steps")
        state, obs = run._trajectory(state, batch, check_lr(lr), every, n_steps // every,
                                     observe)
        return obs, state


def network_optimizer(optimizer, loss_fn, hyper=None) -> NetworkOptimizer:
    """Compile ``optimizer``'s update rule for ``loss_fn(params, batch)`` on parameter pytrees.

    ``optimizer`` is one with a coordinate-free form (GD, heavy ball, Nesterov, ``Custom``
    rules built from gradients, gradient descent-ascent) or a coordinate-free equation;
    ``hyper`` gives numeric values of symbolic hyperparameters.
    """
    if not callable(loss_fn):
        raise SymflowError(f"got loss_fn={loss_fn!r}; pass a function loss_fn(params, batch)")
    rule = optimizer.rule if isinstance(optimizer, sf.CoordinateFreeEquation) else \
        linear_rule(optimizer)
    return _cached(rule, loss_fn, freeze_hyper(hyper))


@functools.lru_cache(maxsize=32)
def _cached(rule, loss_fn, hyper):
    return NetworkOptimizer(rule, loss_fn, dict(hyper))
