"""The exact transition operator of minibatch heavy ball on its whole state, checked against
the discrete Lyapunov equation of the same linear recursion written by hand."""

import numpy as np
import pytest
import scipy.linalg
import sympy as sp

import symflow as sf
from symflow._stochastic._memory_moments import memory_moments

w = sp.Symbol("w")
LOSSES = [(w - 1) ** 2 / 2, (w + 1) ** 2 / 2]  # gradient w -+ 1: additive noise +-1


@pytest.mark.parametrize("lr, beta", [(0.05, 0.5), (0.2, 0.9)])
def test_stationary_covariance_is_the_discrete_lyapunov_solution(lr, beta):
    """v' = beta v - h (w + xi), w' = w + v': z' = A z + b xi, P = A P A^T + b b^T."""
    K = memory_moments(sf.HeavyBall(beta=sp.nsimplify(beta)), LOSSES, [w], batch_size=1)
    v = K.params[1]
    mu = K.stationary_moments()
    a = np.array([[1 - lr, beta], [-lr, beta]])
    noise = np.array([[lr], [lr]])
    P = scipy.linalg.solve_discrete_lyapunov(a, noise @ noise.T)
    got = [float(mu[m].subs(sf.h, lr)) for m in (w**2, w * v, v**2)]
    np.testing.assert_allclose(got, [P[0, 0], P[0, 1], P[1, 1]], rtol=1e-12)


def test_refusals():
    extra = sf.Custom(update=lambda t, g, h: t - h * g(t - h * g(t)))
    with pytest.raises(sf.SymflowError, match="2 gradients"):
        memory_moments(extra, LOSSES, [w], batch_size=1)
    with pytest.raises(sf.SymflowError, match="not affine in the gradient"):
        memory_moments(sf.RMSprop(rho=0.9, eps=0.1), LOSSES, [w], batch_size=1)
    with pytest.raises(sf.SymflowError, match="does not close"):
        memory_moments(sf.HeavyBall(beta=0.5), [(w - 1) ** 4, w**2], [w], batch_size=1)
