"""The derived factor flow of a deep linear network, compiled to JAX, against the end-to-end
formula and the singular-value dynamics at random balanced factors (to 1e-10)."""

import numpy as np
import pytest
import sympy as sp

import solvers as sv
import symflow as sf


def _psd_power(A, q):
    lam, V = np.linalg.eigh(A)
    return (V * np.clip(lam, 0, None) ** q) @ V.T


@pytest.mark.parametrize("depth", [2, 3])
def test_product_of_the_factor_flow_is_the_end_to_end_flow(depth):
    n = 3
    net = sf.deep_linear(depth=depth, shape=(n, n))
    rate = sv.vector_function(sp.Matrix(list(net.end_to_end_rate)), net.params,
                              list(net.grad_loss))
    rng = np.random.default_rng(depth)
    U = [np.linalg.qr(rng.normal(size=(n, n)))[0] for _ in range(depth + 1)]
    S = np.diag(rng.uniform(0.5, 1.5, size=n))
    factors = [U[j] @ S @ U[j - 1].T for j in range(1, depth + 1)]   # balanced
    G = rng.normal(size=(n, n))
    got = np.asarray(rate(np.concatenate([W.ravel() for W in factors]), G.ravel())).reshape(n, n)
    W = np.linalg.multi_dot(factors[::-1]) if depth > 1 else factors[0]
    N = depth
    expected = -sum(_psd_power(W @ W.T, (j - 1) / N) @ G @ _psd_power(W.T @ W, (N - j) / N)
                    for j in range(1, N + 1))
    assert np.max(np.abs(got - expected)) < 1e-10 * np.max(np.abs(expected))
    # singular values: sigma' = u^T W' v = -N sigma^(2 - 2/N) u^T G v
    u, s, vt = np.linalg.svd(W)
    rates = np.einsum("ir,ij,rj->r", u, got, vt)
    formula = -N * s ** (2 - 2 / N) * np.einsum("ir,ij,rj->r", u, G, vt)
    assert np.allclose(rates, formula, rtol=1e-10, atol=1e-12)
