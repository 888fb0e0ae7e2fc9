"""Coordinate-free modified equations (B-series in elementary differentials of L).

The coordinate-free terms are checked against the concrete engine run on a generic smooth
loss F(x, y) (an undefined SymPy function): the exact identity in the derivatives of F then
holds for every loss. Memory reductions are also checked against closed forms and against
the optimizers' own two-step recurrences.
"""

import pytest
import sympy as sp
from sympy.polys.rings import ring

import symflow as sf
from symflow._trees import _rooted as tr
from symflow._trees._coordinate_free import CoordinateFreeEquation, coordinate_free_equation
from symflow.optimizers import AbstractMemoryOptimizer

x, y, z = sp.symbols("x y z")
h = sf.h
beta = sp.Symbol("beta")
LEAF = tr.LEAF

GENERIC = (sp.Function("F")(x, y), [x, y])

EXTRAGRADIENT = sf.Custom(update=lambda th, g, h: th - h * g(th - h * g(th)), name="eg")
# a two-stage explicit Runge-Kutta rule (Ralston's weights) on the gradient field
RALSTON = sf.Custom(update=lambda th, g, h: th - h / 4 * g(th) - 3 * h / 4 * g(th - 2 * h / 3 * g(th)),
                    name="ralston")
alpha = sp.Symbol("alpha", positive=True)
RK2_ALPHA = sf.Custom(
    update=lambda th, g, h: th - h * ((1 - 1 / (2 * alpha)) * g(th)
                                      + 1 / (2 * alpha) * g(th - alpha * h * g(th))),
    hyper=[alpha], name="rk2_alpha")


def assert_generic(cf, me):
    """Equal for the generic loss F: exact identity in the derivatives of F (and in the
    hyperparameters, as rational functions)."""
    for k, term in enumerate(cf.concrete(*GENERIC)):
        assert all(sp.cancel(sp.expand(e)) == 0 for e in term - me.terms[k]), k


# -- trees ------------------------------------------------------------------------------------

def test_tree_counts_and_cayley_identity():
    counts = [len(tr.trees_of_order(n)) for n in range(1, 9)]
    assert counts == [1, 1, 2, 4, 9, 20, 48, 115]  # OEIS A000081
    for n in range(1, 8):  # sum over trees of n!/sigma = n^(n-1) rooted labelled trees
        total = sum(sp.Rational(sp.factorial(n), tr.symmetry(t)) for t in tr.trees_of_order(n))
        assert total == n ** (n - 1)


def test_grafting_is_the_derivative_of_elementary_differentials():
    loss, params = GENERIC
    G = tr.ConcreteDifferentials(loss, params)
    for tau in tr.trees_of_order(3):
        for sigma in (LEAF, tr.tree(LEAF)):
            lhs = G(tau).jacobian(params) * G(sigma)
            rhs = sum((m * G(t) for t, m in tr.graft(sigma, tau).items()), sp.zeros(2, 1))
            assert sp.expand(lhs - rhs) == sp.zeros(2, 1)


def test_grafting_keeps_the_players():
    blocks = [[0], [1]]
    G = tr.ConcreteDifferentials(*GENERIC, blocks=blocks)
    g1, g2 = tr.leaf(0), tr.leaf(1)
    for tau in (g1, tr.tree(g2, color=0), tr.tree(g1, g2, color=1)):
        for sigma in (g1, g2):
            lhs = G(tau).jacobian(GENERIC[1]) * G(sigma)
            rhs = sum((m * G(t) for t, m in tr.graft(sigma, tau).items()), sp.zeros(2, 1))
            assert sp.expand(lhs - rhs) == sp.zeros(2, 1)


def test_tree_printing():
    assert tr.text(tr.tree(tr.tree(LEAF))) == "H^2 g"
    assert tr.text(tr.tree(LEAF, tr.tree(LEAF))) == "T[g, H g]"
    assert tr.latex(tr.tree(LEAF, LEAF, LEAF)) == "\\nabla^{4}L[g, g, g]"
    assert tr.text(tr.tree(tr.leaf(0), tr.leaf(1), color=1), players=True) == "T2[g1, g2]"


# -- gradient descent and one-step rules against the concrete engine -------------------------

def test_gd_textbook_terms_and_display():
    cf = sf.modified_equation(sf.GD(), order=2)
    assert isinstance(cf, CoordinateFreeEquation)
    R = sp.Rational
    assert cf.terms[0] == {LEAF: -1}
    assert cf.terms[1] == {tr.tree(LEAF): R(-1, 2)}
    assert cf.terms[2] == {tr.tree(tr.tree(LEAF)): R(-1, 3), tr.tree(LEAF, LEAF): R(-1, 12)}
    text = str(cf)
    assert "-1/2 H g" in text and "-1/3 H^2 g - 1/12 T[g, g]" in text
    assert "\\frac{1}{12} T[g, g]" in cf.latex() and cf._repr_latex_().startswith("$")
    assert cf.time_scale == 1


@pytest.mark.parametrize("optimizer, order", [
    (sf.GD(), 5), (EXTRAGRADIENT, 5), (RALSTON, 5),
    (sf.HeavyBall(beta=sp.Rational(1, 3)), 4), (sf.Nesterov(beta=sp.Rational(2, 5)), 4),
    (sf.HeavyBall(beta=beta), 3), (sf.Nesterov(beta=beta), 3),
    (sf.SimultaneousGDA(n_first=1), 5), (sf.AlternatingGDA(n_first=1, lr_ratio=sp.Rational(1, 2)), 5),
    (sf.AlternatingGDA(n_first=1, first_mover="max"), 4),
], ids=["gd", "extragradient", "ralston", "heavy_ball", "nesterov", "heavy_ball_beta",
        "nesterov_beta", "simultaneous_gda", "alternating_gda", "alternating_gda_max_first"])
def test_universal_identity_for_a_generic_loss(optimizer, order):
    """Against the concrete engine run on an undefined F(x, y): equal for every loss."""
    cf = coordinate_free_equation(optimizer, order)
    assert_generic(cf, sf.modified_equation(optimizer, *GENERIC, order))
    if cf.blocks == 2:
        assert "T1[g1, g1]" in str(cf)


def test_symbolic_hyperparameter_in_custom_rule():
    cf = coordinate_free_equation(RK2_ALPHA, order=3)
    assert cf.hyper == (alpha,)
    assert_generic(cf, sf.modified_equation(RK2_ALPHA, *GENERIC, 3))


# -- memory: heavy ball and Nesterov ----------------------------------------------------------

def _root_near_one(char, order):
    """Series of the characteristic root r(h) = 1 + O(h) of a quadratic in r."""
    r = sp.Symbol("r")
    a = sp.symbols(f"a1:{order + 3}")
    rs = 1 + sum(a[i] * h ** (i + 1) for i in range(order + 2))
    eq = sp.expand(char(r).subs(r, rs))
    sol = {}
    for k in range(1, order + 3):
        sol[a[k - 1]] = sp.expand(sp.solve(eq.coeff(h, k).subs(sol), a[k - 1])[0])
    return sp.expand(rs.subs(sol))


def _chain_sum(coeffs, lam):
    """The value of sum_tau c(tau) G(tau) / x for L = lam x^2 / 2 (only chains survive)."""
    return sum(c * lam ** tr.order(t) for t, c in coeffs.items() if tr._chain(t)[1] == LEAF)


@pytest.mark.parametrize("name", ["heavy_ball", "nesterov"])
@pytest.mark.parametrize("b", [sp.Rational(1, 3), sp.Rational(9, 10)])
def test_memory_quadratic_closed_form(name, b):
    """On L = lam x^2/2 the reduced iteration is x_n = r(h)^n x_0: the field is log(r)/h x."""
    lam = sp.Symbol("lam")
    N = 5
    if name == "heavy_ball":
        opt = sf.HeavyBall(beta=b)
        char = lambda r: r**2 - (1 + b - h * lam) * r + b  # noqa: E731
    else:
        opt = sf.Nesterov(beta=b)
        char = lambda r: r**2 - (1 - h * lam) * (1 + b) * r + (1 - h * lam) * b  # noqa: E731
    cf = coordinate_free_equation(opt, order=N)
    r = _root_near_one(char, N)
    field = sp.expand(sp.series(sp.log(r) / h, h, 0, N + 1).removeO())
    memory = sp.expand(sp.series(1 - 1 / r, h, 0, N + 2).removeO())  # v = x - x_prev
    for k in range(N + 1):
        assert sp.expand(_chain_sum(cf.terms[k], lam) - field.coeff(h, k)) == 0
        assert sp.expand(_chain_sum(cf.manifold[0].terms[k], lam) - memory.coeff(h, k)) == 0
    assert cf.manifold[0].theta == ((0,),) * (N + 2)


def _lie_series_map(field_terms, params, R, gens, order):
    """The time-h flow of sum_k h^k f_k as polynomials in QQ[params, h], to h^(order+1)."""
    hh = gens[-1]
    xs = gens[:-1]
    f = [sum((R(sp.expand(term[i])) * hh**k for k, term in enumerate(field_terms)), R.zero)
         for i in range(len(params))]

    def trunc(p):
        return R({m: c for m, c in p.terms() if m[-1] <= order + 1})

    out = list(xs)
    u = list(f)
    fact = 1
    for j in range(1, order + 2):
        fact *= j
        out = [trunc(o + hh**j * ui * R.domain.convert(sp.Rational(1, fact))) for o, ui in zip(out, u)]
        u = [trunc(sum((ui.diff(xs[a]) * f[a] for a in range(len(xs))), R.zero)) for ui in u]
    return out


@pytest.mark.parametrize("name", ["heavy_ball", "nesterov"])
def test_memory_reduced_flow_satisfies_the_two_step_recurrence(name):
    """The time-h map Phi of the modified flow generates sequences of the real method:
    Phi(Phi(t)) = Phi(t) + b (Phi(t) - t) - h g(...)  to O(h^(N+2))  (independent check)."""
    N, b = 3, sp.Rational(1, 2)
    loss, params = x**2 * y / 2 + y**3 / 6 - x * y, [x, y]
    opt = sf.HeavyBall(beta=b) if name == "heavy_ball" else sf.Nesterov(beta=b)
    cf = coordinate_free_equation(opt, order=N)
    R, *gens = ring(params + [h], sp.QQ)
    xs, hh = gens[:-1], gens[-1]
    phi = _lie_series_map(cf.concrete(loss, params), params, R, gens, N)
    grad = [R(sp.expand(loss.diff(p))) for p in params]

    def compose(p, point):
        return p.compose(list(zip(xs, point)))

    def trunc(p):
        return R({m: c for m, c in p.terms() if m[-1] <= N + 1})

    twice = [trunc(compose(p, phi)) for p in phi]
    if name == "heavy_ball":
        rhs = [p + b * (p - xi) - hh * compose(gi, phi) for p, xi, gi in zip(phi, xs, grad)]
    else:
        look = [p + b * (p - xi) for p, xi in zip(phi, xs)]
        rhs = [yi - hh * compose(gi, look) for yi, gi in zip(look, grad)]
    for lhs_i, rhs_i in zip(twice, rhs):
        assert trunc(lhs_i - rhs_i) == 0


def test_heavy_ball_symbolic_beta_known_first_order():
    """Heavy ball: -g/(1-beta) - h (1+beta)/(2(1-beta)^3) H g (Kovachki & Stuart 2021)."""
    cf = coordinate_free_equation(sf.HeavyBall(beta=beta), order=2)
    assert sp.simplify(cf.terms[0][LEAF] + 1 / (1 - beta)) == 0
    assert sp.simplify(cf.terms[1][tr.tree(LEAF)] + (1 + beta) / (2 * (1 - beta) ** 3)) == 0
    assert sp.simplify(cf.time_scale - 1 / (1 - beta)) == 0
    numeric = coordinate_free_equation(sf.HeavyBall(beta=sp.Rational(2, 7)), order=2)
    for k in range(3):
        assert set(cf.terms[k]) == set(numeric.terms[k])
        for t, c in cf.terms[k].items():
            assert sp.simplify(c.subs(beta, sp.Rational(2, 7)) - numeric.terms[k][t]) == 0
    text = str(cf)  # exact display: no floats, factors written as 1 - beta
    assert "h^0: -1/(1 - beta) g" in text and "." not in text.split("\n", 1)[1]
    assert "\\frac{1}{1 - \\beta} g" in cf.latex()


def test_beta_zero_reduces_to_gd():
    gd = coordinate_free_equation(sf.GD(), order=4)
    for opt in (sf.HeavyBall(beta=0), sf.Nesterov(beta=0)):
        cf = coordinate_free_equation(opt, order=4)
        assert cf.terms == gd.terms


class _OneSlotMemory(AbstractMemoryOptimizer):
    """A test optimizer with one memory vector and a hyperparameter beta."""

    def __init__(self, beta):
        self.beta = beta

    def hyperparameters(self):
        return {"beta": self.beta}

    def memory_size(self, dim):
        return dim


class _EMAMomentum(_OneSlotMemory):
    """m <- b m + (1-b) g,  theta <- theta - h m: heavy ball with learning rate h (1-b)."""

    def step_memory(self, theta, memory, grad, h):
        m = self.beta * memory + (1 - self.beta) * grad(theta)
        return theta - h * m, m


class _PreviousIterate(_OneSlotMemory):
    """Heavy ball with the previous iterate as memory (manifold m = theta + O(h))."""

    def step_memory(self, theta, memory, grad, h):
        return theta + self.beta * (theta - memory) - h * grad(theta), theta


def test_other_memory_layouts_give_the_same_flow():
    hb = coordinate_free_equation(sf.HeavyBall(beta=beta), order=3)
    ema = coordinate_free_equation(_EMAMomentum(beta), order=3)
    prev = coordinate_free_equation(_PreviousIterate(beta), order=3)
    for k in range(4):
        for t, c in hb.terms[k].items():
            # time t = n h for both: f_EMA(h) = (1 - beta) f_HB(h (1 - beta))
            assert sp.simplify(ema.terms[k][t] - (1 - beta) ** (k + 1) * c) == 0
            assert sp.simplify(prev.terms[k][t] - c) == 0
    assert ema.manifold[0].terms[0] == {LEAF: 1}
    assert prev.manifold[0].theta[0] == (1,)
    assert "theta" in str(prev)


# -- two players --------------------------------------------------------------------------------

def test_gradient_descent_ascent_with_player_blocks_of_any_size():
    """The same coordinate-free result serves a game with 2 + 1 parameters."""
    r = sp.Symbol("r", positive=True)
    opt = sf.AlternatingGDA(n_first=2, lr_ratio=r)
    loss, params = (x * y - 1) ** 2 / 2 + x**4 * z / 4 - y * z**3 / 3 + x * z, [x, y, z]
    cf = coordinate_free_equation(opt, 3)
    me = sf.modified_equation(opt, loss, params, 3)
    for k, term in enumerate(cf.concrete(loss, params)):
        assert sp.expand(term - me.terms[k]) == sp.zeros(3, 1)


# -- what has no coordinate-free form ---------------------------------------------------------

SQUARED = sf.Custom(update=lambda th, g, h: th - h * g(th).applyfunc(lambda v: v**2))
NORMALIZED = sf.Custom(update=lambda th, g, h: th - h * g(th) / g(th).norm())
MIXING = sf.Custom(update=lambda th, g, h: th - h * sp.Matrix([sum(g(th))] * len(th)))
TWO_PLAYER = sf.Custom(update=lambda th, g, h: th - h * sp.Matrix(
    [g(th)[i] * (1 if i < len(th) // 2 else -1) for i in range(len(th))]))


class _Accumulator(AbstractMemoryOptimizer):
    def memory_size(self, dim):
        return dim

    def step_memory(self, theta, memory, grad, h):
        return theta - h * grad(theta), memory + h * grad(theta)


@pytest.mark.parametrize("opt, message", [
    (SQUARED, "element-wise"), (NORMALIZED, "element-wise"),
    (sf.RMSprop(rho=sp.Rational(9, 10), eps=sp.Rational(1, 10**8)), "element-wise"),
    (sf.Adam(beta1=sp.Rational(9, 10), beta2=sp.Rational(999, 1000), eps=sp.Rational(1, 10**8)),
     "element-wise"),
    (MIXING, "same linear combination in every coordinate"),
    (TWO_PLAYER, "same linear combination in every coordinate"),
    (sf.Custom(update=lambda th, g, h: th - g(th)), "does not tend to theta"),
    (sf.Custom(update=lambda th, g, h: (1 - h) * th - h * g(th)), "weight decay"),
    (_Accumulator(), "does not relax"),
], ids=["squared", "normalized", "rmsprop", "adam", "mixing", "sign_split", "inconsistent",
        "weight_decay", "accumulator"])
def test_not_available_errors(opt, message):
    with pytest.raises(sf.SymflowError, match=message):
        sf.modified_equation(opt, order=2)


def test_bad_arguments():
    with pytest.raises(sf.SymflowError, match="instance"):
        coordinate_free_equation(sf.GD, order=1)
    with pytest.raises(sf.SymflowError, match="order"):
        sf.modified_equation(sf.GD(), order=-1)
    with pytest.raises(sf.SymflowError, match="derived to order"):
        coordinate_free_equation(sf.GD(), order=1).truncate(2)
    with pytest.raises(sf.SymflowError, match="by keyword"):
        sf.modified_equation(sf.GD(), 2)
    with pytest.raises(sf.SymflowError, match="got loss but not params"):
        sf.modified_equation(sf.GD(), x**2, order=1)
    with pytest.raises(sf.SymflowError, match="concrete loss"):
        sf.modified_equation(sf.GD(), order=1, hyper=[beta])
    assert coordinate_free_equation(sf.GD(), 3).truncate(1).terms == \
        coordinate_free_equation(sf.GD(), 1).terms
