r"""Stochastic modified equations of optimizers with memory (momentum, moment estimates).

**Fixed hyperparameters** (:func:`relaxed_memory_sme`, order 1). The memory relaxes
geometrically, :math:`m_{n+1} = P m_n + \dots`, so on the time scale :math:`t = nh` it sits on
its invariant manifold and the drift is the reduced flow of
:func:`symflow.modified_equation` (heavy ball: :math:`-\nabla L/(1-\beta)`). The noise of
each step passes the memory's linear filter; over the many steps of one unit of :math:`t` the
increments of :math:`\theta` add up with the filter's zero-frequency gain

.. math::

    R = \lim_{h\to0}\frac1h\Bigl(\partial_g A + \partial_m A\,(I - \partial_m B)^{-1}
        \partial_g B\Bigr),\qquad \theta_{n+1} - \theta_n = A,\ m_{n+1} = B,

derived from the symbolic map (heavy ball: :math:`R = -I/(1-\beta)`). The SDE is
:math:`d\Theta = b\,dt + \sqrt{h\,c}\,(-R)\,G\,dW` with :math:`GG^\top = \Sigma_1`. Rules
nonlinear in the gradient (RMSprop, Adam at fixed betas) are refused: their
preconditioner averages :math:`g^2` over :math:`1/(1-\beta)` steps and fluctuates at
:math:`O(1)`, so no SDE on :math:`\theta` alone has a closed form.

**Slow memory** (:func:`slow_memory_sme`). The whole state :math:`z = (\theta, m)` moves by
:math:`O(\text{step})` and the moment matching of :func:`symflow.sme` runs on :math:`z`:

* heavy ball / Nesterov with :math:`1-\beta = c\sqrt h` in :math:`u = v/\sqrt h`,
  :math:`s = n\sqrt h` (the optimizer's :meth:`state_rule`): :math:`d\theta = u\,ds`,
  :math:`du = -(cu + \nabla L)\,ds + h^{1/4}\sqrt{c_{N,B}}\,\Sigma_1^{1/2}\,dW`, underdamped
  Langevin dynamics (momentum SGD in the scaling where it is a second-order SDE; cf. Li,
  Tai & E, JMLR 20, 2019, section 5);
* RMSprop and Adam in the scaling of Malladi, Lyu, Panigrahi & Arora, *On the SDEs and
  scaling rules for adaptive gradient algorithms*, NeurIPS 2022, Theorems 4.2 and 4.5:
  :math:`1-\beta_i = c_i h^2`, :math:`\epsilon = \epsilon_0/h`, noise
  :math:`\sigma_0 = h\sqrt{c_{N,B}}` held fixed, :math:`u = v/c_{N,B}`, time
  :math:`t = nh^2`. The engine finds their SDEs, e.g. for RMSprop
  :math:`d\theta = -P^{-1}(\nabla L\,dt + \sigma_0\Sigma_1^{1/2}dW)`,
  :math:`du = c_2(\operatorname{diag}\Sigma_1 - u)\,dt`,
  :math:`P = \sigma_0\operatorname{diag}(u)^{1/2} + \epsilon_0`.
"""

from __future__ import annotations

import sympy as sp

from .._core._errors import SymflowError
from .._core._guard import as_sympy
from .._core._symbols import h
from .._engine._modified import modified_equation
from ..optimizers import Adam, RMSprop
from ._increment_moments import GradientNoise, map_increment_moments, symbolic_jets
from ._moment_matching import match_moments
from ._sde import SDE, _entries_equal, expanded_product, factor_covariance

#: :math:`\sigma_0` of Malladi et al.'s scaling (stands for :math:`h\sqrt{c_{N,B}}`).
sigma0 = sp.Symbol("sigma_0", positive=True)


def linear_noise_factor(moments, noise: GradientNoise, step, time_power, covariance,
                        params=None, base_covariance=None):
    r"""``(sigma, D)``: a factor :math:`\sigma` with :math:`\sigma\sigma^\top = D`, without a
    matrix root.

    Where the lowest noisy increment is :math:`\epsilon^k R\,\xi(\theta)`, :math:`D` leads
    with :math:`\epsilon^{2k-q}c\,R\Sigma_1R^\top` and :math:`\sigma =
    \sqrt{\epsilon^{2k-q}c}\,(-R)\,G` (the sign makes :math:`dW` follow the descent
    direction, so SGD's factor is :math:`+\sqrt{hc}\,G`). Checked exactly against the
    matched ``covariance``, which is then written as :math:`\epsilon^{2k-q}c\,R\Sigma_1R^\top`
    (``base_covariance`` is :math:`\Sigma_1`); otherwise the rank-revealing Cholesky factor
    of the matched :math:`D`.
    """
    if moments.jets is not None:
        return _linear_noise_factor_jets(moments, noise, step, time_power, covariance, params,
                                         base_covariance)
    covariance = sp.Matrix(covariance)
    for k, lin in enumerate(moments.noise_linear):
        if lin is None:
            break
        if lin.is_zero_matrix:
            continue
        power = step**(2 * k - time_power) * noise.scale
        sigma = (sp.sqrt(power) * (-lin) * noise.factor).applyfunc(sp.expand)
        base = (noise.factor * noise.factor.T if base_covariance is None
                else sp.Matrix(base_covariance))
        structured = (power * lin * base * lin.T).applyfunc(sp.expand)
        if _entries_equal(structured, covariance):
            return sigma, structured
        break
    if covariance.is_zero_matrix:
        return sp.zeros(covariance.shape[0], 1), covariance
    return (factor_covariance(covariance, params or moments.coords, "SME diffusion matrix"),
            covariance)


def _linear_noise_factor_jets(moments, noise, step, time_power, covariance, params,
                              base_covariance):
    """:func:`linear_noise_factor` for moments in symbolic jets: the structure is checked
    on the symbols (a polynomial identity, exact), the values are put in afterwards; when
    the symbols do not show it, the check runs on the values as before."""
    jets = moments.jets
    dim = len(noise.params)
    zero = (0,) * dim
    pairs = sp.Matrix(dim, dim, lambda i, j: jets.pair(i, zero, j, zero))
    for k, lin in enumerate(moments.noise_linear):
        if lin is None:
            break
        if lin.is_zero_matrix:
            continue
        power = step**(2 * k - time_power)
        symbolic = (power * expanded_product(lin, pairs, lin.T) - covariance).applyfunc(sp.expand)
        if not symbolic.is_zero_matrix:
            break
        lin = jets.substitute(lin).applyfunc(sp.expand)
        sigma = expanded_product(sp.sqrt(power * noise.scale) * (-lin), noise.factor)
        if base_covariance is None:   # c G G^T: the pair moments, already expanded
            return sigma, expanded_product(power * lin, jets.substitute(pairs), lin.T)
        return sigma, expanded_product(power * noise.scale * lin, sp.Matrix(base_covariance), lin.T)
    values = moments.substituted()
    return linear_noise_factor(values, noise, step, time_power,
                               jets.substitute(sp.Matrix(covariance)).applyfunc(sp.expand),
                               params, base_covariance)


def memory_sme(optimizer, noise, mean_loss, params, order, hyper):
    """Dispatch: slow memory -> the whole state; fixed hyperparameters -> the manifold."""
    if isinstance(optimizer, (RMSprop, Adam)):
        return _adaptive(optimizer, noise, params, order)
    rule = optimizer.state_rule(params)
    if _is_slow(optimizer, params, rule):
        return slow_memory_sme(optimizer, noise, params, order, rule)
    return relaxed_memory_sme(optimizer, noise, mean_loss, params, order, hyper)


def _constant_oracle(dim):
    q = [sp.Dummy(f"q{i}") for i in range(dim)]
    return q, (lambda point: sp.Matrix(q))


def _is_slow(optimizer, params, rule):
    dim = len(params)
    memory = sp.Matrix([sp.Dummy(f"m{k}") for k in range(len(rule.names))])
    _, oracle = _constant_oracle(dim)
    nxt, mem = rule.rule(sp.Matrix(params), memory, oracle, rule.step)
    jumps = list(sp.Matrix(nxt) - sp.Matrix(params)) + list(sp.Matrix(mem) - memory)
    return all(sp.simplify(as_sympy(j).subs(rule.step, 0)) == 0 for j in jumps)


def relaxed_memory_sme(optimizer, noise, mean_loss, params, order, hyper) -> SDE:
    r"""Order-1 SME on :math:`\theta` of a memory rule with fixed hyperparameters.

    Example (heavy ball: time runs :math:`1/(1-\beta)` times faster, the noise too)::

        >>> import sympy as sp, symflow as sf
        >>> w, beta = sp.Symbol("w"), sp.Symbol("beta")
        >>> sde = sf.sme(sf.HeavyBall(beta=beta), losses=[w**2, 3*w**2], params=[w],
        ...              batch_size=1)
        >>> sp.factor(sde.drift[0]), sp.factor(sde.covariance[0, 0])
        (4*w/(beta - 1), 4*h*w**2/(beta - 1)**2)
    """
    if order != 1:
        raise SymflowError(
            f"got order={order} for {optimizer.label} with fixed hyperparameters: only the "
            "order-1 SME on theta is derived (drift: the reduced flow; noise: the memory "
            "filter's zero-frequency gain). An order-2 SME on theta would not be sound from "
            "one-step moments on the invariant manifold: the memory's fluctuation about the "
            "manifold is O(h), as large as the memory itself, so each step of theta carries "
            "the noise of the last 1/(1-beta) steps (theta alone is not Markov) and the O(h) "
            "corrections to drift and diffusion come from that memory, not from one step. "
            "For order 2 use slow memory (e.g. beta = 1 - c*sqrt(sf.h)), where the SME is on "
            "the whole state (theta, memory); for exact moments of a linear regression, "
            "symflow._stochastic._memory_moments.memory_moments")
    dim = len(params)
    size = optimizer.memory_size(dim)
    theta = sp.Matrix(params)
    memory = sp.Matrix([sp.Dummy(f"m{k}") for k in range(size)])
    q, oracle = _constant_oracle(dim)
    nxt, mem = optimizer.step_memory(theta, memory, oracle, h)
    A = (sp.Matrix(nxt) - theta).applyfunc(sp.expand)
    B = sp.Matrix(mem).applyfunc(sp.expand)
    for e in list(A) + list(B):
        if not e.is_polynomial(*q) or sp.Poly(e, *q).total_degree() > 1:
            raise SymflowError(
                f"{optimizer.label} with fixed hyperparameters is not linear in the gradient "
                f"(its step holds {e}); its memory averages a nonlinear function of the "
                "noisy gradient over 1/(1-beta) steps, which fluctuates at O(1), so there is "
                "no closed-form SDE on theta. Use the slow regime: RMSprop(rho=1 - c*sf.h**2, "
                "eps=eps0/sf.h) or Adam(beta1=1 - c1*sf.h**2, beta2=1 - c2*sf.h**2, "
                "eps=eps0/sf.h) (Malladi et al. 2022)")
    qv, mv = sp.Matrix(q), memory
    P = B.jacobian(mv)
    I = sp.eye(size)
    P0 = P.subs(h, 0)
    if (I - P0).det() == 0:
        raise SymflowError(f"the memory of {optimizer.label} does not relax (I - dB/dm is "
                           "singular at h = 0); there is no invariant manifold")
    gain = A.jacobian(qv) + A.jacobian(mv) * (I - P).inv() * B.jacobian(qv)
    gain = gain.applyfunc(lambda e: sp.factor(sp.cancel(e / h)).subs(h, 0))
    me = modified_equation(optimizer, mean_loss, params, 0, hyper=hyper)
    drift = sp.Matrix(me.terms[0]).applyfunc(sp.expand)
    sigma = (sp.sqrt(h * noise.scale) * (-gain) * noise.factor).applyfunc(sp.expand)
    cov = (sigma * sigma.T).applyfunc(sp.expand)
    return SDE(drift=drift, diffusion=sigma, params=params, covariance=cov,
               name=f"SME order 1 of {optimizer.label} (memory on its invariant manifold)")


def slow_memory_sme(optimizer, noise, params, order, rule) -> SDE:
    r"""The SME on the whole state ``(theta, memory)`` in the optimizer's slow variables.

    Example (heavy ball with :math:`1-\beta = c\sqrt h`: underdamped Langevin in
    :math:`s = n\sqrt h`)::

        >>> import sympy as sp, symflow as sf
        >>> w, c = sp.Symbol("w"), sp.Symbol("c", positive=True)
        >>> sde = sf.sme(sf.HeavyBall(beta=1 - c*sp.sqrt(sf.h)), losses=[w**2, 3*w**2],
        ...              params=[w], batch_size=1, hyper=[c])
        >>> sde.params, sde.drift.T, sde.covariance
        ((w, u_w), Matrix([[u_w, -c*u_w - 4*w]]), Matrix([
        [0,              0],
        [0, 4*sqrt(h)*w**2]]))
    """
    dim = len(params)
    memory = tuple(sp.Symbol(n, real=True) for n in rule.names)
    coords = tuple(params) + memory
    step = rule.step

    def state_rule(z, oracle):
        nxt, mem = rule.rule(z[:dim, 0], z[dim:, 0], oracle, step)
        return sp.Matrix.vstack(sp.Matrix(nxt), sp.Matrix(mem))

    where = f"{optimizer.label} on its whole state"
    moments = map_increment_moments(state_rule, coords, params, step, noise, order,
                                    second_order=2, where=where, jets=symbolic_jets())
    drift, cov = match_moments(moments, step, order, 2, where)
    sigma, cov = linear_noise_factor(moments, noise, step, 1, cov, coords)
    if moments.jets is not None:
        drift = moments.jets.substitute(drift).applyfunc(sp.expand)
    if step != h:  # back to the learning rate: step = sqrt(h) (h_value = step**2)
        back = {step: sp.sqrt(h)} if sp.expand(rule.h_value - step**2) == 0 else {}
        drift, sigma, cov = (m.xreplace(back).applyfunc(sp.expand) for m in (drift, sigma, cov))
    name = f"SME order {order} of {optimizer.label} on the whole state"
    return SDE(drift=drift, diffusion=sigma, params=coords, covariance=cov, name=name,
               time=rule.time)


def _tidy(expr):
    """A readable form at little cost: rational functions (of the state, sqrt(u), ...)
    factored; entries with the loss's transcendental functions kept as they are (SymPy's
    simplify of those takes minutes)."""
    if expr.atoms(sp.Function) or sp.count_ops(expr) > 400:
        return expr
    return sp.factor(expr)


def _one_minus(beta):
    return sp.cancel(sp.expand(1 - beta))


def _slow_coefficient(beta, name):
    """``c`` with ``1 - beta = c*h**2``, or a SymflowError naming the regime."""
    gap = _one_minus(beta)
    c2 = sp.cancel(gap / h**2)
    if gap != 0 and not c2.has(h):
        return c2
    fixed = not gap.has(h)
    if name in ("rho", "beta2"):
        why = ("the preconditioner averages squared minibatch gradients, whose mean "
               "(grad L)**2 + c_NB diag(Sigma_1) holds the noise, so at fixed beta it depends "
               "on the noise at leading order and fluctuates with the last 1/(1 - beta) "
               "minibatches: no SDE on theta with a small diffusion describes it" if fixed else
               "1 - beta = c*h makes the noise of the squared gradient enter the diffusion "
               "of v at leading order, which needs the fourth moments of the minibatch")
    else:
        why = ("Malladi et al.'s SDE needs the momentum slow as well (beta1 and beta2 both "
               "1 - c*h**2)" if fixed else "the momentum must relax on the same time as the "
               "preconditioner, 1 - beta1 = c1*h**2")
    raise SymflowError(
        f"got {name}={beta} ({'fixed' if fixed else 'not 1 - c*h**2'}): {why}. The SME of "
        "RMSprop and Adam is derived in the slow regime of Malladi, Lyu, Panigrahi & Arora "
        "(NeurIPS 2022), where the memory is part of the state: 1 - beta = c*sf.h**2 and "
        "eps = eps0/sf.h, e.g. sf.Adam(beta1=1 - c1*sf.h**2, beta2=1 - c2*sf.h**2, "
        "eps=eps0/sf.h) or sf.RMSprop(rho=1 - c*sf.h**2, eps=eps0/sf.h)")


def _adaptive(optimizer, noise, params, order) -> SDE:
    r"""RMSprop and Adam in Malladi et al.'s scaling (see the module docstring).

    Example::

        >>> import sympy as sp, symflow as sf
        >>> w = sp.Symbol("w")
        >>> c, e0 = sp.symbols("c eps0", positive=True)
        >>> sde = sf.sme(sf.RMSprop(rho=1 - c*sf.h**2, eps=e0/sf.h), losses=[w**2, 3*w**2],
        ...              params=[w], batch_size=1, hyper=[c, e0])
        >>> sde.drift.T
        Matrix([[-4*w/(eps0 + h*sqrt(u_w)), c*(-u_w + 4*w**2)]])
    """
    if order != 1:
        raise SymflowError(
            f"got order={order} for {optimizer.label} in Malladi et al.'s scaling: their SDE "
            "is a weak approximation of order 1 (pass order=1). Order 2 is not derived "
            "because it cannot be from the minibatch's mean and covariance: the state moves "
            "by O(h) of noise per step (the momentum for Adam, theta for RMSprop; t = "
            "n*h**2), so the third moment of that increment, O(h**3 E[xi**3]), enters at the "
            "order an order-2 match must fix, and E[(du)**2] holds E[xi**4]: both need the "
            "third and fourth cumulants of the minibatch gradient")
    dim = len(params)
    if isinstance(optimizer, RMSprop):
        _slow_coefficient(optimizer.rho, "rho")
        second = list(range(dim))
    else:
        _slow_coefficient(optimizer.beta2, "beta2")
        _slow_coefficient(optimizer.beta1, "beta1")
        second = list(range(dim, 2 * dim))
    size = optimizer.memory_size(dim)
    names = optimizer.memory_names(params)
    names = [("u" + n[1:]) if k in second else n for k, n in enumerate(names)]
    memory = tuple(sp.Symbol(n, real=True) for n in names)
    coords = tuple(params) + memory
    c = noise.scale
    ratio = sigma0**2 / h**2  # = c_{N,B}: v = c u
    unit = GradientNoise(params, noise.mean_gradient, noise.factor, 1)

    def state_rule(z, oracle):
        mem = sp.Matrix([z[dim + k] * (ratio if k in second else 1) for k in range(size)])
        nxt, out = optimizer.step_memory(z[:dim, 0], mem, oracle, h)
        out = sp.Matrix([out[k] / (ratio if k in second else 1) for k in range(size)])
        return sp.Matrix.vstack(sp.Matrix(nxt), out)

    where = f"{optimizer.label} in Malladi et al.'s scaling"
    moments = map_increment_moments(state_rule, coords, params, h, unit, 2, second_order=2,
                                    amplitude=sigma0 / h, where=where, jets=symbolic_jets())
    drift, cov = match_moments(moments, h**2, 2, 2, where)
    sigma, cov = linear_noise_factor(moments, unit, h, 2, cov, coords)
    back = {sigma0: h * sp.sqrt(c)}
    if moments.jets is None:
        drift = drift.xreplace(back).applyfunc(sp.simplify)
        sigma = sigma.xreplace(back).applyfunc(sp.simplify)
        cov = cov.xreplace(back).applyfunc(sp.simplify)
    else:   # factored on the symbols (cheap), then the values: c1*(grad L - m), ...
        drift = moments.jets.substitute(drift.applyfunc(sp.factor)).xreplace(back)
        drift, sigma, cov = (m.xreplace(back).applyfunc(_tidy) for m in (drift, sigma, cov))
    name = (f"SME of {optimizer.label} on the whole state (Malladi et al. 2022 scaling: "
            "1 - beta = c*h**2, eps = eps0/h, sigma_0 = h*sqrt(c_NB), v = c_NB*u)")
    return SDE(drift=drift, diffusion=sigma, params=coords, covariance=cov, name=name,
               time="t = n*h**2")


__all__ = ["linear_noise_factor", "memory_sme", "relaxed_memory_sme", "sigma0",
           "slow_memory_sme"]
