"""General-sum games: GDA on a pair of losses (L1, L2), each player descending its own.

The engine's modified flows are checked, by residual, against the first-order formulas of
Rosca, Wu, Dherin & Barrett (ICML 2021, Sec. 3) with f = -grad_phi L1, g = -grad_theta L2:
  phi'   = f - h/2 (f_phi f + r f_theta g),
  theta' = r g - r h/2 (g_phi f + r g_theta g)   (simultaneous),
  theta' = r g - r h/2 (r g_theta g - g_phi f)   (alternating, phi first).
"""

import pytest
import sympy as sp

import symflow as sf
from symflow._core._gradient import is_zero_expr

p, q = sp.symbols("p q")
r = sp.Symbol("r", positive=True)
L1 = sp.exp(p * q / 2) + p**2 * q          # coupled, non-polynomial
L2 = sp.log(1 + q**2) + p * q**2 / 2 + p**2 * q


def rosca(kind, l1, l2, rate):
    f, g = -sp.diff(l1, p), -sp.diff(l2, q)
    fp, fq, gp, gq = (sp.diff(a, b) for a in (f, g) for b in (p, q))
    theta1 = -rate * (gp * f + rate * gq * g) / 2 if kind == "sim" else \
        -rate * (rate * gq * g - gp * f) / 2
    return [f, rate * g], [-(fp * f + rate * fq * g) / 2, theta1]


GDA = {"sim": sf.SimultaneousGDA(n_first=1, lr_ratio=r),
       "alt": sf.AlternatingGDA(n_first=1, lr_ratio=r)}


@pytest.mark.parametrize("kind", ["sim", "alt"])
def test_each_players_flow_matches_rosca_et_al(kind):
    me = sf.modified_equation(GDA[kind], (L1, L2), [p, q], order=1)
    f0, f1 = rosca(kind, L1, L2, r)
    for k, expected in ((0, f0), (1, f1)):
        assert all(is_zero_expr(me.terms[k][i] - expected[i]) for i in range(2))
    # a wrong coefficient (h/4 instead of h/2 on the max player's drift) is caught
    assert not is_zero_expr(me.terms[1][1] - f1[1] / 2)


@pytest.mark.parametrize("kind", ["sim", "alt"])
def test_each_players_modified_loss_by_residual(kind):
    l1, l2 = p**2 * q + q**3, q**2 / 2 + p * q      # polynomial: exact blocks
    obj = sf.modified_objectives(GDA[kind], 1, losses=(l1, l2), params=[p, q])
    assert obj.general_sum and obj.first[0] == l1 and obj.second[0] == l2
    for k in range(2):
        term = obj.me.terms[k]
        for V, i, scale in ((obj.first[k], 0, -1), (obj.second[k], 1, -r)):
            if V is not None:   # phi' = -d/dp L~1, theta' = -r d/dq L~2
                assert is_zero_expr(term[i] - scale * sp.diff(V, (p, q)[i]))
    assert "L~1" in str(obj) and "\\tilde{L}_1" in obj.latex()


def test_zero_sum_is_the_special_case():
    E = sp.exp(p * q / 2) + p**2 - q**2 / 3
    for opt in GDA.values():
        pair = sf.modified_equation(opt, (E, -E), [p, q], order=1)
        single = sf.modified_equation(opt, E, [p, q], order=1)
        assert all(is_zero_expr(a - b) for t, s in zip(pair.terms, single.terms)
                   for a, b in zip(t, s))
    generic = sf.modified_objectives(GDA["sim"], 1)
    obj = sf.modified_objectives(GDA["sim"], 1, losses=(E, -E), params=[p, q])
    assert obj.zero_sum
    # L~1 = E~1 and L~2 = -E~2 up to what the other player cannot feel
    e1 = generic.objective(1, E, [p, q])
    assert is_zero_expr(sp.diff(obj.objective(1) - e1, p))
    assert is_zero_expr(sp.diff(obj.objective(2) + generic.objective(2, E, [p, q]), q))


def test_loss_pair_errors():
    with pytest.raises(sf.SymflowError, match="loss=\\(L1, L2\\)"):
        sf.modified_equation(GDA["sim"], (L1,), [p, q], order=1)
    with pytest.raises(sf.SymflowError, match="L2="):
        sf.modified_equation(GDA["sim"], (L1, "q**2"), [p, q], order=1)
    with pytest.raises(sf.SymflowError, match="params"):
        sf.modified_objectives(GDA["sim"], 1, losses=(L1, L2))
