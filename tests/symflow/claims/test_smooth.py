"""Smoothing by convolution with approximate identities: closed forms and their checks."""

import mpmath
import pytest
import sympy as sp

import symflow as sf

x = sp.Symbol("x", real=True)
s = sp.Symbol("s", positive=True)
u = sp.Symbol("u", real=True)
CLIP = sp.Min(sp.Max(x, 0), 1)
BUMP = sp.Piecewise((x**2, x < 1), (2 - x, True))           # a jump in slope, polynomial
PIECES = {
    "relu": sp.Max(0, x), "abs": sp.Abs(x), "max": sp.Max(x, 1 - x), "sign": sp.sign(x),
    "step": sp.Heaviside(x), "clip": CLIP, "bump": BUMP,
}
BOUNDED = ("sign", "step", "clip")
BREAKS = (-1, 0, sp.Rational(1, 2), 1)


def _quadrature(f, kernel, xv, sv):
    """f * delta_s at xv by mpmath quadrature, split at the kinks and the kernel's edges."""
    K = sp.lambdify(u, sf.kernel_density(kernel).density, "mpmath")
    g = sp.lambdify(x, f, ["mpmath", {"Heaviside": lambda z, h0=0.5: mpmath.mpf(z > 0)}])
    cuts = sorted({-1.0, 1.0} | {float((xv - b) / sv) for b in BREAKS})
    return mpmath.quad(lambda t: g(xv - sv * t) * K(t), [-mpmath.inf] + cuts + [mpmath.inf])


@pytest.mark.parametrize("kernel", sf.KERNELS)
@pytest.mark.parametrize("name", list(PIECES))
def test_closed_form_equals_the_convolution_integral(kernel, name):
    f = PIECES[name]
    if kernel == "cauchy" and name not in BOUNDED:
        with pytest.raises(sf.SymflowError, match="diverges"):
            sf.smooth(f, x, kernel, s)
        return
    fs = sf.smooth(f, x, kernel, s)
    assert not fs.has(sp.Integral)
    for xv, sv in ((0.3, 0.2), (-0.7, 0.5)):
        got = fs.subs({x: xv, s: sv}).evalf(20)
        assert abs(got - _quadrature(f, kernel, xv, sv)) < 1e-12


def test_the_seed_closed_forms():
    Phi = (1 + sp.erf(x / (s * sp.sqrt(2)))) / 2
    phi = sp.exp(-x**2 / (2 * s**2)) / sp.sqrt(2 * sp.pi)
    assert sp.simplify(sf.smooth(sp.Max(0, x), x, "gaussian", s) - (x * Phi + s * phi)) == 0
    softplus = s * sp.log(1 + sp.exp(x / s))
    assert sp.simplify(sf.smooth(sp.Max(0, x), x, "logistic", s) - softplus) == 0
    assert sp.simplify(sf.smooth(sp.Abs(x), x, "logistic", s) - (2 * softplus - x)) == 0
    assert sp.simplify(sf.smooth(sp.Heaviside(x), x, "cauchy", s)
                       - (sp.atan(x / s) / sp.pi + sp.S(1) / 2)) == 0


@pytest.mark.parametrize("kernel", ["gaussian", "logistic", "uniform"])
def test_derivative_of_the_smoothed_relu_is_the_smoothed_step(kernel):
    relu_s = sf.smooth(sp.Max(0, x), x, kernel, s)
    step_s = sf.smooth(sp.Heaviside(x), x, kernel, s)
    for xv in (sp.Rational(-2, 5), sp.Rational(1, 20), sp.Rational(3, 10)):
        assert abs(sp.N((relu_s.diff(x) - step_s).subs({x: xv, s: sp.Rational(1, 5)}), 30)) \
            < 1e-25


def _moment(kernel, j, absolute=False):
    """An independent 30-digit quadrature of the kernel's (absolute) moment."""
    K = sp.lambdify(u, sf.kernel_density(kernel).density, "mpmath")
    with mpmath.workdps(30):
        return sp.Float(mpmath.quad(lambda t: (abs(t) if absolute else t) ** j * K(t),
                                    [-mpmath.inf, -1, 0, 1, mpmath.inf]), 30)


@pytest.mark.parametrize("kernel", ["gaussian", "logistic", "uniform"])
def test_gap_at_a_kink_is_half_the_first_absolute_moment(kernel):
    """relu_s(0) - relu(0) = s E|U| / 2 (the moment by quadrature)."""
    gap = sf.smoothing_gap_at(sp.Max(0, x), x, kernel, s)
    assert abs(sp.N(gap / s, 30) - _moment(kernel, 1, absolute=True) / 2) < 1e-25


def test_polynomials_gain_the_kernel_moments():
    for kernel in ("gaussian", "logistic", "uniform"):
        extra = sp.expand(sf.smooth(x**2 + 3 * x, x, kernel, s) - (x**2 + 3 * x)) / s**2
        assert not extra.free_symbols
        assert abs(sp.N(extra, 30) - _moment(kernel, 2)) < 1e-25


def test_user_kernel_and_numeric_fallback():
    t = sp.Symbol("t", real=True)
    laplace = sp.Lambda(t, sp.exp(-sp.Abs(t)) / 2)
    fs = sf.smooth(sp.Max(0, x), x, laplace, s)
    q = mpmath.quad(lambda y: max(y, 0) * mpmath.exp(-abs(0.3 - y) / 0.2) / 0.4,
                    [-mpmath.inf, 0, 0.3, mpmath.inf])
    assert abs(fs.subs({x: 0.3, s: 0.2}).evalf(20) - q) < 1e-12
    # a piece SymPy cannot integrate in closed form stays a (numerically evaluable) Integral
    g = sp.Piecewise((0, x < 0), (sp.exp(-x**2), True))
    num = sf.smooth(g, x, "logistic", s, method="numeric")
    assert num.has(sp.Integral)
    ref = mpmath.quad(lambda y: mpmath.exp(-y**2) * mpmath.exp(-(0.4 - y) / 0.3)
                      / (0.3 * (1 + mpmath.exp(-(0.4 - y) / 0.3)) ** 2), [0, mpmath.inf])
    assert abs(num.subs({x: 0.4, s: 0.3}).evalf(15) - ref) < 1e-10


@pytest.mark.slow
def test_exact_method_refuses_pieces_without_closed_form():
    g = sp.Piecewise((0, x < 0), (sp.sqrt(x), x < 1), (0, True))
    with pytest.raises(sf.SymflowError, match="no closed form for the piece sqrt\\(x\\)"):
        sf.smooth(g, x, "gaussian", s, method="exact")


def test_string_input_goes_through_the_safe_parser():
    assert sp.simplify(sf.smooth("relu(x) + step(x - 1)", x, "gaussian", s)
                       - sf.smooth(sp.Max(0, x) + sp.Heaviside(x - 1), x, "gaussian", s)) == 0
    with pytest.raises(sf.UnsafeExpressionError):
        sf.smooth("__import__('os')", x)
    assert sp.simplify(sf.smoothing_gap_at("relu(x)", x, "gaussian", s)
                       - sf.smoothing_gap_at(sp.Max(0, x), x, "gaussian", s)) == 0
    with pytest.raises(sf.UnsafeExpressionError):
        sf.smoothing_gap_at("__import__('os')", x)


def test_bad_inputs_get_clear_errors():
    t = sp.Symbol("t", real=True)
    with pytest.raises(sf.SymflowError, match="integrates to sqrt\\(pi\\)"):
        sf.smooth(sp.Abs(x), x, sp.Lambda(t, sp.exp(-t**2)), s)
    with pytest.raises(sf.SymflowError, match="not integrable"):
        sf.kernel_density(sp.Lambda(t, 1 / (1 + sp.Abs(t))))
    with pytest.raises(sf.SymflowError, match="choose one of"):
        sf.smooth(sp.Abs(x), x, "box", s)
    for bad in (0, -1, sp.Symbol("w"), "s"):
        with pytest.raises(sf.SymflowError, match="positive"):
            sf.smooth(sp.Abs(x), x, "gaussian", bad)
    with pytest.raises(sf.SymflowError, match="finitely many"):
        sf.smooth(sp.Abs(sp.sin(x)), x, "gaussian", s)
    with pytest.raises(sf.SymflowError, match="Dirac"):
        sf.smooth(sp.DiracDelta(x), x, "gaussian", s)
    with pytest.raises(sf.SymflowError, match="method"):
        sf.smooth(sp.Abs(x), x, "gaussian", s, method="fast")
