"""Reduced flows of optimizers with memory, checked by residuals and independent derivations.

Nothing here compares printed forms or pastes the engine's coefficients: every expected
value is derived in the test, by a route that does not use the invariant-manifold
reduction (an ansatz substituted into the two-step recurrence, the exact characteristic
root on a quadratic, history sums of the moment averages).
"""

import pytest
import sympy as sp

import symflow as sf

h = sf.h
x, y = sp.symbols("x y")
beta = sp.Symbol("beta")
R = sp.Rational
POLY = (x * y - 1) ** 2 / 2
NONPOLY = sp.log(1 + sp.exp(x * y)) + (x - y) ** 2 / 4


def zero(expr) -> bool:
    return sp.simplify(expr) == 0


def zero_matrix(mat) -> bool:
    return all(zero(e) for e in mat)


def grad_hess(loss, params):
    g = sp.Matrix([sp.diff(loss, p) for p in params])
    return g, sp.hessian(loss, params)


def h_coefficients(expr, n):
    expr = sp.expand(expr)
    return [expr.coeff(h, k) for k in range(n + 1)]


# -- first-order coefficients by an ansatz in the recurrences (Kovachki & Stuart 2021) ----

def ansatz_coefficients(recurrence):
    r"""Solve :math:`\dot x = a\,G + h\,b\,G'G` for ``a, b`` from a recurrence's residual.

    ``recurrence(shift, grad_at)`` returns the residual of one step, given
    ``shift(s)`` :math:`= x(t + s)` along the ansatz flow (Taylor to :math:`s^2`) and
    ``grad_at(point)`` :math:`= G(\text{point})` (Taylor to second order). 1-D, any G.
    """
    a, b, t = sp.symbols("a b t")
    G = sp.Function("G")(t)
    f = a * G + h * b * sp.diff(G, t) * G

    def shift(s):
        first = f
        return t + s * first + s**2 / 2 * sp.diff(first, t) * f

    def grad_at(point):
        d = sp.expand(point - t)
        return sum(sp.diff(G, t, k) * d**k / sp.factorial(k) for k in range(3))

    c = h_coefficients(recurrence(t, shift, grad_at), 2)
    (a_val,) = sp.solve(c[1], a)
    (b_val,) = sp.solve(sp.expand(c[2].subs(a, a_val)), b)
    return a_val, b_val


def heavy_ball_residual(t, shift, grad_at):
    return shift(h) - t + h * grad_at(t) - beta * (t - shift(-h))


def nesterov_residual(t, shift, grad_at):
    look = t + beta * (t - shift(-h))
    return shift(h) - look + h * grad_at(look)


@pytest.mark.parametrize("opt, residual", [(sf.HeavyBall(beta=beta), heavy_ball_residual),
                                           (sf.Nesterov(beta=beta), nesterov_residual)])
def test_first_order_term_matches_an_independent_ansatz(opt, residual):
    """terms[0] = a g and terms[1] = b H g, with a, b solved from the recurrence itself
    (heavy ball: a = -1/(1-beta), b = -(1+beta)/(2(1-beta)^3), Kovachki & Stuart 2021)."""
    a, b = ansatz_coefficients(residual)
    me = sf.modified_equation(opt, NONPOLY, [x, y], 1)
    g, H = grad_hess(NONPOLY, [x, y])
    assert zero_matrix(me.terms[0] - a * g)
    assert zero_matrix(me.terms[1] - b * H * g)
    assert zero(me.time_scale + a)


# -- the exact reduced flow on a quadratic: log of the slow characteristic root ----------

gamma, lam = sp.symbols("gamma lambda", positive=True)  # gamma = 1 - beta


@pytest.mark.parametrize("opt, char", [
    (sf.HeavyBall(beta=1 - gamma),
     lambda r, b: r**2 - (1 + b - h * lam) * r + b),
    (sf.Nesterov(beta=1 - gamma),
     lambda r, b: r**2 - (1 - h * lam) * (1 + b) * r + (1 - h * lam) * b),
])
def test_quadratic_exact_flow_to_order_three(opt, char):
    r"""On :math:`L = \lambda x^2/2` the iterates on the manifold are :math:`r_+^n x_0`, so the
    exact reduced field is :math:`\log(r_+)/h\;x` with :math:`r_+` the root near 1."""
    order = 3
    r = sp.Symbol("r")
    roots = sp.solve(char(r, 1 - gamma), r)
    slow = next(root for root in roots if sp.simplify(root.subs(h, 0) - 1) == 0)
    exact = sp.series(sp.log(slow) / h, h, 0, order + 1).removeO()
    me = sf.modified_equation(opt, lam * x**2 / 2, [x], order, hyper=[lam])
    for k in range(order + 1):
        assert zero(me.terms[k][0] - exact.coeff(h, k) * x), k


# -- the invariant manifold, by substitution ----------------------------------------------

def test_heavy_ball_manifold_is_invariant():
    r""":math:`M_h(\theta + A_h(\theta, M_h)) = B_h(\theta, M_h)` through :math:`h^{K+1}`, for
    symbolic :math:`\beta`, at a rational point. Exact truncated arithmetic in
    :math:`\mathbb{Q}[h, \beta, \iota]` with :math:`\iota = 1/(1-\beta)`."""
    order = 3
    K = order + 1  # the manifold is known through h^(order + 1)
    me = sf.modified_equation(sf.HeavyBall(beta=beta), POLY, [x, y], order)
    iota = sp.Symbol("iota")
    ring, X, Y, H, B, I = sp.polys.rings.ring([x, y, h, beta, iota], sp.QQ)

    def to_ring(expr):  # denominators are powers of (1 - beta)
        num, den = sp.fraction(sp.factor(sp.together(expr)))
        k = int(sp.degree(den, beta))
        assert sp.expand(den - sp.LC(sp.Poly(den, beta)) * (beta - 1) ** k) == 0
        return ring(num) * ring(1 / sp.LC(sp.Poly(den, beta))) * (-I) ** k

    def trunc(p):
        return ring({m: c for m, c in p.items() if m[2] <= K})

    M = [to_ring(c) for c in me.manifold]
    point = [(X, R(2, 3)), (Y, R(-1, 5))]
    velocity = [trunc(B * m - H * ring(sp.diff(POLY, p))).subs(point) for m, p in zip(M, (x, y))]
    moved_to = [ring(v) + dv for (_, v), dv in zip(point, velocity)]
    powers = [[ring.one], [ring.one]]
    for j in range(2):
        for _ in range(max(max(m[j] for m in c.itermonoms()) for c in M)):
            powers[j].append(trunc(powers[j][-1] * moved_to[j]))
    for comp, vel in zip(M, velocity):
        moved = sum((trunc(ring({(0, 0) + m[2:]: c}) * powers[0][m[0]] * powers[1][m[1]])
                     for m, c in comp.items()), ring.zero)
        resid = trunc(moved - vel)
        top = max((m[4] for m in resid.itermonoms()), default=0)
        cleared = sum((ring({m[:4] + (0,): c}) * (1 - B) ** (top - m[4])
                       for m, c in resid.items()), ring.zero)  # times (1 - beta)^top
        assert cleared == 0


# -- adaptive methods: history sums of the moment averages ---------------------------------

k_sum = sp.Symbol("k", integer=True, nonnegative=True)
xp = sp.Symbol("x", positive=True)
GRAD_POSITIVE = xp**2 / 2 + xp + 1   # L' > 0: no sign changes
POINT = R(3, 2)


def lie_derivatives(phi, f, n):
    r""":math:`D_f^j \phi` for :math:`j = 0..n` (1-D)."""
    out = [phi]
    for _ in range(n):
        out.append(sp.diff(out[-1], xp) * f)
    return out


def moving_average(phi, rate, f, n, lag):
    r"""The EMA :math:`(1-\rho)\sum_k \rho^k \phi(\theta_{n-lag-k})` along the flow, expanded:
    :math:`\theta_{n-m} = \Theta(t - mh) = \sum_j (-mh)^j/j!\, D_f^j x`."""
    ders = lie_derivatives(phi, f, n)
    return (1 - rate) * sum(
        (-h) ** j / sp.factorial(j) * sp.summation((k_sum + lag) ** j * rate**k_sum,
                                                  (k_sum, 0, sp.oo)) * d
        for j, d in enumerate(ders))


@pytest.mark.parametrize("opt", [
    sf.Adam(beta1=R(1, 2), beta2=R(3, 4), eps=R(1, 10)),
    sf.RMSprop(rho=R(1, 2), eps=R(1, 10)),
    sf.RMSprop(rho=R(1, 2), eps=R(1, 10), eps_in_sqrt=True),
])
def test_adaptive_flow_and_manifold_match_history_sums(opt):
    """The order-2 flow makes the one-step residual O(h^4), and the manifold equals the
    moving averages of the past along the flow, through h^2."""
    p = 2
    me = sf.modified_equation(opt, sp.integrate(GRAD_POSITIVE, xp), [xp], p)
    f = sum(h**j * me.terms[j][0] for j in range(p + 1))
    adam = isinstance(opt, sf.Adam)
    b1 = opt.beta1 if adam else 0
    b2 = opt.beta2 if adam else opt.rho

    def at_point(expr):
        return sp.expand(expr.subs(xp, POINT))

    m = at_point(moving_average(GRAD_POSITIVE, b1, f, p + 1, 0))
    v = at_point(moving_average(GRAD_POSITIVE**2, b2, f, p + 1, 0))
    root = sp.sqrt(v + opt.eps) if getattr(opt, "eps_in_sqrt", False) else sp.sqrt(v) + opt.eps
    step = sum(h**j / sp.factorial(j) * d for j, d in enumerate(lie_derivatives(xp, f, p + 2)))
    residual = at_point(step) - POINT + h * m / root
    series = sp.series(residual, h, 0, p + 2).removeO()
    assert all(series.coeff(h, j) == 0 for j in range(p + 2))
    # the manifold: the memory at theta_n averages the gradients up to theta_{n-1}
    man = me.manifold
    v_man = man[1] if adam else man[0]
    history = at_point(moving_average(GRAD_POSITIVE**2, b2, f, p, 1))
    assert all(zero(c) for c in h_coefficients(at_point(v_man) - history, p))
    if adam:
        history = at_point(moving_average(GRAD_POSITIVE, b1, f, p, 1))
        assert all(zero(c) for c in h_coefficients(at_point(man[0]) - history, p))


# -- numbers and symbols, time scale, GD as a special case ---------------------------------

def test_heavy_ball_modified_loss_reduces_to_gd_at_beta_zero():
    """Regression: the implicit regularizer of heavy ball is GD's when beta = 0."""
    gd = sf.modified_equation(sf.GD(), NONPOLY, [x, y], 1).modified_loss
    hb = sf.modified_equation(sf.HeavyBall(beta=beta), NONPOLY, [x, y], 1).modified_loss
    assert hb is not None and gd is not None
    assert zero(hb.subs(beta, 0) - gd)
    hb0 = sf.modified_equation(sf.HeavyBall(beta=0), NONPOLY, [x, y], 2)
    gd2 = sf.modified_equation(sf.GD(), NONPOLY, [x, y], 2)
    assert all(zero_matrix(a - b) for a, b in zip(hb0.terms, gd2.terms))
    assert zero(hb0.truncate(1).modified_loss - gd)


def test_heavy_ball_modified_loss_is_a_potential():
    me = sf.modified_equation(sf.HeavyBall(beta=beta), POLY, [x, y], 1)
    ml = me.modified_loss
    assert zero_matrix(me.field + sp.Matrix([sp.diff(ml, p) for p in (x, y)]))
    assert zero(me.time_scale - 1 / (1 - beta))


@pytest.mark.parametrize("make", [
    lambda b1, b2: sf.HeavyBall(beta=b1),
    lambda b1, b2: sf.Nesterov(beta=b1),
    lambda b1, b2: sf.RMSprop(rho=b2, eps=R(1, 10)),
    lambda b1, b2: sf.Adam(beta1=b1, beta2=b2, eps=R(1, 10)),
])
def test_symbolic_hyperparameters_specialise_to_numeric_ones(make):
    b1, b2 = sp.symbols("b1 b2", positive=True)
    loss = sp.exp(x) + sp.exp(y) / 2 + x * y / 4
    sym = sf.modified_equation(make(b1, b2), loss, [x, y], 1)
    num = sf.modified_equation(make(R(1, 3), R(4, 5)), loss, [x, y], 1)
    point = {x: R(2, 7), y: R(-1, 3), b1: R(1, 3), b2: R(4, 5)}
    for a, b in zip(sym.terms, num.terms):
        for e in a - b:
            assert abs(sp.N(e.xreplace(point), 30)) < 1e-25


def test_expression_path_agrees_and_leaves_no_auxiliary_symbols():
    """Regression: path='general' with a symbolic beta once leaked the 1/(1 - beta) symbol."""
    fast = sf.modified_equation(sf.HeavyBall(beta=beta), NONPOLY, [x, y], 1)
    plain = sf.modified_equation(sf.HeavyBall(beta=beta), NONPOLY, [x, y], 1, path="general")
    assert plain.path == "general"
    assert set().union(*(t.free_symbols for t in plain.terms)) == {x, y, beta}
    assert all(zero_matrix(a - b) for a, b in zip(fast.terms, plain.terms))


def test_time_scale():
    assert sf.modified_equation(sf.GD(), POLY, [x, y], 0).time_scale == 1
    assert sf.modified_equation(sf.Nesterov(beta=R(3, 4)), POLY, [x, y], 0).time_scale == 4
    adam = sf.modified_equation(sf.Adam(R(1, 2), R(3, 4), R(1, 10)), NONPOLY, [x, y], 0)
    assert adam.time_scale is None  # a preconditioned flow, not a rescaled gradient flow


def test_bias_correction_changes_the_transient_not_the_flow():
    opts = [sf.Adam(R(1, 2), R(3, 4), R(1, 10), bias_correction=flag) for flag in (True, False)]
    with_bc, without = (sf.modified_equation(o, NONPOLY, [x, y], 1) for o in opts)
    assert all(zero_matrix(a - b) for a, b in zip(with_bc.terms, without.terms))
    assert zero_matrix(with_bc.manifold[4:, 0])  # the powers beta_i^n sit at 0


# -- what is refused, and why ---------------------------------------------------------------

def test_reduce_false_with_fixed_hyperparameters_explains():
    with pytest.raises(sf.SymflowError, match="jumps by O\\(1\\).*reduce=True"):
        sf.modified_equation(sf.HeavyBall(beta=R(1, 2)), POLY, [x, y], 1, reduce=False)


def test_memory_that_never_relaxes_is_refused_by_the_reduction():
    never = sf.Custom(update=lambda th, s, g, step: (th - step * g(th), s + g(th)),
                      memory0=[0, 0])
    with pytest.raises(sf.SymflowError, match="does not relax.*reduce=False"):
        sf.modified_equation(never, POLY, [x, y], 1)
