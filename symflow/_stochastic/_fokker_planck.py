r"""Fokker–Planck equations of SDEs, their stationary densities, and the Wasserstein view.

For the Itô SDE :math:`d\Theta = b\,dt + \sigma\,dW` with :math:`D = \sigma\sigma^\top` the
density :math:`p(t,\theta)` of :math:`\Theta_t` obeys

.. math::

    \partial_t p = -\nabla\cdot(b\,p) + \tfrac12\sum_{ij}\partial_i\partial_j(D_{ij}\,p)
                 = -\nabla\cdot J ,\qquad J = b\,p - \tfrac12\nabla\cdot(D\,p)

(Risken, *The Fokker–Planck Equation*, ch. 4). A zero-current stationary density exists in
closed form exactly when :math:`v = D^{-1}(2b - \nabla\cdot D)` is a gradient field
(:math:`(\nabla\cdot D)_i = \sum_j\partial_j D_{ij}`): then :math:`p_\infty\propto e^{\Phi}` with
:math:`\nabla\Phi = v`. For the gradient drift :math:`b = -\nabla L` and constant isotropic
noise :math:`D = 2T\,I` this is the Gibbs density :math:`e^{-L/T}/Z`; for the SME of SGD with
:math:`\Sigma = s^2 I`, :math:`T = hs^2/2`.

*Wasserstein gradient flow* (Jordan, Kinderlehrer & Otto, SIAM J. Math. Anal. 29, 1998; the
gradient-flow article in the project's seeds): with the free energy
:math:`F[p] = \mathbb E_p[L] + T\,\mathbb E_p[\log p]` and
:math:`\delta F/\delta p = L + T(\log p + 1)`, the Fokker–Planck equation is
:math:`\partial_t p = \nabla\cdot(p\,\nabla\,\delta F/\delta p)`. A deterministic flow
:math:`\dot\theta = f(\theta)` (e.g. a modified equation) moves densities by the continuity
equation :math:`\partial_t p = -\nabla\cdot(f\,p)`.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from .._core import _validate as v
from .._core._errors import SymflowError
from .._core._gradient import expr_is_gradient, expr_potential, is_zero_expr
from .._core._latex import LatexDisplay
from .._engine._result import ModifiedEquation
from ._kinetic import kinetic_density
from ._sde import SDE, _sign

#: Time in the Fokker–Planck and continuity equations (:math:`t = nh` for optimizers).
t = sp.Symbol("t", nonnegative=True)


def _div(vec, params):
    return sp.Add(*[sp.diff(c, p) for c, p in zip(vec, params)])


class StationaryDensity(LatexDisplay):
    r"""A stationary density :math:`p_\infty = e^{-\Phi}/Z` of a Fokker–Planck equation.

    Attributes
    ----------
    potential : sympy.Expr
        :math:`\Phi` (defined up to a constant).
    unnormalized : sympy.Expr
        :math:`e^{-\Phi}`.
    normalization : sympy.Expr
        :math:`Z = \int e^{-\Phi}\,d\theta`, in closed form for Gaussian densities
        (quadratic :math:`\Phi`), otherwise an unevaluated ``sp.Integral`` (call
        ``.doit()`` to let SymPy try).
    expr : sympy.Expr
        :math:`e^{-\Phi}/Z`.
    temperature : sympy.Expr or None
        :math:`T` when the density is the Gibbs density :math:`e^{-L/T}` of a gradient drift
        with isotropic constant noise :math:`D = 2T I`.
    kind : str
        ``"gibbs"``, ``"gaussian"`` (also Gibbs when ``temperature`` is set), or
        ``"potential"`` (zero-current density of a general potential form).
    closed_form : bool
        False when :math:`\Phi` is kept as an unevaluated integral (1-D state-dependent
        noise whose :math:`\int v` SymPy cannot do); evaluate it on a grid with
        ``solvers.density_on_grid``.
    log_gradient : column Matrix
        :math:`\nabla\log p_\infty = -\nabla\Phi`, always in closed form.
    """

    def __init__(self, params, potential, kind, temperature=None, closed_form=True,
                 log_gradient=None):
        v.check_symbolic(params=params, potential=potential, temperature=temperature,
                         log_gradient=log_gradient)
        self.params = tuple(params)
        self.potential = potential
        self.kind = kind
        self.temperature = temperature
        self.closed_form = closed_form
        if log_gradient is None:
            log_gradient = [-sp.diff(potential, q) for q in self.params]
        self.log_gradient = sp.ImmutableMatrix(log_gradient)
        self.unnormalized = sp.exp(-potential)
        self.normalization = self._normalization()
        self.expr = self.unnormalized / self.normalization
        self._z_cache = {}

    def _normalization(self):
        phi = sp.expand(self.potential)
        params = self.params
        poly = sp.Poly(phi, *params) if phi.is_polynomial(*params) else None
        if poly is not None and poly.total_degree() == 2:
            a = sp.hessian(phi, params)
            grad0 = sp.Matrix([sp.diff(phi, p) for p in params]).xreplace(
                {p: 0 for p in params})
            minors = (a[:k, :k].det() for k in range(1, len(params) + 1))
            if all(_sign(m) is True and m != 0 for m in minors):  # Sylvester: Hessian > 0
                c0 = poly.coeff_monomial(1)
                quad = (grad0.T * a.inv() * grad0)[0]
                self.kind = "gaussian" if self.kind != "gibbs" else self.kind
                return sp.simplify((2 * sp.pi) ** sp.Rational(len(params), 2)
                                   / sp.sqrt(a.det()) * sp.exp(quad / 2 - c0))
        limits = [(p, -sp.oo, sp.oo) for p in params]
        return sp.Integral(self.unnormalized, *limits)

    def _require_closed_form(self):
        if not self.closed_form:
            raise SymflowError(
                "this stationary density has no closed form (its potential is an unevaluated "
                "integral); evaluate it on a grid with solvers.density_on_grid(density, "
                "bounds, cells, hyper=...)")

    def normalization_value(self, values=None) -> float:
        """:math:`Z` as a number for numeric constants (quadrature when not closed form)."""
        v.check_symbolic(values=values)
        self._require_closed_form()
        subs = v.resolve_values(values or {}, sp.Matrix([self.unnormalized]))
        key = tuple(sorted((str(k), float(val)) for k, val in subs.items()))
        cache = self._z_cache
        if key not in cache:
            z = self.normalization.xreplace({k: sp.nsimplify(val) for k, val in subs.items()})
            value = complex(z.evalf(15) if not isinstance(z, sp.Integral)
                            else z.evalf(15, maxn=200))
            if not (np.isfinite(value) and value.imag == 0 and value.real > 0):
                raise SymflowError(f"the normalization Z = {z} evaluates to {value} at {subs}; "
                                   "exp(-potential) is not integrable there, so there is no "
                                   "stationary probability density")
            cache[key] = value.real
        return cache[key]

    def __call__(self, point, values=None) -> float:
        """The density at a numeric point (``values``: numbers for the constants)."""
        v.check_symbolic(point=point, values=values)
        self._require_closed_form()
        subs = v.resolve_values(values or {}, sp.Matrix([self.unnormalized]))
        subs = {k: sp.nsimplify(val) for k, val in subs.items()}
        subs.update({p: sp.nsimplify(c) for p, c in zip(self.params, point)})
        return float(self.unnormalized.xreplace(subs).evalf(15)) / self.normalization_value(
            values)

    def latex(self) -> str:
        return f"p_\\infty = {sp.latex(self.expr)}"

    def __str__(self) -> str:
        tail = f", T = {self.temperature}" if self.temperature is not None else ""
        return f"stationary density ({self.kind}{tail}): exp(-({self.potential}))/Z, Z = {self.normalization}"

    def __repr__(self) -> str:
        return f"<StationaryDensity {self.kind} params={list(self.params)}>"


class FokkerPlanck(LatexDisplay):
    r"""The Fokker–Planck (or continuity) equation of an :class:`~symflow.SDE`.

    Attributes
    ----------
    sde : SDE
    density : sympy.Expr
        The unknown :math:`p(t, \theta)` (an undefined function).
    equation : sympy.Eq
        :math:`\partial_t p = -\nabla\cdot(bp) + \tfrac12\sum_{ij}\partial_i\partial_j(D_{ij}p)`.

    Notes
    -----
    Use :meth:`operator`, :meth:`current`, :meth:`stationary_density`,
    :meth:`free_energy`, :meth:`wasserstein_residual`.
    """

    def __init__(self, sde: SDE):
        self.sde = sde
        self.params = sde.params
        self.drift = sp.Matrix(sde.drift)
        self.diffusion_matrix = sp.Matrix(sde.covariance)
        self.density = sp.Function("p")(t, *self.params)

    # -- the PDE -------------------------------------------------------------------------
    def operator(self, p):
        r"""The right-hand side :math:`-\nabla\cdot(bp) + \tfrac12\sum_{ij}\partial_i\partial_j(D_{ij}p)`."""
        p = v.to_sympy(p, "p")
        params, d, D = self.params, len(self.params), self.diffusion_matrix
        out = -_div([b * p for b in self.drift], params)
        for i in range(d):
            for j in range(d):
                if D[i, j] != 0:
                    out += sp.diff(D[i, j] * p, params[i], params[j]) / 2
        return out

    def current(self, p) -> sp.Matrix:
        r"""The probability current :math:`J_i = b_i p - \tfrac12\sum_j\partial_j(D_{ij}p)`."""
        p = v.to_sympy(p, "p")
        D = self.diffusion_matrix
        return sp.Matrix([b * p - _div(D.row(i) * p, self.params) / 2
                          for i, b in enumerate(self.drift)])

    @property
    def equation(self) -> sp.Eq:
        """:math:`\\partial_t p = \\ldots` as a SymPy equation."""
        return sp.Eq(sp.Derivative(self.density, t), self.operator(self.density))

    # -- stationary density --------------------------------------------------------------
    def stationary_density(self) -> StationaryDensity:
        r"""The zero-current stationary density, where it has a closed form.

        Zero current, :math:`J = 0`, means :math:`\nabla\log p = v = D^{-1}(2b -
        \nabla\cdot D)`. Raises :class:`SymflowError` when there is no such density in closed
        form: degenerate noise (:math:`D` singular), or :math:`v` not a gradient field
        (non-gradient drift, or anisotropic / state-dependent noise not of potential form;
        a stationary state may then exist with a non-zero current: solve it with
        ``solvers.solve_fokker_planck``). In 1-D :math:`v` is always a gradient; when SymPy
        cannot integrate it the potential is returned as an unevaluated integral
        (``closed_form=False``).
        """
        params, d = self.params, len(self.params)
        D = self.diffusion_matrix
        if self.sde.is_deterministic:
            raise SymflowError(
                "this is a deterministic flow (zero diffusion): its stationary states are "
                "point masses or invariant measures of the ODE, with no density to give")
        det = sp.simplify(D.det())
        if is_zero_expr(det):
            kinetic = kinetic_density(self)
            if kinetic is not None:  # underdamped Langevin: Gibbs in L + |u|^2/2
                return self._normalizable(StationaryDensity(params, kinetic[0], "kinetic",
                                                            temperature=kinetic[1]))
            raise SymflowError(
                f"the diffusion matrix D = sigma sigma^T = {D.tolist()} is singular (rank "
                f"{D.rank()} < {d}): the noise does not reach every direction, so there is no "
                "stationary density of potential form; solve the Fokker–Planck equation "
                "numerically (solvers.solve_fokker_planck) or add noise in every direction. "
                "(A whole-state momentum SDE, d theta = u ds, du = -(gamma u + grad L) ds + "
                "noise, has the Gibbs density exp(-(L + |u|^2/2)/T)/Z only when the velocity "
                "noise is constant and isotropic, D_uu = 2 gamma T I; this one is not)")
        c = self.sde.isotropic_variance
        if c is not None:
            temperature = c / 2
            pot = self._drift_potential()
            if pot is None:
                raise self._no_closed_form(
                    "the drift is not a gradient field (its Jacobian is not symmetric), so "
                    "there is no zero-current (Gibbs) density; a stationary state, if any, "
                    "carries a non-zero probability current")
            return self._normalizable(StationaryDensity(
                params, sp.expand(pot / temperature), "gibbs", temperature=temperature))
        divd = sp.Matrix([_div(D.row(i), params) for i in range(d)])
        vfield = (D.inv() * (2 * self.drift - divd)).applyfunc(sp.cancel)
        if d == 1:  # every 1-D field is a gradient: log p = int v
            phi = sp.integrate(vfield[0], params[0])
            if not phi.has(sp.Integral):
                return self._normalizable(StationaryDensity(
                    params, sp.expand(-phi), "potential", log_gradient=vfield))
            s = sp.Dummy(str(params[0]))
            phi = sp.Integral(vfield[0].xreplace({params[0]: s}), (s, 0, params[0]))
            return StationaryDensity(params, -phi, "potential", closed_form=False,
                                     log_gradient=vfield)
        if not expr_is_gradient(list(vfield), params):
            raise self._no_closed_form(
                "v = D^{-1}(2b - div D) is not a gradient field, so there is no zero-current "
                "density (the drift is not of potential form for this anisotropic or "
                "state-dependent noise)")
        phi = expr_potential(list(vfield), params)  # v = -grad(phi): p ~ exp(-phi)
        if phi is None:
            raise self._no_closed_form("v = D^{-1}(2b - div D) is a gradient field but its "
                                       "potential has no closed form in SymPy")
        return self._normalizable(StationaryDensity(params, sp.expand(phi), "potential"))

    def _normalizable(self, density):
        """``density``, unless :math:`e^{-\\Phi}` is decidably not integrable (then raise)."""
        if _not_integrable(density.potential, self.params):
            raise SymflowError(
                f"the zero-current density of {self.sde.name} is exp(-({density.potential})), "
                "which is not integrable over the whole space: the drift does not confine the "
                "process, so there is no stationary probability density (paths escape to "
                "infinity or spread without bound)")
        return density

    def _drift_potential(self):
        """:math:`L` with ``drift == -grad L`` (None when the drift is not a gradient field)."""
        if self.sde.potential is not None:
            return self.sde.potential
        drift = list(self.drift)
        if not expr_is_gradient(drift, self.params):
            return None
        if all(b.is_polynomial(*self.params) for b in drift):
            return _polynomial_potential(drift, self.params)
        return expr_potential(drift, self.params)

    def _no_closed_form(self, why: str) -> SymflowError:
        return SymflowError(
            f"no closed-form stationary density for {self.sde.name}: {why}. Solve the "
            "stationary Fokker–Planck equation numerically (solvers.solve_fokker_planck) or "
            "simulate a long ensemble (solvers.simulate_sde)")

    # -- Wasserstein view ----------------------------------------------------------------
    def free_energy(self) -> "FreeEnergy":
        r"""The free energy :math:`F[p] = \mathbb E_p[L] + T\,\mathbb E_p[\log p]` of a gradient
        drift :math:`-\nabla L` with isotropic constant noise :math:`D = 2T I`."""
        c = self.sde.isotropic_variance
        pot = self._drift_potential() if c is not None else None
        if c is None or pot is None:
            raise SymflowError(
                "the free-energy (Wasserstein gradient-flow) form needs a gradient drift "
                "-grad L and constant isotropic noise D = 2T I; this SDE has "
                f"drift {list(self.drift)} and D = {self.diffusion_matrix.tolist()}")
        return FreeEnergy(pot, self.params, c / 2)

    def wasserstein_residual(self, p=None):
        r""":math:`\mathcal{FP}[p] - \nabla\cdot(p\,\nabla\,\delta F/\delta p)` (zero for every
        density ``p``; by default a generic function :math:`p(\theta)`)."""
        fe = self.free_energy()
        p = sp.Function("p")(*self.params) if p is None else v.to_sympy(p, "p")
        return sp.simplify(sp.expand(self.operator(p) - fe.wasserstein_flow(p)))

    # -- display -------------------------------------------------------------------------
    def latex(self) -> str:
        return sp.latex(self.equation)

    def __str__(self) -> str:
        kind = "continuity" if self.sde.is_deterministic else "Fokker-Planck"
        return f"{kind} equation of {self.sde.name}: {self.equation}"

    def __repr__(self) -> str:
        return f"<FokkerPlanck of {self.sde!r}>"


def _not_integrable(potential, params) -> bool:
    r"""True when :math:`e^{-\Phi}` is decidably not integrable over :math:`\mathbb R^d`.

    Decided for polynomial :math:`\Phi` only: degree :math:`\le 1`; in 1-D an odd degree
    or a negative leading coefficient; a quadratic with a constant Hessian that is not
    positive definite. Anything undecided (other shapes, symbolic signs) passes.
    """
    phi = sp.expand(potential)
    if not phi.is_polynomial(*params):
        return False
    poly = sp.Poly(phi, *params)
    degree = poly.total_degree()
    if degree <= 1:
        return True
    if len(params) == 1:
        return degree % 2 == 1 or _sign(poly.LC()) is False
    hess = sp.hessian(phi, params)
    if degree != 2 or hess.free_symbols:
        return False
    return bool(np.linalg.eigvalsh(np.array(hess.evalf(), dtype=float)).min() <= 0)


def _polynomial_potential(field, params):
    r""":math:`V` with :math:`f = -\nabla V` for a polynomial gradient field :math:`f`.

    Euler's identity: the degree-:math:`n` part of :math:`V` is
    :math:`-\tfrac1n\,\theta\cdot f_{n-1}` (:math:`f_{n-1}` the degree-:math:`(n-1)` part
    of :math:`f`), and :math:`V(0) = 0`.
    """
    radial = sp.expand(sum((q * c for q, c in zip(params, field)), sp.S.Zero))
    if radial == 0:
        return sp.S.Zero
    poly = sp.Poly(radial, *params)
    return -sp.Add(*[c / sum(m) * sp.Mul(*[q**e for q, e in zip(params, m)])
                     for m, c in poly.terms()])


class FreeEnergy(LatexDisplay):
    r"""The free energy :math:`F[p] = \int L\,p\,d\theta + T\int p\log p\,d\theta`.

    Example::

        >>> import sympy as sp
        >>> x = sp.Symbol("x")
        >>> fe = FreeEnergy(x**2 / 2, [x], sp.Rational(1, 2))
        >>> fe.first_variation(sp.Function("p")(x))
        x**2/2 + log(p(x))/2 + 1/2
    """

    def __init__(self, loss, params, temperature):
        v.check_symbolic(loss=loss, params=params, temperature=temperature)
        self.params = v.check_params(params)
        self.loss = v.to_sympy(loss, "loss")
        self.temperature = v.to_sympy(temperature, "temperature")

    def functional(self, p):
        """:math:`F[p]` as an (unevaluated) integral over :math:`\\mathbb R^d`."""
        p = v.to_sympy(p, "p")
        limits = [(q, -sp.oo, sp.oo) for q in self.params]
        return sp.Integral(self.loss * p + self.temperature * p * sp.log(p), *limits)

    def first_variation(self, p):
        r""":math:`\delta F/\delta p = L + T(\log p + 1)`."""
        p = v.to_sympy(p, "p")
        return self.loss + self.temperature * (sp.log(p) + 1)

    def wasserstein_flow(self, p):
        r""":math:`\nabla\cdot(p\,\nabla\,\delta F/\delta p)`, the Wasserstein gradient flow of F."""
        p = v.to_sympy(p, "p")
        var = self.first_variation(p)
        return _div([p * sp.diff(var, q) for q in self.params], self.params)

    def minimizer(self) -> sp.Expr:
        """The unnormalized Gibbs density :math:`e^{-L/T}` (where the flow stops)."""
        return sp.exp(-self.loss / self.temperature)

    def latex(self) -> str:
        p = sp.Symbol("p")
        return (f"F[p] = \\int \\Big({sp.latex(self.loss)}\\Big)\\,p\\,d\\theta + "
                f"{sp.latex(self.temperature)}\\int {sp.latex(p * sp.log(p))}\\,d\\theta")

    def __repr__(self) -> str:
        return f"<FreeEnergy L={self.loss} T={self.temperature}>"


def fokker_planck(sde) -> FokkerPlanck:
    r"""The Fokker–Planck equation of an SDE (see :class:`FokkerPlanck`).

    Example::

        >>> import sympy as sp, symflow as sf
        >>> from symflow._stochastic._sde import SDE
        >>> x, s = sp.symbols("x s", positive=True)
        >>> fp = fokker_planck(SDE(drift=[-x], diffusion=s, params=[x]))
        >>> fp.operator(sp.exp(-x**2 / s**2)).simplify()
        0
        >>> fp.stationary_density().expr
        exp(-x**2/s**2)/(sqrt(pi)*s)
    """
    if not isinstance(sde, SDE):
        raise SymflowError(f"got {v._describe(sde)}; pass an SDE (sf.SDE or sf.sme(...)); "
                           "for an ODE flow use continuity_equation")
    return FokkerPlanck(sde)


def continuity_equation(flow, params=None) -> FokkerPlanck:
    r"""The continuity equation :math:`\partial_t p = -\nabla\cdot(f\,p)` of a deterministic flow.

    ``flow`` is a :class:`~symflow.ModifiedEquation` (its full field), an :class:`SDE`
    (its drift) or a column of expressions with ``params``.

    Example::

        >>> import sympy as sp, symflow as sf
        >>> x = sp.Symbol("x")
        >>> me = sf.modified_equation(sf.GD(), x**2 / 2, [x], order=1)
        >>> continuity_equation(me).operator(sp.Integer(1))
        h/2 + 1
    """
    v.check_symbolic(flow=flow if not isinstance(flow, (ModifiedEquation, SDE)) else None,
                     params=params)
    if isinstance(flow, ModifiedEquation):
        field, params = flow.field, flow.params
    elif isinstance(flow, SDE):
        field, params = flow.drift, flow.params
    else:
        if params is None:
            raise SymflowError("give params=[...] with a field given as expressions")
        field = flow
    sde = SDE(drift=field, params=params, name="flow")
    return FokkerPlanck(sde)


__all__ = ["FokkerPlanck", "FreeEnergy", "StationaryDensity", "continuity_equation",
           "fokker_planck", "t"]
