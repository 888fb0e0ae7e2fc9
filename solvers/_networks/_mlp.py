r"""A small multilayer perceptron and a generated dataset, for network-scale checks.

The dataset is generated (no download, no extra dependency): :math:`n` inputs drawn
uniformly from :math:`[-1, 1]^{d}` with the smooth target
:math:`y = \sin(2x_1)\cos(x_2) + \tfrac12 x_1 x_2 + \sigma\,\xi` (:math:`\xi` standard normal).
The network is a tanh MLP with the loss :math:`L(\theta) = \frac1{2n}\sum_i \lVert f_\theta(x_i)
- y_i\rVert^2`; parameters are a list of ``{"W": ..., "b": ...}`` dicts (a pytree),
initialised with variance :math:`1/\text{fan-in}`.

Example::

    >>> import solvers as sv
    >>> params = sv.mlp_init([2, 32, 32, 1], seed=0)
    >>> sv.count_params(params)
    1185
    >>> batch = sv.toy_regression(64, seed=0)
    >>> round(float(sv.mse_loss(params, batch)), 3)
    0.368
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from symflow import SymflowError


def mlp_init(sizes, seed: int = 0) -> list:
    """Parameters of a tanh MLP with layer widths ``sizes`` (inputs first, outputs last)."""
    sizes = list(sizes)
    if len(sizes) < 2 or any(not isinstance(s, (int, np.integer)) or s < 1 for s in sizes):
        raise SymflowError(f"got sizes={sizes}; give at least two positive layer widths, "
                           "e.g. [2, 32, 32, 1]")
    rng = np.random.default_rng(seed)
    return [{"W": jnp.asarray(rng.normal(size=(a, b)) / np.sqrt(a)),
             "b": jnp.asarray(0.1 * rng.normal(size=b))}
            for a, b in zip(sizes[:-1], sizes[1:])]


def mlp_apply(params, x):
    """The network's outputs for inputs ``x`` of shape ``(n, sizes[0])``."""
    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["W"] + layer["b"])
    return x @ params[-1]["W"] + params[-1]["b"]


def mse_loss(params, batch):
    r""":math:`\frac1{2n}\sum_i \lVert f_\theta(x_i) - y_i\rVert^2` for ``batch = (x, y)``."""
    x, y = batch
    return 0.5 * jnp.mean(jnp.sum((mlp_apply(params, x) - y) ** 2, axis=-1))


def count_params(params) -> int:
    """Number of scalar parameters in a pytree."""
    return int(sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(params)))


def toy_regression(n: int = 128, dim: int = 2, noise: float = 0.1, seed: int = 0):
    """``(x, y)``: ``n`` generated samples of a smooth target in ``dim`` inputs (see module doc)."""
    if not isinstance(n, (int, np.integer)) or n < 1 or not isinstance(dim, (int, np.integer)) \
            or dim < 2:
        raise SymflowError(f"got n={n!r}, dim={dim!r}; need n >= 1 samples and dim >= 2 inputs")
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n, dim))
    y = np.sin(2 * x[:, :1]) * np.cos(x[:, 1:2]) + 0.5 * x[:, :1] * x[:, 1:2]
    y = y + noise * rng.normal(size=y.shape)
    return jnp.asarray(x), jnp.asarray(y)
