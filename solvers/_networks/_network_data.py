r"""A training set for a JAX model: minibatches, per-sample losses and weighted gradients.

The dataset is any pytree of arrays sharing a leading sample axis of length :math:`N`
(``(x, y)``, a dict, ...); a batch is the same pytree with :math:`B` rows, and
``loss_fn(params, batch)`` must be the *mean* of the per-sample losses
:math:`\ell_i(\theta) = ` ``loss_fn(params, sample_i)`` over the batch (checked once on the
data). Then

.. math::

    \nabla\Bigl(\sum_i w_i\,\ell_i\Bigr)(\theta) = \sum_i w_i\,\nabla\ell_i(\theta)

is one reverse pass over the per-sample losses (``jax.vmap`` over samples, then
``jax.grad`` of the weighted sum), whatever the weights: a minibatch gradient, and also any
combination :math:`Gz` of the centred per-sample gradients, without the :math:`N \times d`
matrix of per-sample gradients.

Example::

    >>> import jax.numpy as jnp
    >>> loss = lambda p, batch: 0.5 * jnp.mean((batch[0] * p["w"] - batch[1]) ** 2)
    >>> data = NetworkData(loss, (jnp.array([1.0, 2.0]), jnp.array([1.0, 0.0])))
    >>> data.n_samples
    2
    >>> g = data.weighted_gradient({"w": jnp.array(1.0)}, data.arrays, jnp.array([1.0, -1.0]))
    >>> float(g["w"])      # grad l_1 - grad l_2 = x_1 (w x_1 - y_1) - x_2 (w x_2 - y_2)
    -4.0
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

import symflow as sf
from symflow import SymflowError

from .._sde._sgd_run import FLOYD_MAX_BATCH, floyd_sample
from ._tree_eval import check_loss_fn, tmap


def _take(tree, idx):
    return tmap(lambda a: a[idx], tree)


class NetworkData:
    """A dataset pytree (leading axis = samples) with the loss it is used with."""

    def __init__(self, loss_fn, dataset, what: str = "dataset"):
        leaves = jax.tree_util.tree_leaves(dataset)
        if not leaves:
            raise SymflowError(f"got {what}={dataset!r}; pass the training set as arrays with "
                               "a leading sample axis, e.g. (x, y) with x of shape (N, ...)")
        sizes = set()
        for leaf in leaves:
            shape = np.shape(leaf)
            if not shape:
                raise SymflowError(f"got a scalar leaf in {what}; every array needs a leading "
                                   "sample axis, e.g. y of shape (N,) or (N, 1)")
            sizes.add(shape[0])
        if len(sizes) != 1:
            raise SymflowError(f"got {what} arrays with leading axes {sorted(sizes)}; every "
                               "array must have one row per sample (the same N)")
        self.loss_fn = loss_fn
        self.arrays = tmap(jnp.asarray, dataset)
        self.n_samples = int(sizes.pop())

    def check(self, params, batch_size=None, rtol=1e-6):
        """Check the loss on one batch (a scalar) and that it is the mean of the per-sample
        losses on the whole set; ``params`` are float64 arrays."""
        if batch_size is not None:
            check_loss_fn(self.loss_fn, params, self.batch(jnp.arange(batch_size)))
        check_loss_fn(self.loss_fn, params, self.arrays)
        mean = float(self.loss_fn(params, self.arrays))
        per = float(jnp.mean(self.sample_losses(params, self.arrays)))
        if not np.isfinite(mean) or abs(mean - per) > rtol * max(1.0, abs(mean)):
            raise SymflowError(
                f"loss_fn(params, dataset) = {mean:.6g} but the mean of its per-sample values is "
                f"{per:.6g}; loss_fn(params, batch) must be the mean of one loss per sample "
                "over the batch (jnp.mean, not jnp.sum), as minibatch SGD assumes")

    def batch(self, idx):
        """The rows ``idx`` (any integer array shape in front) of every array."""
        return _take(self.arrays, idx)

    def sample_losses(self, params, rows):
        """:math:`(\\ell_i(\\theta))_i` for the rows of ``rows`` (leading axis = samples)."""
        one = lambda sample: self.loss_fn(params, tmap(lambda a: a[None], sample))
        return jax.vmap(one)(rows)

    def weighted_gradient(self, params, rows, weights):
        r""":math:`\sum_i w_i\nabla\ell_i(\theta)` over ``rows`` (one reverse pass)."""
        return jax.grad(lambda p: jnp.dot(weights, self.sample_losses(p, rows)))(params)

    def sample_gradients(self, params, rows):
        """The per-sample gradients ``vmap(grad)``: a pytree with a leading sample axis."""
        one = lambda sample: jax.grad(self.loss_fn)(
            params, tmap(lambda a: a[None], sample))
        return jax.vmap(one)(rows)


def batch_settings(optimizer, batch_size, replacement):
    """``(B, replacement)`` from an ``sf.SGD`` or from the arguments (other rules)."""
    if isinstance(optimizer, sf.SGD):
        own = None if isinstance(optimizer.batch_size, sp.Basic) else optimizer.batch_size
        if batch_size is not None and own is not None and int(batch_size) != own:
            raise SymflowError(f"got batch_size={batch_size} and {optimizer!r}; give one")
        batch_size = own if batch_size is None else batch_size
        replacement = optimizer.replacement if replacement is None else replacement
    if batch_size is None:
        raise SymflowError(f"got {optimizer!r} with no batch size; pass batch_size=B (the "
                           "samples per step)")
    if replacement is None:
        replacement = True
    if not isinstance(replacement, bool):
        raise SymflowError(f"got replacement={replacement!r}; pass True or False")
    return batch_size, replacement


def check_batch_size(batch_size, n_samples) -> int:
    """A whole batch size in ``1..N``."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or \
            batch_size < 1:
        raise SymflowError(f"got batch_size={batch_size!r}; give a whole number of samples "
                           "per step, at least 1")
    if batch_size > n_samples:
        raise SymflowError(f"got batch_size={batch_size} for a dataset of N={n_samples} "
                           f"samples; a minibatch holds at most N samples: choose batch_size "
                           f"<= {n_samples}")
    return int(batch_size)


def draw_batches(key, n, n_samples, batch_size, replacement=False):
    """``(n, batch_size)`` sample indices, one minibatch per path: uniform with replacement,
    or without (Floyd's algorithm up to :data:`FLOYD_MAX_BATCH`, else the ``batch_size``
    smallest of ``n_samples`` uniform keys), as :func:`solvers.run_sgd` draws them."""
    if replacement:
        return jax.random.randint(key, (n, batch_size), 0, n_samples)
    if batch_size == n_samples:
        return jnp.broadcast_to(jnp.arange(n_samples), (n, n_samples))
    if batch_size <= FLOYD_MAX_BATCH:
        return floyd_sample(key, n, n_samples, batch_size)
    return jax.lax.top_k(-jax.random.uniform(key, (n, n_samples)), batch_size)[1]


__all__ = ["NetworkData", "check_batch_size", "draw_batches"]
