r"""Standard normals for the fixed-step ensembles: unrolled Threefry bits, AS241 quantiles.

The normals of step :math:`k` of a chunk with key :math:`\kappa`, noise row :math:`r` and
path :math:`j` are

.. math::

    \kappa_k = T_{\kappa}(0, k), \qquad \kappa_{k,r} = T_{\kappa_k}(0, r), \qquad
    b = T_{\kappa_{k,r}}(0, j), \qquad
    z = \Phi^{-1}\bigl((\lfloor b / 2^{12}\rfloor + \tfrac12)\,2^{-52}\bigr),

with :math:`T` the Threefry-2x32 hash (20 rounds; Salmon, Moraes, Dror & Shaw, *Parallel
random numbers: as easy as 1, 2, 3*, SC 2011) and :math:`b` its two 32-bit words as one
64-bit integer. :math:`\kappa_k`, :math:`\kappa_{k,r}` and :math:`b` are exactly JAX's
partitionable ``fold_in(key, k)``, ``split(., m)[r]`` and ``bits(., (n,), uint64)[j]``,
and the 52 kept bits are those ``jax.random.uniform`` uses; the uniform is placed at the
middle of its cell, so :math:`p \in [2^{-53}, 1 - 2^{-53}]` and :math:`z(1-p) = -z(p)`
exactly. :math:`\Phi^{-1}` is Wichura's algorithm AS241 (PPND16, *Applied Statistics* 37,
1988), relative error about :math:`10^{-16}`: a rational function of :math:`q^2` in the
centre (:math:`|p - \tfrac12| \le 0.425`) and of :math:`\sqrt{-\log\min(p, 1-p)}` in the
tails.

Why not ``jax.random.normal``: on CPU JAX keeps the 20 Threefry rounds in a rolled loop
(a loop of separate kernels per draw) and maps the uniform through XLA's float64
:math:`\operatorname{erf}^{-1}`; unrolled rounds fuse with the rest of the step, and AS241
costs about two thirds of that :math:`\operatorname{erf}^{-1}`. Path :math:`j`'s draws
depend on :math:`j` only, not on the number of paths, the padding or the devices.

Example::

    >>> import jax, numpy as np
    >>> from scipy.special import ndtri
    >>> key = jax.random.key(0)
    >>> z = normal_rows(key, 3, 5, 2)
    >>> keys = jax.random.split(jax.random.fold_in(key, 3), 2)
    >>> bits = np.stack([jax.random.bits(k, (5,), np.uint64) for k in keys])
    >>> p = ((bits >> np.uint64(12)).astype(float) + 0.5) * 2.0**-52
    >>> bool(np.allclose(z, ndtri(p), rtol=1e-14, atol=0))
    True
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))

# AS241 (Wichura 1988): numerator and denominator coefficients, lowest degree first.
_CENTRAL = (
    (3.3871328727963666080e0, 1.3314166789178437745e2, 1.9715909503065514427e3,
     1.3731693765509461125e4, 4.5921953931549871457e4, 6.7265770927008700853e4,
     3.3430575583588128105e4, 2.5090809287301226727e3),
    (1.0, 4.2313330701600911252e1, 6.8718700749205790830e2, 5.3941960214247511077e3,
     2.1213794301586595867e4, 3.9307895800092710610e4, 2.8729085735721942674e4,
     5.2264952788528545610e3))
_NEAR_TAIL = (
    (1.42343711074968357734e0, 4.63033784615654529590e0, 5.76949722146069140550e0,
     3.64784832476320460504e0, 1.27045825245236838258e0, 2.41780725177450611770e-1,
     2.27238449892691845833e-2, 7.74545014278341407640e-4),
    (1.0, 2.05319162663775882187e0, 1.67638483018380384940e0, 6.89767334985100004550e-1,
     1.48103976427480074590e-1, 1.51986665636164571966e-2, 5.47593808499534494600e-4,
     1.05075007164441684324e-9))
_FAR_TAIL = (
    (6.65790464350110377720e0, 5.46378491116411436990e0, 1.78482653991729133580e0,
     2.96560571828504891230e-1, 2.65321895265761230930e-2, 1.24266094738807843860e-3,
     2.71155556874348757815e-5, 2.01033439929228813265e-7),
    (1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1, 1.48753612908506148525e-2,
     7.86869131145613259100e-4, 1.84631831751005468180e-5, 1.42151175831644588870e-7,
     2.04426310338993978564e-15))


def threefry2x32(k1, k2, x1, x2):
    """The Threefry-2x32 hash (20 rounds) of the counters ``(x1, x2)`` under the key
    ``(k1, k2)``, on broadcastable ``uint32`` arrays, with the rounds unrolled."""
    u32 = jnp.uint32
    keys = (k1, k2, k1 ^ k2 ^ u32(0x1BD11BDA))
    x1, x2 = x1 + k1, x2 + k2
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x1 = x1 + x2
            x2 = x1 ^ ((x2 << u32(r)) | (x2 >> u32(32 - r)))
        x1 = x1 + keys[(i + 1) % 3]
        x2 = x2 + keys[(i + 2) % 3] + u32(i + 1)
    return x1, x2


def _rational(coeffs, x):
    num, den = (c[-1] for c in coeffs)
    for a, b in zip(coeffs[0][-2::-1], coeffs[1][-2::-1]):
        num, den = num * x + a, den * x + b
    return num / den


def normal_quantile(p):
    r""":math:`\Phi^{-1}(p)` for ``0 < p < 1`` (float64 arrays), by AS241."""
    q = p - 0.5
    centre = q * _rational(_CENTRAL, 0.180625 - q * q)
    r = jnp.sqrt(-jnp.log(jnp.minimum(p, 1.0 - p)))
    tail = jnp.where(r <= 5.0, _rational(_NEAR_TAIL, r - 1.6), _rational(_FAR_TAIL, r - 5.0))
    return jnp.where(jnp.abs(q) <= 0.425, centre, jnp.where(q < 0, -tail, tail))


def normal_rows(key, step, n, m):
    """Standard normals ``(m, n)`` (float64) for step ``step`` of the chunk key ``key``."""
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    data = jax.random.key_data(key) if typed else key
    if data.shape != (2,) or (typed and str(jax.random.key_impl(key)) != "threefry2x32"):
        keys = jax.random.split(jax.random.fold_in(key, step), m)  # another PRNG: its own
        return jax.vmap(lambda k: jax.random.normal(k, (n,), dtype=jnp.float64))(keys)
    u32 = jnp.uint32
    s1, s2 = threefry2x32(data[0], data[1], u32(0), jnp.asarray(step).astype(u32))
    r1, r2 = threefry2x32(s1, s2, jnp.zeros((m, 1), u32), jnp.arange(m, dtype=u32)[:, None])
    cols = jnp.arange(n, dtype=u32)[None, :]
    b1, b2 = threefry2x32(r1, r2, jnp.zeros_like(cols), cols)
    top = (b1.astype(jnp.uint64) << jnp.uint64(20)) | (b2 >> u32(12)).astype(jnp.uint64)
    return normal_quantile((top.astype(jnp.float64) + 0.5) * 2.0**-52)


__all__ = ["normal_quantile", "normal_rows", "threefry2x32"]
