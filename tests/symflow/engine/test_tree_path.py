"""The tree path (symflow/_engine/_tree_path.py) equals the existing paths exactly."""

import pytest
import sympy as sp

import symflow as sf
from symflow._engine._tree_path import (
    PolynomialReading,
    TreeTerm,
    _non_potential_part,
    reroots,
    tree_potential,
)
from symflow._trees import _rooted as tr

beta = sp.Symbol("beta")


def _loss(kind, d):
    x = sp.symbols(f"x0:{d}")
    if kind == "polynomial":
        return sum((x[i] * x[i + 1] - 1) ** 2 for i in range(d - 1)) / 2 + x[0] ** 3 / 3, x
    return sp.log(1 + sp.exp(x[0] - x[-1])) + sum(x[i] * x[i + 1] for i in range(d - 1)) / 2, x


E = sp.Dummy("E")


def _zero(r, x):
    """Exact zero test for the losses here: the only transcendental is exp(x0 - x_last) =: E,
    so r is a rational function of E and the parameters."""
    r = sp.expand(r, power_exp=True).subs({sp.exp(x[0]): E * sp.exp(x[-1])})
    return sp.cancel(r) == 0


def _same(a, b, x):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert all(_zero(r, x) for r in sp.Matrix(u) - sp.Matrix(v))


CASES = [
    (sf.GD(), "polynomial", 2, 4),
    (sf.GD(), "polynomial", 3, 3),
    (sf.GD(), "polynomial", 4, 2),
    (sf.GD(), "general", 2, 3),
    (sf.GD(), "general", 3, 2),
    (sf.GD(), "general", 4, 2),
    (sf.HeavyBall(beta=sp.Rational(1, 2)), "general", 4, 1),
    (sf.HeavyBall(beta=sp.Rational(1, 2)), "polynomial", 2, 2),
    (sf.HeavyBall(beta=beta), "polynomial", 3, 1),
    (sf.Nesterov(beta=sp.Rational(1, 3)), "polynomial", 2, 2),
    (sf.Nesterov(beta=sp.Rational(1, 3)), "general", 3, 1),
]


@pytest.mark.parametrize("opt,kind,d,order", CASES, ids=lambda c: str(c))
def test_tree_path_equals_existing_path(opt, kind, d, order):
    loss, x = _loss(kind, d)
    tree = sf.modified_equation(opt, loss, x, order=order, path="tree", progress=False)
    old = sf.modified_equation(opt, loss, x, order=order, path="jet", progress=False)
    assert tree.path == "tree" and old.path != "tree"
    _same(tree.terms, old.terms, x)
    if old.manifold_terms is not None:
        _same(tree.manifold_terms[: len(old.manifold_terms)], old.manifold_terms, x)
    assert tree.gradient_orders == old.gradient_orders


@pytest.mark.parametrize("kind", ["polynomial", "general"])
def test_tree_modified_loss_is_a_potential(kind):
    loss, x = _loss(kind, 3)
    me = sf.modified_equation(sf.GD(), loss, x, order=1, path="tree", progress=False)
    ml = me.modified_loss
    assert ml is not None
    field = sp.Matrix(me.field)
    assert all(_zero(r, x) for r in field + sp.Matrix([sp.diff(ml, p) for p in x]))


def test_quadratic_loss_gradient_at_every_order():
    # T = 0: the order-2 tree combination is not a gradient for every loss, but is here
    x = sp.symbols("x0:3")
    loss = x[0] ** 2 + x[0] * x[1] + 2 * x[2] ** 2 - x[1] * x[2] + x[1] ** 2
    me = sf.modified_equation(sf.GD(), loss, x, order=3, path="tree", progress=False)
    assert me.gradient_orders == (True,) * 4
    old = sf.modified_equation(sf.GD(), loss, x, order=3, path="polynomial", progress=False)
    diff = sp.expand(me.modified_loss - old.modified_loss)
    assert not diff.free_symbols


def test_auto_takes_the_tree_path_beyond_small_d():
    loss, x = _loss("polynomial", 6)
    assert sf.modified_equation(sf.GD(), loss, x, order=1, progress=False).path == "tree"
    loss, x = _loss("polynomial", 2)
    assert sf.modified_equation(sf.GD(), loss, x, order=1, progress=False).path == "polynomial"


def test_rerooting_gives_gradient_of_invariants():
    # |g|^2: grad = 2 H g; g^T H g: grad = 2 H^2 g + T[g, g]
    hg = tr.tree(tr.LEAF)
    key, counts = reroots(hg)
    assert counts == {hg: 2}
    assert tree_potential({hg: sp.Rational(-1, 2)}) == {key: sp.Rational(1, 4)}
    h2g, tgg = tr.tree(hg), tr.tree(tr.LEAF, tr.LEAF)
    assert reroots(h2g)[1] == {h2g: 2, tgg: 1}
    assert tree_potential({h2g: -sp.Rational(1, 3), tgg: -sp.Rational(1, 12)}) is None


def test_tree_path_refuses_adam():
    x = sp.symbols("x0:2")
    with pytest.raises(sf.SymflowError, match="coordinate-free"):
        sf.modified_equation(sf.Adam(beta1=sp.Rational(9, 10), beta2=sp.Rational(99, 100), eps=sp.Rational(1, 100)),
                             x[0] ** 2 + x[1] ** 2, x, order=1, path="tree")


def test_rank_one_loss_is_gradient_by_the_exact_test():
    # softplus of a linear form: H^2 g and T[g, g] are both multiples of a, so the order-2
    # term is a gradient here though not for every loss (probes vanish, exact test decides)
    x = sp.symbols("x0:3")
    loss = sp.log(1 + sp.exp(x[0] + 2 * x[1] - x[2]))
    me = sf.modified_equation(sf.GD(), loss, x, order=2, progress=False)
    assert me.path == "tree"
    assert me.gradient_orders == (True, True, True)


def test_rank_one_symmetry_is_proved_by_the_polynomial_reading():
    # the exact test itself (not SymPy's simplify fallback) proves J symmetric at d = 4
    x = sp.symbols("x0:4")
    loss = sp.log(1 + sp.exp(sum((i + 1) * x[i] for i in range(4))))
    me = sf.modified_equation(sf.GD(), loss, x, order=3, path="tree", progress=False)
    for k in (2, 3):
        rest = _non_potential_part(me._raw[k].coeffs)
        assert rest  # not a gradient for every loss ...
        assert me._alg._symmetric_exactly(TreeTerm(rest, ()))  # ... but for this one
    assert me.gradient_orders == (True,) * 4


def test_sum_of_softplus_is_not_a_gradient_at_second_order():
    x = sp.symbols("x0:3")
    loss = sp.log(1 + sp.exp(x[0] - 2 * x[1])) + sp.log(1 + sp.exp(x[1] + x[2]))
    me = sf.modified_equation(sf.GD(), loss, x, order=2, path="tree", progress=False)
    assert me.gradient_orders == (True, True, False)
    old = sf.modified_equation(sf.GD(), loss, x, order=2, path="jet", progress=False)
    assert old.gradient_orders == (True, True, False)


def test_polynomial_reading_sees_exponential_relations():
    x0, x1 = sp.symbols("x0 x1")
    e = sp.exp(x0 - 2 * x1)
    reading = PolynomialReading()
    assert reading.vanishes([e**3 * sp.exp(-3 * x0) - sp.exp(-6 * x1),
                             sp.exp(x0 / 2) ** 2 - sp.exp(x0),
                             x1 / x0 * x0 - x1])
    assert not PolynomialReading().vanishes([e**2 - e + 1])
    assert not PolynomialReading().vanishes([sp.exp(x0) - sp.exp(x1)])
    assert not PolynomialReading().vanishes([sp.Float(0.1) * x0])  # no exact reading


def test_coloured_rerooting():
    # H_0 g_1 and H_1 g_0 are the two rootings of one edge between colours 0 and 1
    t = tr.tree(tr.leaf(1), color=0)
    key, counts = reroots(t)
    assert counts == {t: 1, tr.tree(tr.leaf(0), color=1): 1}
    # -(H_0 g_1 + H_1 g_0) = -grad(g_0 . g_1)
    assert tree_potential({t: -1, tr.tree(tr.leaf(0), color=1): -1}) == {key: 1}
    assert tree_potential({t: -1}) is None


def test_probe_refutes_a_non_gradient_with_parameters_in_the_directions():
    # the direction factors of D^m L hold parameters here (v tanh(...) is not a linear form
    # with numeric coefficients): the probe must substitute the point there too
    x = sp.symbols("x0:3")
    loss = (x[2] * sp.tanh(x[0] - 2 * x[1]) - 1) ** 2 / 2 + x[0] ** 2 / 2
    me = sf.modified_equation(sf.GD(), loss, x, order=2, path="tree", progress=False)
    part = TreeTerm(_non_potential_part(me._raw[2].coeffs), ())
    assert me._alg._asymmetric_somewhere(part)
    assert me.gradient_orders == (True, True, False)


def _laurent_zero(expr, x) -> bool:
    """Exact zero test: exp(sum c_i x_i) = prod X_i^c_i (exp is a homomorphism), then cancel."""
    X = sp.symbols(f"X0:{len(x)}", positive=True)

    def monomial(arg):
        arg = sp.expand(arg)
        out = sp.exp(arg - sum(arg.coeff(v) * v for v in x))
        for v, V in zip(x, X):
            out *= V ** arg.coeff(v)
        return out
    num = sp.numer(sp.together(sp.expand(expr).replace(sp.exp, monomial)))
    return sp.expand(num) == 0


def test_rank_one_potential_beyond_the_tree_structure():
    # order 2 is a gradient here only: its potential is -sum lam S(F) for the structural
    # part plus the rest's, found by the expression-level search; checked by its residual
    x = sp.symbols("x0:2")
    loss = sp.log(1 + sp.exp(x[0] - x[1]))
    me = sf.modified_equation(sf.GD(), loss, x, order=2, path="tree", progress=False)
    assert _non_potential_part(me._raw[2].coeffs)
    ml = me.modified_loss
    assert ml is not None
    assert all(_laurent_zero(sp.diff(ml, p) + f, x) for p, f in zip(x, me.field))
