r"""Evaluate coordinate-free modified fields on any JAX model by nested jvp, never forming a Hessian.

A coordinate-free term is a combination :math:`\sum_\tau w_\tau\, G(\tau)` of elementary
differentials of :math:`g = \nabla L` (:mod:`symflow._trees._rooted`). With ``loss_fn(params, batch)``
a JAX function of a pytree of parameters, :math:`g` is ``jax.grad`` (reverse mode) and

.. math::

    g^{(m)}(\theta)[a_1, \dots, a_m] = \frac{\partial}{\partial\varepsilon}
    g^{(m-1)}(\theta + \varepsilon a_m)[a_1, \dots, a_{m-1}]\Big|_{\varepsilon=0}

is a ``jax.jvp`` of the same function one order lower (forward over reverse; :math:`Hv` is
the usual Hessian-vector product). Multilinearity keeps the number of such passes small
(Pearlmutter 1994, *Fast exact multiplication by the Hessian*, for the principle):

* trees with the same root colour and the same first :math:`m-1` children share one pass,
  their last children summed first: :math:`\sum_j w_j\,T[a, b_j] = T[a, \sum_j w_j b_j]`;
* a pass for :math:`g^{(m-1)}[a_1, \dots, a_{m-2}, \cdot\,]` rides along a pass for
  :math:`g^{(m)}[a_1, \dots, a_{m-1}, \cdot\,]` as a tangent on the slot :math:`a_{m-1}`:
  the jvp of :math:`(\theta, a) \mapsto g^{(m-1)}(\theta)[\dots, a]` in the direction
  :math:`(b, c)` is :math:`g^{(m)}[\dots, a, b] + g^{(m-1)}[\dots, c]`.

So the order-2 field of gradient descent, :math:`-g - \frac h2 Hg - h^2(\frac13 H^2 g +
\frac1{12} T[g, g])`, costs one gradient, one Hessian-vector product for :math:`Hg` and one
second-order pass: :math:`T[g, \tfrac{h^2}{12} g] + H(\tfrac h2 g + \tfrac{h^2}{3} Hg)` in a
single jvp of the Hessian-vector product.

Weights enter at run time (:math:`w_\tau = \sum_k c_k(\tau)\,h^k`), so one compiled function
serves every learning rate and every truncation order.

Example::

    >>> import jax.numpy as jnp, symflow as sf, solvers as sv
    >>> loss = lambda p, batch: jnp.sum(p["w"] ** 4) / 4
    >>> field = sv.network_field(sf.modified_equation(sf.GD(), order=2), loss)
    >>> f = field({"w": jnp.array([1.0, -2.0])}, None, lr=0.1)
    >>> [round(float(v), 4) for v in f["w"]]   # -g - h/2 H g - h^2 (H^2 g/3 + T[g,g]/12)
    [-1.185, 17.28]
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

import symflow as sf
from symflow import SymflowError
from symflow._core._guard import as_sympy
from symflow._core._validate import resolve_values
from symflow._trees._rooted import sort_key

from .._ode._iterate import check_lr

tmap = jax.tree_util.tree_map
#: The unit weight of a single tree's own value (identity-compared: no scaling, no division).
ONE = 1.0


def axpy(terms):
    """:math:`\\sum_i w_i v_i` for ``[(w, pytree), ...]`` (``w`` a scalar)."""
    out = None
    for w, v in terms:
        part = tmap(lambda leaf, w=w: w * leaf, v)
        out = part if out is None else tmap(jnp.add, out, part)
    return out


def project(v, color: int, blocks: int):
    """Player ``color``'s block of ``v`` (a tuple of the players' pytrees), the rest zeroed."""
    if blocks == 1:
        return v
    return tuple(part if i == color else tmap(jnp.zeros_like, part) for i, part in enumerate(v))


# -- input checks ------------------------------------------------------------------------------

def _is_numeric(leaf) -> bool:
    """Arrays and numbers are parameters (checked); other leaves (functions, ...) are held."""
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic, int, float, complex))


def check_params(params, what: str = "params"):
    """Raise unless every leaf of ``params`` is a finite floating array; return them as float64.

    Non-numeric leaves (an equinox model's activation functions) must have been split off
    first by :func:`split_model`.
    """
    leaves, _ = jax.tree_util.tree_flatten_with_path(params)
    if not leaves:
        raise SymflowError(f"got {what} with no array leaves; pass a pytree of float arrays "
                           "(a dict, list or tuple of jnp arrays, or an equinox model)")
    for path, leaf in leaves:
        name = jax.tree_util.keystr(path) or "the root"
        if not _is_numeric(leaf):
            raise SymflowError(
                f"got a {type(leaf).__name__} leaf at {what}{name}; {what} must hold float "
                "arrays only here (pass the whole model to the public function, which holds "
                "functions and other non-array leaves fixed)")
        dtype = getattr(leaf, "dtype", None) or np.asarray(leaf).dtype
        if not jnp.issubdtype(dtype, jnp.floating):
            raise SymflowError(
                f"got a {dtype} leaf at {what}{name}; parameters are differentiated, so every "
                "array leaf must be floating-point. If it is a parameter, cast it "
                "(jnp.asarray(x, dtype=jnp.float64)); if it is not (a count, an index, a "
                "mask), keep it out of the parameters: close over it in loss_fn, or mark the "
                "field eqx.field(static=True) in an equinox module")
        if not bool(jnp.all(jnp.isfinite(leaf))):
            raise SymflowError(f"got NaN or inf in {what}{name}; start from finite values")
    return tmap(lambda leaf: jnp.asarray(leaf, dtype=jnp.float64), params)


class BoundLoss:
    r"""``loss_fn`` on the array leaves of a model, its other leaves held fixed.

    An equinox model (``eqx.nn.MLP``) is a pytree whose leaves are its weight arrays and
    its activation functions. Only the arrays are parameters: like ``eqx.partition(model,
    eqx.is_array)``, :func:`split_model` replaces every non-array leaf by ``None`` in the
    parameters and keeps it here; ``BoundLoss(arrays, batch)`` puts the model back together
    and calls ``loss_fn(model, batch)``. Equal models give equal (hashable) bound losses, so
    compiled functions are shared.
    """

    def __init__(self, loss_fn, treedef, held: tuple):
        self.loss_fn, self.treedef, self.held = loss_fn, treedef, held

    def model(self, arrays):
        """The full model from the parameter pytree (``None`` where a leaf is held)."""
        free = jax.tree_util.tree_leaves(arrays, is_leaf=lambda x: x is None)
        return self.treedef.unflatten([f if h is None else h[0] for f, h in zip(free, self.held)])

    def __call__(self, arrays, batch):
        return self.loss_fn(self.model(arrays), batch)

    def _key(self):
        return (self.loss_fn, self.treedef, tuple(None if h is None else id(h[0])
                                                  for h in self.held))

    def __eq__(self, other):
        return isinstance(other, BoundLoss) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())


def split_model(loss_fn, params):
    """``(loss_fn, params)`` as they are when every leaf is numeric; otherwise a
    :class:`BoundLoss` and the parameters with the non-numeric leaves set to ``None``."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    if all(_is_numeric(leaf) for leaf in leaves):
        return loss_fn, params
    held = tuple(None if _is_numeric(leaf) else (leaf,) for leaf in leaves)
    arrays = treedef.unflatten([leaf if h is None else None for leaf, h in zip(leaves, held)])
    if isinstance(loss_fn, BoundLoss):   # already bound to this kind of model
        return loss_fn, arrays
    return BoundLoss(loss_fn, treedef, held), arrays


def freeze_hyper(hyper) -> tuple:
    """``{name: number}`` hyperparameter values as a sorted tuple of ``(name, float)`` (hashable)."""
    if hyper is None:
        return ()
    if not isinstance(hyper, dict):
        raise SymflowError(f"got hyper={hyper!r}; pass a dict of numbers, e.g. {{'beta': 0.9}}")
    out = []
    for name, value in hyper.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if not np.isfinite(number):
            raise SymflowError(f"got hyper[{name!r}] = {value!r}; hyperparameter values must be "
                               "finite numbers")
        out.append((str(name), number))
    return tuple(sorted(out))


def check_loss_fn(loss_fn, params, batch):
    """Raise unless ``loss_fn(params, batch)`` is a real scalar (checked on shapes only)."""
    if not callable(loss_fn):
        raise SymflowError(f"got loss_fn={loss_fn!r}; pass a function loss_fn(params, batch) "
                           "returning a scalar")
    try:
        out = jax.eval_shape(loss_fn, params, batch)
    except Exception as err:  # noqa: BLE001 -- user code
        raise SymflowError(
            f"loss_fn(params, batch) raised {type(err).__name__}: {err}. It is called with the "
            "parameter pytree and the batch exactly as given") from err
    shape = getattr(out, "shape", None)
    if shape is None or jax.tree_util.tree_structure(out).num_leaves != 1:
        raise SymflowError(
            f"loss_fn(params, batch) returned {out!r}; it must return one scalar array "
            "(e.g. the mean loss over the batch)")
    if shape != ():
        raise SymflowError(
            f"loss_fn(params, batch) returned an array of shape {shape}; it must return a "
            "scalar: reduce it, e.g. with jnp.mean over the batch")
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise SymflowError(f"loss_fn(params, batch) returned a {out.dtype} scalar; it must "
                           "return a real floating-point value")


def check_inputs(loss_fn, params, batch, blocks: int, checked: set):
    """:func:`check_params`, the players' split, and :func:`check_loss_fn` once per structure
    (remembered in ``checked``); returns float64 parameters."""
    params = check_params(params)
    if blocks > 1 and (not isinstance(params, (tuple, list)) or len(params) != blocks):
        raise SymflowError(f"this is a {blocks}-player rule; pass params as a tuple (phi, theta) "
                           "of the players' pytrees")
    key = jax.tree_util.tree_structure(params)
    if key not in checked:
        check_loss_fn(loss_fn, params, batch)
        checked.add(key)
    return params


# -- elementary differentials by nested jvp ----------------------------------------------------

class _Combiner:
    """Evaluate combinations of elementary differentials at ``theta`` (inside one trace)."""

    def __init__(self, grad, theta, blocks):
        self.grad = grad
        self.theta = theta
        self.blocks = blocks
        self._trees: dict = {}
        self._g = None

    def project(self, v, color):
        return project(v, color, self.blocks)

    def derivative(self, theta, dirs):
        r""":math:`g^{(m)}(\theta)[d_1, \dots, d_m]` by ``m`` nested jvps."""
        if not dirs:
            return self.grad(theta)
        return jax.jvp(lambda t: self.derivative(t, dirs[:-1]), (theta,), (dirs[-1],))[1]

    def gradient(self):
        if self._g is None:
            self._g = self.grad(self.theta)
        return self._g

    def tree(self, t):
        if t not in self._trees:
            self._trees[t] = self.combination({t: ONE})
        return self._trees[t]

    def _pass(self, color, prefix, last, rider=None):
        r""":math:`P_c\,g^{(m)}[\text{prefix}, b]` (+ the rider :math:`g^{(m-1)}[\text{prefix}_{<m-1}, c]`).

        With one last child :math:`b = w\,G(\tau)` the pass runs along the unscaled
        :math:`G(\tau)` and the weight multiplies the output (the rider is divided by it), so
        that XLA shares the tangent streams of passes along the same vector.
        """
        a = [self.tree(t) for t in prefix]
        if len(last) == 1:
            (t, scale), = last.items()
            b = self.tree(t)
        else:
            scale, b = 1.0, self.combination(last)
        if rider is None:
            value = self.derivative(self.theta, a + [b])
        else:
            c = self.combination(rider)
            if scale is not ONE:
                # w T[.., b] + c = w (T[.., b] + c / w); an exact zero weight becomes 1e-150,
                # whose term is then far below rounding
                scale = jnp.where(scale == 0, 1e-150, scale)
                c = axpy([(1.0 / scale, c)])
            inner = lambda t, slot: self.derivative(t, a[:-1] + [slot])  # noqa: E731
            value = jax.jvp(inner, (self.theta, a[-1]), (b, c))[1]
        if scale is not ONE:
            value = axpy([(scale, value)])
        return self.project(value, color)

    def combination(self, weights: dict):
        r""":math:`\sum_\tau w_\tau G(\tau)` for ``{tree: weight}``."""
        leaves: dict = {}
        groups: dict = {}
        for t, w in weights.items():
            kids = t[1:]
            if not kids:
                leaves[t[0]] = w
            else:
                key = (t[0], len(kids), kids[:-1])
                group = groups.setdefault(key, {})
                group[kids[-1]] = group[kids[-1]] + w if kids[-1] in group else w
        # fold each group of arity m - 1 into a free group of arity m with a matching prefix
        riders: dict = {}
        folded = set()
        for low in sorted(groups, key=lambda k: -k[1]):
            if low[1] == 0 or low in riders:
                continue
            for high in groups:
                if (high[0] == low[0] and high[1] == low[1] + 1 and high[2][:-1] == low[2]
                        and high not in riders and high not in folded):
                    riders[high] = low
                    folded.add(low)
                    break
        terms = [(w, self.project(self.gradient(), c)) for c, w in leaves.items()]
        for key, last in groups.items():
            if key in folded:
                continue
            rider = groups[riders[key]] if key in riders else None
            terms.append((1.0, self._pass(key[0], key[2], last, rider)))
        if not terms:
            return tmap(jnp.zeros_like, self.theta)
        return axpy(terms)


# -- compiled fields -------------------------------------------------------------------------------

def _numeric(expr, hyper, what):
    expr = as_sympy(expr)
    if hyper:
        expr = expr.subs(resolve_values(hyper, expr))
    if expr.free_symbols:
        names = ", ".join(sorted(map(str, expr.free_symbols)))
        raise SymflowError(f"{what} has the symbols {{{names}}}; give their values with "
                           f"hyper={{{names.split(', ')[0]!r}: ...}}")
    return float(expr)


class NetworkField:
    r"""A coordinate-free series :math:`\sum_k h^k f_k` evaluated on ``loss_fn(params, batch)``.

    ``field(params, batch, lr, order=None)`` returns :math:`\sum_{k\le p} h^k f_k(\theta)` as a
    pytree like ``params``; ``field.terms(params, batch)`` the tuple of the :math:`f_k`.
    Both are jit-compiled once (learning rate and truncation order are run-time inputs).
    Hyperparameter symbols in the coefficients need values in ``hyper``.

    For two-player schemes (``series.blocks == 2``) ``params`` is the pair
    ``(phi, theta)`` of the players' pytrees.
    """

    def __init__(self, series, loss_fn, hyper=None, name="the field"):
        if not isinstance(series, sf.TreeSeries):
            raise SymflowError(f"got {type(series).__name__}; pass a TreeSeries, e.g. the "
                               "field of sf.modified_equation(optimizer, order=k)")
        if not callable(loss_fn):
            raise SymflowError(f"got loss_fn={loss_fn!r}; pass a function loss_fn(params, "
                               "batch) returning a scalar")
        self.series = series
        self.loss_fn = loss_fn
        self._frozen = (freeze_hyper(hyper), name)
        self.order = series.order
        self.blocks = series.blocks
        self.trees = tuple(sorted({t for term in series.terms for t in term}, key=sort_key))
        what = f"{name} of the coordinate-free equation"
        self.coeffs = np.array([[_numeric(term.get(t, 0), hyper, what) for term in series.terms]
                                for t in self.trees]).reshape(len(self.trees), self.order + 1)
        self.theta_coeffs = np.array([[_numeric(a, hyper, what) for a in row]
                                      for row in series.theta])
        self._checked = set()
        self._field = jax.jit(self._evaluate)
        self._terms = jax.jit(self._all_terms)

    def _grad(self, batch):
        return lambda p: jax.grad(self.loss_fn)(p, batch)

    def _evaluate(self, params, batch, hw):
        """:math:`\\sum_k hw_k f_k` (``hw_k = h^k`` up to the order kept, else 0)."""
        combiner = _Combiner(self._grad(batch), params, self.blocks)
        w = jnp.asarray(self.coeffs) @ hw
        value = combiner.combination(dict(zip(self.trees, w))) if self.trees else \
            tmap(jnp.zeros_like, params)
        if np.any(self.theta_coeffs):
            a = jnp.asarray(self.theta_coeffs).T @ hw   # one coefficient of theta per block
            value = axpy([(1.0, value)] + [(a[b], combiner.project(params, b))
                                            for b in range(self.blocks)])
        return value

    def _all_terms(self, params, batch):
        eye = jnp.eye(self.order + 1)
        return tuple(self._evaluate(params, batch, eye[k]) for k in range(self.order + 1))

    def weights(self, lr, order=None):
        """The run-time weights :math:`h^k` (``k <= order``), zero above."""
        order = self.order if order is None else order
        if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order <= self.order:
            raise SymflowError(f"got order={order!r}; choose an integer in 0..{self.order}")
        lr = check_lr(lr)
        return jnp.array([lr ** k if k <= order else 0.0 for k in range(self.order + 1)])

    def prepare(self, params, batch):
        """Check the inputs once per parameter structure; return float64 parameters."""
        return check_inputs(self.loss_fn, params, batch, self.blocks, self._checked)

    def bound(self, params):
        """``(field, arrays)``: this field, or the one of the :class:`BoundLoss` when
        ``params`` is a model with non-array leaves (an equinox module)."""
        loss_fn, arrays = split_model(self.loss_fn, params)
        if loss_fn is self.loss_fn:
            return self, arrays
        return _cached_field(self.series, loss_fn, *self._frozen), arrays

    def __call__(self, params, batch, lr, order=None):
        """The field at ``params``; for a model with non-array leaves, the arrays' field
        (``None`` at the held leaves, as ``eqx.filter_grad`` returns)."""
        field, params = self.bound(params)
        params = field.prepare(params, batch)
        return field._field(params, batch, field.weights(lr, order))

    def terms(self, params, batch):
        """The tuple :math:`(f_0, \\dots, f_p)` at ``params``, each a pytree like ``params``."""
        field, params = self.bound(params)
        return field._terms(field.prepare(params, batch), batch)


def network_field(cf, loss_fn, hyper=None) -> NetworkField:
    """The :class:`NetworkField` of a coordinate-free equation's modified field.

    ``cf`` is ``sf.modified_equation(optimizer, order=k)`` (no loss); ``loss_fn(params,
    batch)`` any JAX function returning a scalar; ``hyper`` numeric values of symbols in
    the coefficients (e.g. ``{"beta": 0.9}``).
    """
    if not isinstance(cf, sf.CoordinateFreeEquation):
        raise SymflowError(
            f"got {type(cf).__name__}; pass a coordinate-free equation, "
            "sf.modified_equation(optimizer, order=k) without a loss")
    return _cached_field(cf.field, loss_fn, freeze_hyper(hyper), "the field")


def manifold_fields(cf, loss_fn, hyper=None) -> tuple:
    """:class:`NetworkField` of each memory slot's invariant manifold :math:`M_h(\\theta)`."""
    if cf.manifold is None:
        raise SymflowError(f"{cf.optimizer!r} keeps no memory; it has no invariant manifold")
    return tuple(_cached_field(m, loss_fn, freeze_hyper(hyper), f"memory slot {j}")
                 for j, m in enumerate(cf.manifold))


@functools.lru_cache(maxsize=32)
def _cached_field(series, loss_fn, hyper, name):
    return NetworkField(series, loss_fn, dict(hyper), name)
