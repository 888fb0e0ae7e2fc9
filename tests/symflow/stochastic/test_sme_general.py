"""sf.sme for every optimizer: moment matching, memory, scaling rules, bad input (issue 14)."""

import pytest
import sympy as sp

import symflow as sf
from symflow._stochastic._increment_moments import (
    GradientNoise,
    map_increment_moments,
    sde_increment_moments,
)
from symflow._stochastic._scaling import kappa

h = sf.h
w, x, y = sp.symbols("w x y")
LOSSES = [(x * y - 1) ** 2 / 2, (x - y) ** 2 / 2 + x**4 / 4, (x + 2 * y) ** 2 / 2]
W_LOSSES = [w**2, 3 * w**2 + w, w**4]


def extragradient():
    return sf.Custom(update=lambda th, g, hh: th - hh * g(th - hh * g(th)), name="eg")


def _zero(mat):
    return sp.Matrix(mat).applyfunc(lambda e: sp.simplify(e)).is_zero_matrix


def _map_moments(optimizer, losses, params, batch, replacement=True, top=3, second=3):
    ds = sf.Dataset(losses=losses, params=params)
    c = sf.SGD(batch_size=batch, replacement=replacement).noise_scale(ds.n_samples)
    noise = GradientNoise(params, ds.mean_gradient, ds.noise_factor, c)
    return map_increment_moments(lambda z, g: optimizer.step(z, g, h), params, params, h,
                                 noise, top, second_order=second)


@pytest.mark.parametrize("general", [False, True])
@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("replacement", [True, False])
def test_sgd_general_path_equals_closed_form(order, replacement, general):
    """The engine's SME of SGD is Li, Tai & E's: -grad(L + [h/4 |grad L|^2]), h c Sigma_1.
    ``sf.SGD`` takes the closed form; the same rule written as ``sf.Custom`` goes through
    moment matching, and both must give it."""
    ds = sf.Dataset(losses=LOSSES, params=[x, y])
    opt = sf.SGD(batch_size=2, replacement=replacement)
    if general:
        step = sf.Custom(update=lambda th, g, hh: th - hh * g(th), name="sgd")
        sde = sf.sme(step, dataset=ds, order=order, batch_size=2, replacement=replacement)
    else:
        sde = sf.sme(opt, dataset=ds, order=order)
    L = ds.mean_loss
    grad = sp.Matrix([sp.diff(L, p) for p in (x, y)])
    drift = -grad if order == 1 else sf.modified_equation(sf.GD(), L, [x, y], 1).field
    cov = h * opt.noise_scale(3) * sp.Matrix(ds.gradient_covariance)
    assert (sde.drift - drift).applyfunc(sp.expand).is_zero_matrix
    assert (sde.covariance - cov).applyfunc(sp.expand).is_zero_matrix
    assert (sde.diffusion * sde.diffusion.T - cov).applyfunc(sp.expand).is_zero_matrix


@pytest.mark.parametrize("order", [1, 2])
def test_moment_matching_is_exact_extragradient(order):
    """Substitute the derived SDE into the semigroup moment formulas: its one-step mean
    equals the map's through h^order and its second moment through h^2. At order 1 the
    next mean coefficient differs (the check can fail); at order 2 the order-1 SDE fails it."""
    opt = extragradient()
    sde = sf.sme(opt, losses=W_LOSSES, params=[w], batch_size=2, order=order)
    mp = _map_moments(opt, W_LOSSES, [w], 2, top=2, second=2)
    sd = sde_increment_moments(sde.drift, sde.covariance, [w], h, h, 2, 2)
    for k in range(order + 1):
        assert _zero(mp.mean[k] - sd.mean[k]), k
    for k in range(3):
        assert _zero(mp.second[k] - sd.second[k]), k
    lower = sde if order == 1 else sf.sme(opt, losses=W_LOSSES, params=[w], batch_size=2)
    low = sde_increment_moments(lower.drift, lower.covariance, [w], h, h, 2, 2)
    assert not _zero(mp.mean[2] - low.mean[2])


def test_extragradient_noise_induced_drift():
    """Extragradient's order-2 SME = its deterministic modified flow + h E[(grad xi) xi];
    with l_i = a_i w^2 / 2 the noise term is h c Var(a) w."""
    a = [1, 3, 5]
    losses = [ai * w**2 / 2 for ai in a]
    mean = sp.Rational(sum(a), len(a))
    var = sum((ai - mean)**2 for ai in a) / len(a)
    c = sf.SGD(batch_size=1).noise_scale(len(a))
    sde = sf.sme(extragradient(), losses=losses, params=[w], batch_size=1, order=2)
    me = sf.modified_equation(extragradient(), mean * w**2 / 2, [w], 1)
    assert sp.expand(sde.drift[0] - me.field[0] - h * c * var * w) == 0
    assert sde.potential is not None
    assert sp.expand(sp.diff(sde.potential, w) + sde.drift[0]) == 0


def test_without_replacement_and_full_batch():
    opt = extragradient()
    full = sf.sme(opt, losses=W_LOSSES, params=[w], batch_size=3, replacement=False)
    assert full.is_deterministic                           # B = N without replacement
    half = sf.sme(opt, losses=W_LOSSES, params=[w], batch_size=2, replacement=False)
    withr = sf.sme(opt, losses=W_LOSSES, params=[w], batch_size=2)
    # c_{3,2} = 1/4 without replacement against 1/2 with
    assert sp.expand(half.covariance[0, 0] * 2 - withr.covariance[0, 0]) == 0


def test_heavy_ball_fixed_beta_time_scale_and_noise():
    """Heavy ball with fixed beta: drift -grad L/(1-beta), D = h c Sigma_1/(1-beta)^2, and
    the SDE's stationary variance on a quadratic is heavy ball's exact one to leading order."""
    beta = sp.Symbol("beta", positive=True)
    losses = [(w - 1) ** 2 / 2, (w + 1) ** 2 / 2]           # L = (w^2 + 1)/2, Sigma_1 = 1
    sde = sf.sme(sf.HeavyBall(beta=beta), losses=losses, params=[w], batch_size=1)
    assert sp.simplify(sde.drift[0] + w / (1 - beta)) == 0
    assert sp.simplify(sde.covariance[0, 0] - h / (1 - beta) ** 2) == 0
    # SDE stationary variance: D / (2 a) with a = 1/(1-beta)
    var_sde = sp.simplify(sde.covariance[0, 0] / (2 / (1 - beta)))
    # heavy ball: v' = beta v - h (w + xi), w' = w + v'; stationary covariance (Lyapunov)
    vw, vv, cw = sp.symbols("vw vv cw")
    A = sp.Matrix([[1 - h, beta], [-h, beta]])                # (w, v) -> mean map
    S = sp.Matrix([[vw, cw], [cw, vv]])
    noise = sp.Matrix([[h**2, h**2], [h**2, h**2]])           # (-h xi, -h xi), Var xi = 1
    sol = sp.solve(list(A * S * A.T + noise - S), [vw, vv, cw], dict=True)[0]
    var_hb = sp.simplify(sol[vw])
    assert sp.simplify(sp.limit(var_hb / var_sde, h, 0)) == 1


def test_nesterov_and_custom_memory_share_heavy_ball_noise():
    beta = sp.Rational(1, 2)
    hb = sf.sme(sf.HeavyBall(beta=beta), losses=W_LOSSES, params=[w], batch_size=1)
    nag = sf.sme(sf.Nesterov(beta=beta), losses=W_LOSSES, params=[w], batch_size=1)
    assert hb == nag                                   # same leading drift and gain 1/(1-beta)


def test_slow_heavy_ball_is_underdamped_langevin():
    c = sp.Symbol("c", positive=True)
    losses = [(w - 1) ** 2 / 2, (w + 1) ** 2 / 2]
    sde = sf.sme(sf.HeavyBall(beta=1 - c * sp.sqrt(h)), losses=losses, params=[w],
                 batch_size=1, hyper=[c])
    u = sde.params[1]
    assert sde.drift.T == sp.Matrix([[u, -c * u - w]])
    assert sde.covariance == sp.Matrix([[0, 0], [0, sp.sqrt(h)]])


def test_slow_heavy_ball_fokker_planck_gibbs_in_energy():
    """Underdamped Langevin: p = exp(-(L + u^2/2)/T)/Z, T = D_uu/(2c), and FP(p) = 0."""
    c = sp.Symbol("c", positive=True)
    losses = [(w - 1) ** 2 / 2 + w**4, (w + 1) ** 2 / 2 + w**4]   # constant noise
    sde = sf.sme(sf.HeavyBall(beta=1 - c * sp.sqrt(h)), losses=losses, params=[w],
                 batch_size=1, hyper=[c])
    u = sde.params[1]
    fp = sf.fokker_planck(sde)
    dens = fp.stationary_density()
    temp = sde.covariance[1, 1] / (2 * c)
    assert sp.simplify(dens.temperature - temp) == 0
    loss = sf.Dataset(losses=losses, params=[w]).mean_loss
    assert sp.simplify(sp.diff(dens.potential - (loss + u**2 / 2) / temp, w)) == 0
    assert sp.simplify(fp.operator(dens.unnormalized)) == 0
    noisy = sf.sme(sf.HeavyBall(beta=1 - c * sp.sqrt(h)), losses=[w**2, w**4], params=[w],
                   batch_size=1, hyper=[c])                   # state-dependent noise
    with pytest.raises(sf.SymflowError, match="isotropic"):
        sf.fokker_planck(noisy).stationary_density()


def test_malladi_rmsprop_sde():
    """Malladi et al. (2022) Thm 4.2: d theta = -P^{-1}(grad L dt + sigma0 Sigma^{1/2} dW),
    du = c (diag Sigma - u) dt, P = sigma0 sqrt(u) + eps0, sigma0 = h sqrt(c_NB)."""
    c, e0 = sp.symbols("c eps0", positive=True)
    ds = sf.Dataset(losses=W_LOSSES, params=[w])
    sde = sf.sme(sf.RMSprop(rho=1 - c * h**2, eps=e0 / h), dataset=ds, batch_size=2,
                 hyper=[c, e0])
    u = sde.params[1]
    s0 = h * sp.sqrt(sp.Rational(1, 2))
    P = s0 * sp.sqrt(u) + e0
    sig = ds.gradient_covariance[0, 0]
    expected_drift = sp.Matrix([-ds.mean_gradient[0] / P, c * (sig - u)])
    assert _zero(sde.drift - expected_drift)
    assert _zero(sde.covariance - sp.Matrix([[s0**2 * sig / P**2, 0], [0, 0]]))


def test_malladi_adam_sde():
    """Malladi et al. (2022) Thm 4.5 without bias correction: d theta = -P^{-1} m dt,
    dm = c1 (grad L - m) dt + sigma0 c1 Sigma^{1/2} dW, du = c2 (diag Sigma - u) dt."""
    c1, c2, e0 = sp.symbols("c1 c2 eps0", positive=True)
    ds = sf.Dataset(losses=W_LOSSES, params=[w])
    adam = sf.Adam(beta1=1 - c1 * h**2, beta2=1 - c2 * h**2, eps=e0 / h,
                   bias_correction=False)
    sde = sf.sme(adam, dataset=ds, batch_size=1, hyper=[c1, c2, e0])
    _, m, u = sde.params
    sig = ds.gradient_covariance[0, 0]
    P = h * sp.sqrt(u) + e0                                  # sigma0 = h sqrt(1/B), B = 1
    assert _zero(sde.drift - sp.Matrix([-m / P, c1 * (ds.mean_gradient[0] - m),
                                        c2 * (sig - u)]))
    expected = sp.zeros(3, 3)
    expected[1, 1] = h**2 * c1**2 * sig
    assert _zero(sde.covariance - expected)


def test_scaling_rule_sgd_linear_and_exact():
    rule = sf.scaling_rule(sf.SGD(batch_size=1), losses=W_LOSSES, params=[w])
    assert rule.mapping == {h: kappa * h}
    assert _zero(rule.scaled.covariance - rule.sde.covariance)
    assert "h -> h*kappa" in str(rule) and "h" in rule.latex()


def test_scaling_rule_rmsprop_square_root():
    c, e0 = sp.symbols("c eps0", positive=True)
    rule = sf.scaling_rule(sf.RMSprop(rho=1 - c * h**2, eps=e0 / h), losses=W_LOSSES,
                           params=[w], hyper=[c, e0])
    assert sp.simplify(rule.mapping[h] - sp.sqrt(kappa) * h) == 0
    assert rule.changes["1 - rho"] == "kappa*(1 - rho)"
    assert rule.changes["eps"] == "eps/sqrt(kappa)"
    assert _zero(rule.scaled.drift - rule.sde.drift)
    assert _zero(rule.scaled.covariance - rule.sde.covariance)


@pytest.mark.parametrize("call, match", [
    (lambda: sf.sme(sf.GD(), losses=W_LOSSES, params=[w]), "no gradient noise"),
    (lambda: sf.sgd_moments(extragradient(), losses=W_LOSSES, params=[w]), "linear"),
    (lambda: sf.sme(extragradient(), losses=W_LOSSES, params=[w]), "no noise source"),
    (lambda: sf.sme(sf.AdaGrad(eps=1), losses=W_LOSSES, params=[w], batch_size=1),
     "never forgets"),
    (lambda: sf.sme(extragradient(), losses=W_LOSSES, params=[w], batch_size=1, order=3),
     "order 1 or 2"),
    (lambda: sf.sme(extragradient(), losses=W_LOSSES, params=[w], batch_size=4),
     "at most N"),
    (lambda: sf.sme(sf.SGD(batch_size=4), losses=W_LOSSES, params=[w]), "at most N"),
    (lambda: sf.sme(sf.SGD(batch_size=2), losses=W_LOSSES, params=[w], batch_size=3),
     "once"),
    (lambda: sf.sme(sf.HeavyBall(beta=sp.Rational(1, 2)), losses=W_LOSSES, params=[w],
                    batch_size=1, order=2), "order 2"),
    (lambda: sf.sme(sf.Adam(beta1=0.9, beta2=0.99, eps=1), losses=W_LOSSES, params=[w],
                    batch_size=1), "Malladi"),
    (lambda: sf.sme(sf.Adam(beta1=0.9, beta2=0.99, eps=1), losses=W_LOSSES, params=[w],
                    batch_size=1), r"squared minibatch gradients.*1 - beta = c\*sf.h\*\*2"),
    (lambda: sf.sme(sf.RMSprop(rho=1 - h, eps=1), losses=W_LOSSES, params=[w],
                    batch_size=1), "fourth moments"),
    (lambda: sf.sme(sf.Adam(beta1=1 - h**2, beta2=1 - h**2, eps=1 / h), losses=W_LOSSES,
                    params=[w], batch_size=1, order=2), "third and fourth cumulants"),
    (lambda: sf.sme(sf.HeavyBall(beta=sp.Rational(1, 2)), losses=W_LOSSES, params=[w],
                    batch_size=1, order=2), "not Markov"),
    (lambda: sf.sme(sf.Custom(update=lambda th, g, hh: th - hh * g(th) ** 3), losses=W_LOSSES,
                    params=[w], batch_size=1), "third"),
    (lambda: sf.sme(sf.Custom(update=lambda th, g, hh: th - hh * g(th + sp.Matrix([1]))), losses=W_LOSSES,
                    params=[w], batch_size=1), "consistent"),
])
def test_bad_input(call, match):
    """Each bad input gets a SymflowError that names it."""
    with pytest.raises(sf.SymflowError, match=match):
        call()
