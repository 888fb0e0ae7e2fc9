"""The mean flow of one reshuffled epoch of SGD (symflow/_stochastic/_epoch.py), exact."""

import pytest
import sympy as sp

import symflow as sf
from symflow import Dataset, epoch_mean_flow
from symflow._stochastic._epoch import epoch_trees
from symflow._trees._coordinate_free import coordinate_free_equation

h = sf.h
w, x, y = sp.symbols("w x y")
X, Y = sp.symbols("X Y", positive=True)


def zero(expr) -> bool:
    return sp.simplify(sp.expand(expr)) == 0


def mat_zero(m) -> bool:
    return all(zero(e) for e in sp.Matrix(m))


def exp_zero(expr) -> bool:
    """Exact zero test for expressions whose exponentials have arguments a x + b y (a, b
    integers): exp(a x + b y) = X^a Y^b, so the expression is a rational function of x, y,
    X, Y and the logarithms (which appear undifferentiated)."""
    def monomial(arg):
        arg = sp.expand(arg)
        return X ** arg.coeff(x) * Y ** arg.coeff(y) * sp.exp(arg - arg.coeff(x) * x
                                                              - arg.coeff(y) * y)
    return sp.cancel(sp.expand(expr).replace(sp.exp, monomial)) == 0


def grad(expr, params=(x, y)):
    return sp.Matrix([sp.diff(expr, p) for p in params])


def _smith_formula(batches, params):
    """Smith, Dherin, Barrett & De (ICLR 2021): the first-order epoch modified loss."""
    m = len(batches)
    loss = sum(batches) / m
    gl = grad(loss, params)
    spread = sum((((grad(bk, params) - gl).T * (grad(bk, params) - gl))[0] for bk in batches),
                 sp.S.Zero)
    return loss + h / 4 * (gl.T * gl)[0] + h / (4 * m) * spread


NONPOLY = [sp.log(1 + sp.exp(-x - y)), sp.log(1 + sp.exp(x - 2 * y)), (x - y) ** 2 / 2]


def test_epoch_mean_flow_matches_smith_et_al_polynomial():
    batches = [(x * y - 1) ** 2 / 2 + x**2 / 4, (x - y) ** 2 / 2 + x**3 / 3,
               (x + 2 * y - 1) ** 2 / 2, x**4 / 12 + y**2]
    flow = epoch_mean_flow(batches=batches, params=[x, y], order=1)
    formula = _smith_formula(batches, [x, y])
    assert mat_zero(flow.field + grad(formula))
    assert flow.modified_loss is not None
    assert mat_zero(grad(flow.modified_loss - formula))
    assert "modified loss" in str(flow) and "tilde" in flow.latex()
    # a wrong coefficient of the batch-spread term would be caught
    wrong = formula + h / 100 * sum(((grad(bk)).T * grad(bk))[0] for bk in batches)
    assert not mat_zero(flow.field + grad(wrong))


def test_epoch_mean_flow_from_dataset_and_non_polynomial():
    ds = Dataset(losses=[(w - 1) ** 2 / 2, (w + 2) ** 2 / 2, w**4 / 4, (w - 3) ** 2 / 2,
                         w**2, (2 * w - 1) ** 2 / 8], params=[w])
    flow = epoch_mean_flow(dataset=ds, batch_size=2, order=1)
    batches = [ds.subset([0, 1]).mean_loss, ds.subset([2, 3]).mean_loss,
               ds.subset([4, 5]).mean_loss]
    assert zero(flow.field[0] + sp.diff(_smith_formula(batches, [w]), w))
    nonpoly = [sp.log(1 + sp.exp(x * y)) + (x - 1) ** 2 / 2, sp.cos(x) + y**2 / 2]
    flow = epoch_mean_flow(batches=nonpoly, params=[x, y], order=1)
    res = flow.field + sp.Matrix([sp.diff(_smith_formula(nonpoly, [x, y]), p) for p in (x, y)])
    assert all(sp.cancel(sp.expand(e)) == 0 for e in res)
    with pytest.raises(sf.SymflowError, match="divide"):
        epoch_mean_flow(dataset=ds, batch_size=4)
    with pytest.raises(sf.SymflowError, match="batches"):
        epoch_mean_flow(batches=[w**2] * 7, params=[w])
    with pytest.raises(sf.SymflowError, match="path="):
        epoch_mean_flow(batches=[w**2], params=[w], path="fast")


@pytest.mark.parametrize("order", [1, 2])
def test_tree_path_equals_series_path_polynomial(order):
    batches = [(x * y - 1) ** 2 / 2 + x**2 / 4, (x - y) ** 2 / 2 + x**3 / 3,
               (x + 2 * y - 1) ** 2 / 2]
    tree = epoch_mean_flow(batches=batches, params=[x, y], order=order, path="tree")
    series = epoch_mean_flow(batches=batches, params=[x, y], order=order)
    assert tree.path == "tree" and series.path == "series"
    assert series.equation.path == "polynomial"
    for a, b in zip(tree.terms, series.terms):
        assert sp.expand(a - b) == sp.zeros(2, 1)
    assert sp.expand(tree.mean_map - series.mean_map) == sp.zeros(2, 1)
    assert tree.gradient_orders == series.gradient_orders
    if order == 1:
        # potentials agree up to a constant
        assert sp.expand(grad(tree.modified_loss - series.modified_loss)) == sp.zeros(2, 1)


def test_non_polynomial_modified_loss_from_the_trees():
    flow = epoch_mean_flow(batches=NONPOLY, params=[x, y], order=1)
    assert flow.path == "tree"
    ml = flow.modified_loss
    assert ml is not None and not ml.has(sp.Integral)
    # the residual of the potential, exactly
    assert all(exp_zero(e) for e in flow.field + grad(ml))
    # and it is Smith et al.'s loss (up to a constant)
    assert all(exp_zero(e) for e in grad(ml - _smith_formula(NONPOLY, [x, y])))


def test_second_order_epoch_field_is_not_a_gradient():
    # at h^2 the mean epoch field has no potential for these losses: the engine says so
    flow = epoch_mean_flow(batches=NONPOLY, params=[x, y], order=2)
    assert flow.gradient_orders == (True, True, False)
    assert flow.modified_loss is None
    f2 = flow.terms[2]
    curl = (sp.diff(f2[0], y) - sp.diff(f2[1], x)).xreplace({x: sp.Rational(1, 3),
                                                             y: sp.Rational(-1, 2)})
    assert abs(sp.N(curl, 30)) > 1e-6
    # its first-order part still agrees with the first-order flow
    first = epoch_mean_flow(batches=NONPOLY, params=[x, y], order=1)
    assert all(exp_zero(a - b) for a, b in zip(flow.terms[1], first.terms[1]))


def test_one_batch_epoch_trees_are_gradient_descent():
    # one batch: the epoch map is one GD step; its trees must be GD's coordinate-free field
    gd = coordinate_free_equation(sf.GD(), 3)
    _, field = epoch_trees(1, 3)
    for k in range(4):
        assert field[k] == {t: c for t, c in gd.field.terms[k].items() if c != 0}
