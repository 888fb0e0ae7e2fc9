r"""Element-wise update rules (Adam, RMSprop, AdaGrad, ...) on parameter pytrees.

Adam and RMSprop have no coordinate-free linear form (:mod:`solvers._networks._network_run`
refuses them): they square, divide and take roots of the gradient. But they act on every
coordinate alike and alone, so one *coordinate's* symbolic update determines the method.
The optimizer's own symbolic map (``step_memory``) is run once on one opaque coordinate,

.. math::

    (\theta_i, m_i, s) \;\longmapsto\;
    \bigl(\Phi(\theta_i, m_i, s, g_i),\; M(\theta_i, m_i, s, g_i),\; S(s)\bigr),
    \qquad g_i = \partial_i L(\theta),

where :math:`m_i` are the per-coordinate memory slots (Adam's :math:`m_i, v_i`) and
:math:`s` the scalar slots shared by all coordinates (the bias-correction powers
:math:`\beta_1^n, \beta_2^n`). Which slot is which is read off a second run on two
coordinates, and that run must equal the one-coordinate rule applied to each coordinate
(otherwise the rule mixes coordinates and is refused). :math:`\Phi, M, S` (and the points
at which gradients are taken, when not :math:`\theta`) are compiled with
:func:`solvers.vector_function` and applied leaf by leaf with ``jax.tree_util.tree_map``;
the memory is a tuple of pytrees shaped like the parameters and the shared slots a vector.
So ``sf.Adam(b1, b2, eps, eps_root=r)`` runs as ``optax.adam(h, b1, b2, eps, eps_root=r)``
(Kingma & Ba, *Adam: a method for stochastic optimization*, ICLR 2015) and
``sf.RMSprop(rho, eps, eps_in_sqrt=True)`` as ``optax.rmsprop(h, rho, eps)`` (Tieleman &
Hinton, *Lecture 6.5, Neural networks for machine learning*, 2012), from the same
description that the modified equations expand.

Example::

    >>> import jax.numpy as jnp, symflow as sf
    >>> loss = lambda p, batch: 0.5 * jnp.sum(p ** 2)
    >>> run = elementwise_optimizer(sf.Adam(beta1=0.5, beta2=0.75, eps=1e-12), loss)
    >>> state = run.start(jnp.array([2.0, -1.0]), None, lr=0.1)
    >>> theta, memory, shared = run.step(state, None, lr=0.1)
    >>> [round(float(t), 6) for t in theta]   # first bias-corrected step: theta - h sign(g)
    [1.9, -0.9]
    >>> len(memory), shared.tolist()           # m, v like the parameters; beta1^n, beta2^n
    (2, [0.5, 0.75])
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import sympy as sp

from symflow import SymflowError
from symflow._core._guard import as_sympy, rationalize
from symflow._core._symbols import h

from .._ode._compile import hyper_vector, vector_function
from ._tree_eval import check_inputs, check_params, freeze_hyper, tmap


class NotElementwiseError(SymflowError):
    """The rule mixes coordinates (or treats them differently): no element-wise form."""


class _Trace:
    """The rule run once on ``dim`` opaque coordinates; each gradient is a fresh symbol vector."""

    def __init__(self, optimizer, dim):
        self.dim = dim
        self.thetas = tuple(sp.Dummy(f"theta_{i}") for i in range(dim))
        size = optimizer.memory_size(dim)
        self.mems = tuple(sp.Dummy(f"m_{j}") for j in range(size))
        self.points: list = []      # None: the gradient at theta itself
        self.grads: list = []       # one tuple of dim symbols per gradient evaluation
        theta = sp.Matrix(self.thetas)

        def oracle(point):
            point = sp.Matrix(point) if isinstance(point, (list, tuple)) else point
            if not isinstance(point, sp.MatrixBase) or len(point) != dim:
                raise SymflowError(f"grad() was called with {point!r}; it takes a column "
                                   f"Matrix of {dim} entries")
            point = sp.Matrix(point).reshape(dim, 1)
            self.points.append(None if point == theta else tuple(point))
            g = tuple(sp.Dummy(f"g{len(self.grads)}_{i}") for i in range(dim))
            self.grads.append(g)
            return sp.Matrix(g)

        def refuse(point):
            raise SymflowError(f"the initial memory of {optimizer!r} evaluates a gradient; an "
                               "element-wise network run starts from memory that does not")

        try:
            if size:
                nxt, mem = optimizer.step_memory(theta, sp.Matrix(self.mems), oracle, h)
            else:
                nxt, mem = optimizer.step(theta, oracle, h), sp.zeros(0, 1)
            init = optimizer.initial_memory(theta, refuse, h) if size else sp.zeros(0, 1)
        except SymflowError:
            raise
        except Exception as err:
            raise SymflowError(f"running the update of {optimizer!r} on {dim} opaque "
                               f"parameter(s) raised {type(err).__name__}: {err}") from err
        self.theta_next = tuple(as_sympy(rationalize(e)) for e in sp.Matrix(nxt))
        self.memory_next = tuple(as_sympy(rationalize(e)) for e in sp.Matrix(mem))
        self.initial = tuple(as_sympy(rationalize(e)) for e in sp.Matrix(init))
        if len(self.theta_next) != dim or len(self.memory_next) != size or \
                len(self.initial) != size:
            raise SymflowError(f"{optimizer!r} returned {len(self.theta_next)} parameters and "
                               f"{len(self.memory_next)} memory entries for {dim} parameters "
                               f"and memory_size={size}")
        if not self.grads:
            raise SymflowError(f"{optimizer!r} never evaluates a gradient: a minibatch run "
                               "needs a rule that calls grad(point)")
        self.shared, self.owner = self._classify()

    def coordinate_symbols(self, i) -> set:
        return {self.thetas[i]} | {g[i] for g in self.grads}

    def _classify(self):
        """``(shared slots, {local slot: coordinate})``: shared slots evolve from shared slots
        alone and start free of theta; every other slot must belong to one coordinate."""
        coords = set().union(*(self.coordinate_symbols(i) for i in range(self.dim)))
        shared = {j for j, e in enumerate(self.memory_next)
                  if not (e.free_symbols & coords) and
                  not (self.initial[j].free_symbols & set(self.thetas))}
        changed = True
        while changed:
            changed = False
            for j in sorted(shared):
                used = {k for k, m in enumerate(self.mems) if m in self.memory_next[j].free_symbols}
                if used - shared:
                    shared.discard(j)
                    changed = True
        owners = {}
        for j, e in enumerate(self.memory_next):
            if j in shared:
                continue
            free = e.free_symbols | self.initial[j].free_symbols
            owners[j] = {i for i in range(self.dim) if free & self.coordinate_symbols(i)}
        changed = True
        while changed:
            changed = False
            for j, who in owners.items():
                for k, m in enumerate(self.mems):
                    if k in owners and m in self.memory_next[j].free_symbols and \
                            not owners[k] <= who:
                        who |= owners[k]
                        changed = True
        bad = [j for j, who in owners.items() if len(who) != 1]
        if bad:
            raise NotElementwiseError(f"memory entry {bad[0]} of the update depends on "
                                      f"{len(owners[bad[0]])} coordinates (a slot must "
                                      "belong to one coordinate, or be a shared scalar)")
        return sorted(shared), {j: who.pop() for j, who in owners.items()}

    def local_slots(self, i) -> list:
        return [j for j, who in sorted(self.owner.items()) if who == i]


class ElementwiseRule:
    """One coordinate's update of an element-wise ``optimizer`` (see the module docstring).

    Attributes ``theta``, ``local``, ``shared``, ``grads`` are the one-coordinate symbols;
    ``theta_next``, ``local_next``, ``shared_next``, ``points``, ``local_init``,
    ``shared_init`` the expressions; ``hyper`` the free hyperparameter symbols.
    """

    def __init__(self, optimizer):
        self.optimizer = optimizer
        one, two = _Trace(optimizer, 1), _Trace(optimizer, 2)
        n_local = len(one.owner)
        if len(one.shared) != len(two.shared) or len(two.owner) != 2 * n_local or \
                len(one.grads) != len(two.grads):
            raise NotElementwiseError(
                f"with 1 parameter it keeps {n_local} per-coordinate and {len(one.shared)} "
                f"shared memory entries, with 2 parameters {len(two.owner)} and "
                f"{len(two.shared)}: the memory is not a fixed number of slots per coordinate")
        self._check(one, two)
        self.theta = one.thetas[0]
        self.local = tuple(one.mems[j] for j in one.local_slots(0))
        self.shared = tuple(one.mems[j] for j in one.shared)
        self.grads = tuple(g[0] for g in one.grads)
        self.theta_next = one.theta_next[0]
        self.local_next = tuple(one.memory_next[j] for j in one.local_slots(0))
        self.shared_next = tuple(one.memory_next[j] for j in one.shared)
        self.local_init = tuple(one.initial[j] for j in one.local_slots(0))
        self.shared_init = tuple(one.initial[j] for j in one.shared)
        self.points = tuple(None if p is None else p[0] for p in one.points)
        exprs = (self.theta_next,) + self.local_next + self.shared_next + self.local_init + \
            self.shared_init + tuple(p for p in self.points if p is not None)
        taken = {self.theta, h, *self.local, *self.shared, *self.grads}
        free = set().union(*(e.free_symbols for e in exprs)) - taken
        self.hyper = tuple(sorted(free, key=str))

    def _check(self, one, two):
        """Each coordinate of the two-coordinate run must be the one-coordinate rule."""
        for i in range(2):
            swap = {one.thetas[0]: two.thetas[i]}
            swap.update({g1[0]: g2[i] for g1, g2 in zip(one.grads, two.grads)})
            swap.update({one.mems[a]: two.mems[b]
                         for a, b in zip(one.local_slots(0), two.local_slots(i))})
            swap.update({one.mems[a]: two.mems[b] for a, b in zip(one.shared, two.shared)})
            pairs = [(two.theta_next[i], one.theta_next[0], "the parameter update")]
            pairs += [(two.memory_next[b], one.memory_next[a], "the memory update")
                      for a, b in zip(one.local_slots(0), two.local_slots(i))]
            pairs += [(two.memory_next[b], one.memory_next[a], "the shared memory update")
                      for a, b in zip(one.shared, two.shared)]
            pairs += [(two.initial[b], one.initial[a], "the initial memory")
                      for a, b in zip(one.local_slots(0) + one.shared,
                                      two.local_slots(i) + two.shared)]
            for p1, p2 in zip(one.points, two.points):
                if (p1 is None) != (p2 is None):
                    raise NotElementwiseError("a gradient is taken at theta with one parameter "
                                              "and elsewhere with two")
                if p1 is not None:
                    pairs.append((p2[i], p1[0], "the point of a gradient"))
            for got, want, where in pairs:
                want = want.xreplace(swap)
                if got != want and sp.simplify(got - want) != 0:
                    raise NotElementwiseError(f"{where} of coordinate {i} is not the "
                                              "one-coordinate rule applied to that coordinate")


def _stacked(fn, leaves, n_state, shared, extra):
    """``fn`` on one leaf: its arguments stacked on a leading axis, in the compiled order
    (parameter and memory entries ``leaves[:n_state]``, the shared scalars broadcast to the
    leaf's shape, then the gradients ``leaves[n_state:]``)."""
    shape = jnp.shape(leaves[0])
    args = list(leaves[:n_state]) + [jnp.broadcast_to(s, shape) for s in shared] + \
        list(leaves[n_state:])
    return fn(jnp.stack([jnp.asarray(a, dtype=jnp.float64) for a in args]), extra)


class ElementwiseOptimizer:
    """An element-wise rule on parameter pytrees: ``start`` and ``step``.

    The state is ``(params, memory, shared)``: ``memory`` a tuple of pytrees like ``params``
    (Adam's :math:`m, v`), ``shared`` a vector of the scalar slots (the bias-correction
    powers), empty when there are none.
    """

    def __init__(self, rule: ElementwiseRule, loss_fn, hyper=None):
        self.rule = rule
        self.loss_fn = loss_fn
        self.n_memory = len(rule.local)
        self.n_shared = len(rule.shared)
        opt = rule.optimizer
        try:
            self._hyper = hyper_vector(rule.hyper, dict(hyper or ()))
        except SymflowError as err:
            raise SymflowError(f"{opt!r} has symbolic hyperparameters; a network run needs "
                               f"their values: {err}") from err
        extra = (h,) + rule.hyper
        r = rule
        grads = r.grads
        per_coordinate = (r.theta,) + r.local
        self._next = vector_function(sp.Matrix((r.theta_next,) + r.local_next),
                                     per_coordinate + r.shared + grads, extra)
        self._shared_next = vector_function(sp.Matrix(r.shared_next), r.shared, extra) \
            if r.shared else None
        self._points = tuple(
            None if p is None else
            vector_function(sp.Matrix([p]), per_coordinate + r.shared + grads[:k], extra)
            for k, p in enumerate(r.points))
        self._local_init = vector_function(sp.Matrix(r.local_init), (r.theta,), extra) \
            if r.local else None
        self._shared_init = vector_function(sp.Matrix(r.shared_init), (), extra) \
            if r.shared else None
        self._checked: set = set()

    def _extra(self, lr):
        return jnp.concatenate([jnp.reshape(jnp.asarray(lr, dtype=jnp.float64), (1,)),
                                self._hyper])

    def start(self, params, batch, lr, memory0=None):
        """The initial state ``(params, memory, shared)`` at learning rate ``lr`` (the
        optimizer's ``initial_memory``, or ``memory0`` pytrees for the per-coordinate slots)."""
        params = check_inputs(self.loss_fn, params, batch, 1, self._checked)
        extra = self._extra(lr)
        if memory0 is None:
            if self._local_init is None:
                memory0 = ()
            else:
                init = tmap(lambda t: _stacked(self._local_init, [t], 1, [], extra), params)
                memory0 = tuple(tmap(lambda a, j=j: a[j], init) for j in range(self.n_memory))
        memory0 = tuple(memory0)
        if len(memory0) != self.n_memory:
            raise SymflowError(f"got {len(memory0)} memory pytree(s); {self.rule.optimizer!r} "
                               f"keeps {self.n_memory} per coordinate")
        memory0 = tuple(check_params(m, f"memory0[{j}]") for j, m in enumerate(memory0))
        shared = jnp.zeros((0,)) if self._shared_init is None else \
            self._shared_init(jnp.zeros((0,)), extra)
        return params, memory0, shared

    def step(self, state, batch, lr):
        """One step ``(params, memory, shared) -> (params, memory, shared)``."""
        theta, memory, shared = state
        extra = self._extra(lr)
        grad = jax.grad(self.loss_fn)
        per = (theta,) + tuple(memory)
        grads: list = []
        for fn in self._points:
            if fn is None:
                point = theta
            else:
                point = tmap(lambda *a, fn=fn: _stacked(fn, a, len(per), shared, extra)[0],
                             *(per + tuple(grads)))
            grads.append(grad(point, batch))
        out = tmap(lambda *a: _stacked(self._next, a, len(per), shared, extra),
                   *(per + tuple(grads)))
        theta_next = tmap(lambda a: a[0], out)
        memory_next = tuple(tmap(lambda a, j=j: a[1 + j], out) for j in range(self.n_memory))
        shared_next = shared if self._shared_next is None else self._shared_next(shared, extra)
        return theta_next, memory_next, shared_next


@functools.lru_cache(maxsize=32)
def elementwise_rule(optimizer) -> ElementwiseRule:
    """Cached :class:`ElementwiseRule` (optimizers compare by their hyperparameters)."""
    return ElementwiseRule(optimizer)


def elementwise_optimizer(optimizer, loss_fn, hyper=None) -> ElementwiseOptimizer:
    """Compile an element-wise ``optimizer`` (Adam, RMSprop, AdaGrad, element-wise
    ``sf.Custom`` rules) for ``loss_fn(params, batch)`` on parameter pytrees; ``hyper`` gives
    numeric values of symbolic hyperparameters. Raises :class:`NotElementwiseError` for a rule
    that mixes coordinates."""
    if not callable(loss_fn):
        raise SymflowError(f"got loss_fn={loss_fn!r}; pass a function loss_fn(params, batch)")
    return _cached(elementwise_rule(optimizer), loss_fn, freeze_hyper(hyper))


@functools.lru_cache(maxsize=32)
def _cached(rule, loss_fn, hyper):
    return ElementwiseOptimizer(rule, loss_fn, dict(hyper))


__all__ = ["ElementwiseOptimizer", "ElementwiseRule", "NotElementwiseError",
           "elementwise_optimizer", "elementwise_rule"]
