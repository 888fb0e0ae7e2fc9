r"""Linear stability at a fixed point: the exact flow, each truncated modified flow, the map.

At a point :math:`z^*` that the optimizer leaves in place (:math:`\Phi_h(z^*) = z^*` for
every :math:`h`), every term :math:`f_k` of the modified equation vanishes, and the
Jacobian of the full modified field is the matrix logarithm of the step's Jacobian:

.. math::

    \sum_{k\ge0} h^k\, Df_k(z^*) = \tfrac1h \log D\Phi_h(z^*)
    = \tfrac1h \sum_{j\ge1} \tfrac{(-1)^{j+1}}{j} \bigl(D\Phi_h(z^*) - I\bigr)^j ,

because the time-:math:`h` flow of the linearised field is the linearised map. So the
order-:math:`p` flow's eigenvalues approach the map's rates :math:`\log(\mu)/h` order by
order (:meth:`EquilibriumSpectrum.log_map_jacobian` is the independent check).

On the Dirac-GAN (Mescheder et al., ICML 2018) the exact flow is a centre (eigenvalues
:math:`\pm \tfrac i2` for :math:`r = 1`); simultaneous GDA's order-1 flow has eigenvalues
:math:`\tfrac h8 \pm \tfrac i2`, an outward spiral, matching :math:`|\mu| > 1` for the
map, while alternating GDA's step has determinant one and its flows stay centres.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import sympy as sp

from .._core._errors import SymflowError
from .._core._display import NOT_COMPUTED, computed, shorten
from .._core._latex import LatexDisplay, aligned
from .._core._symbols import h
from .._core._table import Table
from .._core._guard import check_symbolic, to_sympy
from .._core._validate import check_order, check_params, resolve_values
from .._engine._modified import has_memory, modified_equation, optimizer_map

__all__ = ["EquilibriumSpectrum", "equilibrium_eigenvalues"]


def _taylor(expr, params, point, degree):
    """Taylor polynomial of ``expr`` at ``point``, in the shifts ``params - point``."""
    eps = sp.Dummy("eps")
    shifted = expr.xreplace({p: c + eps * p for p, c in zip(params, point)})
    return sp.expand(sp.series(shifted, eps, 0, degree + 1).removeO().subs(eps, 1))


@dataclasses.dataclass(frozen=True, repr=False)
class EquilibriumSpectrum(LatexDisplay):
    r"""Jacobians at a fixed point :math:`z^*` of the exact and truncated modified flows.

    ``jacobians[p]`` is the Jacobian at :math:`z^*` of the order-``p`` flow
    :math:`\sum_{k\le p} h^k f_k` (``p = 0``: the exact flow), ``eigenvalues[p]`` its
    eigenvalues (expressions in ``h`` and hyperparameters), ``map_jacobian`` the Jacobian
    :math:`D\Phi_h(z^*)` of one step.
    """

    optimizer: object
    params: tuple
    point: tuple
    jacobians: tuple
    map_jacobian: sp.ImmutableMatrix

    @functools.cached_property
    def eigenvalues(self) -> tuple:
        """``eigenvalues[p]``: the eigenvalues of ``jacobians[p]``, with multiplicity."""
        return tuple([sp.simplify(e) for e in J.eigenvals(multiple=True)]
                     for J in self.jacobians)

    @property
    def map_rates(self) -> list:
        r""":math:`\log(\mu)/h` for each eigenvalue :math:`\mu` of one step (principal log)."""
        return [sp.log(mu) / h for mu in self.map_jacobian.eigenvals(multiple=True)]

    def log_map_jacobian(self, order: int) -> sp.Matrix:
        r"""The series :math:`\tfrac1h\log D\Phi_h(z^*)` truncated after :math:`h^{order}`.

        Equals ``jacobians[order]`` (the engine's derivation) when everything is right.
        """
        order = check_order(order)
        A = sp.Matrix(self.map_jacobian) - sp.eye(len(self.params))
        log, power = sp.zeros(*A.shape), sp.eye(len(self.params))
        for j in range(1, order + 2):
            power = (power * A).applyfunc(sp.expand)
            log += sp.Rational((-1) ** (j + 1), j) * power
        return (log / h).applyfunc(
            lambda e: sp.series(sp.expand(e), h, 0, order + 1).removeO())

    def real_parts(self, p: int, n_terms: int | None = None) -> list:
        """Real parts of ``eigenvalues[p]``, as series in ``h`` up to ``h**(n_terms-1)`` if given."""
        out = []
        for ev in self.eigenvalues[p]:
            if n_terms is not None:
                ev = sp.series(ev, h, 0, n_terms).removeO()
            out.append(sp.simplify(sp.re(sp.expand_complex(ev))))
        return out

    def at(self, lr, hyper=None):
        """Numeric eigenvalues at ``h = lr``: ``({p: array}, map rates)``, by imaginary part."""
        check_symbolic(lr=lr, hyper=hyper)
        def numeric(M):
            M = sp.Matrix(M).subs(h, sp.nsimplify(lr))
            M = M.subs(resolve_values(hyper, M))
            if M.free_symbols:
                names = ", ".join(sorted(map(str, M.free_symbols)))
                raise SymflowError(f"no numeric value for {names}; pass hyper={{...}}")
            return np.array(M.evalf(30).tolist(), dtype=complex)

        def ordered(evs):  # by imaginary part; rounding noise (|x| < 1e-13 |z|) set to 0
            tiny = 1e-13 * max(1.0, float(np.abs(evs).max()))
            evs = np.where(abs(evs.real) < tiny, 0, evs.real) \
                + 1j * np.where(abs(evs.imag) < tiny, 0, evs.imag)
            return evs[np.lexsort((evs.real, evs.imag))]

        flows = {p: ordered(np.linalg.eigvals(numeric(J))) for p, J in enumerate(self.jacobians)}
        rates = ordered(np.log(np.linalg.eigvals(numeric(self.map_jacobian)).astype(complex)) / lr)
        return flows, rates

    def table(self, lr, hyper=None) -> Table:
        r"""The eigenvalues at ``h = lr``, one row per flow and one for the map's rates
        :math:`\log(\mu)/h`: prints as text, renders as an HTML table in Jupyter."""
        flows, rates = self.at(lr, hyper)

        def cells(evs):
            return ", ".join(f"{z.real:+.6f}{z.imag:+.6f}i" for z in evs)

        rows = [["exact flow" if p == 0 else f"order-{p} flow", cells(evs)]
                for p, evs in flows.items()]
        rows.append(["map log(mu)/h", cells(rates)])
        return Table(["flow", "eigenvalues"], rows,
                     f"eigenvalues at z* = {tuple(self.point)}, h = {lr:g}, {self.optimizer!r}")

    def latex(self) -> str:
        """The eigenvalues of every flow as LaTeX (the Jacobians until they are computed)."""
        evs = computed(self, "eigenvalues")
        if evs is NOT_COMPUTED:
            rows = [f"J^{{({p})}} &= {sp.latex(J)}" for p, J in enumerate(self.jacobians)]
            rows.append("&\\text{(eigenvalues: call .eigenvalues)}")
        else:
            rows = [f"\\lambda^{{({p})}} &= {sp.latex(e)}" for p, e in enumerate(evs)]
        return aligned(rows)

    def __repr__(self) -> str:
        return "\n".join(shorten(line, 400) for line in str(self).splitlines())

    def __str__(self) -> str:
        evs = computed(self, "eigenvalues")
        if evs is NOT_COMPUTED:
            lines = [f"Flow Jacobians at z* = {tuple(self.point)} for {self.optimizer!r}"]
            lines += [f"  {'exact flow' if p == 0 else f'order-{p} flow'}: {J.tolist()}"
                      for p, J in enumerate(self.jacobians)]
            lines.append("  (eigenvalues: call .eigenvalues)")
            return "\n".join(lines)
        lines = [f"Jacobian eigenvalues at z* = {tuple(self.point)} for {self.optimizer!r}"]
        lines += [f"  {'exact flow' if p == 0 else f'order-{p} flow'}: {e}"
                  for p, e in enumerate(evs)]
        return "\n".join(lines)


def equilibrium_eigenvalues(optimizer, loss, params, point, order, hyper=()) -> EquilibriumSpectrum:
    r"""Jacobians (and eigenvalues) at a fixed point of the exact and each truncated modified flow.

    Only the Taylor polynomial of ``loss`` of degree ``order + 2`` at ``point`` enters the
    Jacobians of :math:`f_0, \dots, f_{order}` there, so the derivation runs on it (exact,
    polynomial arithmetic). ``point`` must be left in place by the optimizer (a stationary
    point of the loss, or an equilibrium of the game).

    Example (the Dirac-GAN under simultaneous GDA: an outward spiral at order 1)::

        >>> import symflow as sf
        >>> E, params = sf.dirac_gan()
        >>> spec = sf.equilibrium_eigenvalues(sf.SimultaneousGDA(n_first=1), E, params, [0, 0], 1)
        >>> spec.eigenvalues[0], spec.eigenvalues[1]
        ([-I/2, I/2], [h/8 - I/2, h/8 + I/2])
    """
    check_symbolic(loss=loss, params=params, point=point, hyper=hyper)
    order = check_order(order)
    params = check_params(params)
    if isinstance(point, (str, sp.Basic)) or not hasattr(point, "__len__") \
            or len(point) != len(params):
        raise SymflowError(f"got point={point!r} for {len(params)} parameters; give one "
                           "coordinate per parameter")
    point = tuple(to_sympy(c, "point") for c in point)
    if has_memory(optimizer, params):
        raise SymflowError(f"{optimizer!r} keeps memory; equilibrium_eigenvalues takes "
                           "one-step optimizers (GD, GDA, sf.Custom rules without memory)")
    poly = _taylor(to_sympy(loss, "loss"), params, point, order + 2)
    step = optimizer_map(optimizer, poly, params, hyper)
    at_point = {p: 0 for p in params}
    moved = (step - sp.Matrix(params)).xreplace(at_point).applyfunc(sp.simplify)
    if any(c != 0 for c in moved):
        raise SymflowError(
            f"got point={list(point)}, but one step of {optimizer!r} moves it by "
            f"{list(moved)}; choose a fixed point (where the gradient of the loss vanishes)")
    me = modified_equation(optimizer, poly, params, order, hyper=hyper)
    jacobians, field = [], sp.zeros(len(params), 1)
    for p, term in enumerate(me.terms):
        field += h**p * sp.Matrix(term)
        jacobians.append(sp.ImmutableMatrix(
            field.jacobian(params).xreplace(at_point).applyfunc(sp.expand)))
    map_jacobian = sp.ImmutableMatrix(step.jacobian(params).xreplace(at_point)
                                      .applyfunc(sp.expand))
    return EquilibriumSpectrum(optimizer, params, point, tuple(jacobians), map_jacobian)
