r"""Sharpness :math:`\lambda_{\max}(\nabla^2 L)` of a JAX model by power iteration on Hessian-vector products.

The modified-equation series is an expansion in :math:`h\lambda`; it describes gradient
descent only while :math:`h\,\lambda_{\max} \ll 2` (gradient descent is unstable beyond 2:
Cohen et al., *Gradient descent on neural networks typically occurs at the edge of
stability*, ICLR 2021). Power iteration :math:`v \leftarrow Hv/\lVert Hv\rVert` with
forward-over-reverse products never forms the Hessian; it returns the eigenvalue of largest
magnitude (the top one near a minimum) as the Rayleigh quotient :math:`v^\top H v`.

Example::

    >>> import jax.numpy as jnp, solvers as sv
    >>> loss = lambda p, batch: 0.5 * (3.0 * p[0] ** 2 + p[1] ** 2)
    >>> round(sv.sharpness(loss, jnp.array([0.3, -1.0]), None), 6)
    3.0
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from symflow import SymflowError

from ._tree_eval import check_loss_fn, check_params, split_model


@functools.lru_cache(maxsize=32)
def _power(loss_fn):
    """Jitted power iteration for ``loss_fn`` (the number of iterations is a run-time input)."""
    def run(params, batch, v0, iters):
        flat, unravel = ravel_pytree(params)
        grad = lambda p: ravel_pytree(jax.grad(loss_fn)(unravel(p), batch))[0]  # noqa: E731
        hvp = lambda v: jax.jvp(grad, (flat,), (v,))[1]  # noqa: E731

        def body(_, v):
            w = hvp(v)
            norm = jnp.linalg.norm(w)
            return w / jnp.where(norm > 0, norm, 1.0)  # H v = 0: stays 0 (sharpness 0)

        v = jax.lax.fori_loop(0, iters, body, v0 / jnp.linalg.norm(v0))
        return v @ hvp(v)

    return jax.jit(run)


def sharpness(loss_fn, params, batch, iters: int = 100, seed: int = 0) -> float:
    """The Hessian eigenvalue of largest magnitude at ``params`` (power iteration, ``iters`` steps)."""
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise SymflowError(f"got iters={iters!r}; give a positive number of power iterations")
    loss_fn, params = split_model(loss_fn, params)
    params = check_params(params)
    check_loss_fn(loss_fn, params, batch)
    size = ravel_pytree(params)[0].size
    v0 = jnp.asarray(np.random.default_rng(seed).normal(size=size))
    return float(_power(loss_fn)(params, batch, v0, iters))
