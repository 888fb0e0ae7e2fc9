r"""Numerical Fokker–Planck solves in 1-D and 2-D (finite volumes, zero-flux box).

For :math:`\partial_t p = -\nabla\cdot J`, :math:`J_k = b_k p - \tfrac12\sum_j\partial_j(D_{kj}p)`
on a box cut into :math:`n_1\,(\times n_2)` cells, the flux through each interior face is

* along the axis, Scharfetter–Gummel exponential fitting of
  :math:`J = \tfrac12(a q - \partial_k q)`, :math:`q = D_{kk}p`, :math:`a = 2b_k/D_{kk}` with
  :math:`a` frozen on the face:
  :math:`J = \frac1{2\Delta}\bigl(B(-a\Delta)\,q_- - B(a\Delta)\,q_+\bigr)`,
  :math:`B(z) = z/(e^z-1)` (Scharfetter & Gummel, IEEE Trans. Electron Devices 16, 1969;
  exact for constant coefficients, positive, upwind when the drift dominates);
* across axes, :math:`-\tfrac12\partial_j(D_{kj}p)` by central differences averaged onto the
  face.

Boundary faces carry no flux, so mass is conserved exactly: the matrix :math:`A` of
:math:`\dot p = Ap` has zero column sums. The stationary density spans its null space and is
found by one sparse solve with one equation replaced by :math:`\sum_c p_c|c| = 1`; a
transient solve uses Crank–Nicolson after two implicit-Euler half steps (Rannacher's
start, which damps the high modes of a rough initial density). The SDE's drift and
diffusion matrix are compiled once (:func:`solvers.vector_function`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sps
import scipy.sparse.linalg as spla
import sympy as sp

from symflow import SymflowError
from symflow._stochastic._sde import SDE

from .._ode._compile import vector_function
from ._grid_density import GridDensity, cell_centers, check_box, grid_edges, mesh_points
from ._sde import constant_values


def _bernoulli(z):
    """:math:`B(z) = z/(e^z - 1)`, with :math:`B(0) = 1`."""
    z = np.asarray(z, dtype=float)
    small = np.abs(z) < 1e-8
    safe = np.where(small, 1.0, z)
    with np.errstate(over="ignore"):
        out = safe / np.expm1(safe)
    return np.where(small, 1.0 - z / 2, out)


def _axis_operators(n, width):
    """Selectors of the left/right cell of each interior face, and a central derivative."""
    faces = np.arange(n - 1)
    left = sps.csr_matrix((np.ones(n - 1), (faces, faces)), shape=(n - 1, n))
    right = sps.csr_matrix((np.ones(n - 1), (faces, faces + 1)), shape=(n - 1, n))
    rows = np.concatenate([np.arange(1, n - 1)] * 2 + [[0, 0, n - 1, n - 1]])
    cols = np.concatenate([np.arange(2, n), np.arange(0, n - 2), [1, 0, n - 1, n - 2]])
    vals = np.concatenate([np.full(n - 2, 0.5), np.full(n - 2, -0.5), [1, -1, 1, -1]]) / width
    deriv = sps.csr_matrix((vals, (rows, cols)), shape=(n, n))
    return left, right, deriv


def _lift(op, axis, cells):
    """An operator on one axis, as an operator on the C-ordered grid."""
    if len(cells) == 1:
        return op
    eye = [sps.identity(c, format="csr") for c in cells]
    return sps.kron(op, eye[1]) if axis == 0 else sps.kron(eye[0], op)


def _face_points(edges, centers, axis):
    axes = list(centers)
    axes[axis] = edges[axis][1:-1]
    return mesh_points(axes)


def fokker_planck_matrix(sde: SDE, bounds, cells, hyper=None, lr=None):
    """``(A, edges)``: the finite-volume Fokker–Planck operator :math:`\\dot p = Ap` on the box."""
    d = sde.dim
    box, cells = check_box(bounds, cells, d)
    edges = grid_edges(box, cells)
    centers = cell_centers(edges)
    widths = [float(e[1] - e[0]) for e in edges]
    cv = np.asarray(constant_values(sde, hyper, lr))
    drift = vector_function(sde.drift, sde.params, sde.constants)
    cov = vector_function(sp.Matrix(sde.covariance).reshape(d * d, 1), sde.params,
                          sde.constants)
    at_cells = np.asarray(cov(mesh_points(centers), cv)).reshape(d, d, -1)
    n_cells = int(np.prod(cells))
    ops = [_axis_operators(n, w) for n, w in zip(cells, widths)]
    a = sps.csr_matrix((n_cells, n_cells))
    for k in range(d):
        left, right, _ = (_lift(op, k, cells) for op in ops[k])
        pts = _face_points(edges, centers, k)
        b_face = np.asarray(drift(pts, cv))[k]
        d_face = np.asarray(cov(pts, cv)).reshape(d, d, -1)[k, k]
        if np.any(~np.isfinite(d_face)) or np.any(d_face <= 0):
            bad = pts[:, np.argmin(np.where(np.isfinite(d_face), d_face, -np.inf))]
            raise SymflowError(
                f"the diffusion D_{k}{k} is not positive at {np.round(bad, 4).tolist()} "
                f"(D_{k}{k} = {d_face.min():.3g}); the grid solver needs noise along every "
                "axis inside the box: shrink the box or regularize the noise")
        z = 2 * b_face / d_face * widths[k]
        q_kk = sps.diags(at_cells[k, k])
        flux = (sps.diags(_bernoulli(-z)) @ left - sps.diags(_bernoulli(z)) @ right) @ q_kk
        flux = flux / (2 * widths[k])
        for j in range(d):
            if j != k and np.any(at_cells[k, j] != 0):
                deriv_j = _lift(ops[j][2], j, cells)
                flux = flux - 0.25 * (left + right) @ deriv_j @ sps.diags(at_cells[k, j])
        div = (right - left).T / widths[k]  # cells x faces: inflow minus outflow
        a = a + div @ flux
    return a.tocsc(), edges


def solve_fokker_planck(sde, bounds, cells=None, hyper=None, lr=None, T=None, p0=None,
                        time_steps=400) -> GridDensity:
    r"""Solve the Fokker–Planck equation of a 1-D or 2-D SDE on a box (zero-flux walls).

    Parameters
    ----------
    sde : symflow.SDE
        Any drift and a diffusion matrix that is positive along each axis in the box.
    bounds : sequence of (lo, hi)
        The box; choose it to hold nearly all the mass.
    cells : int or tuple
        Cells per axis (default 800 in 1-D, 120 x 120 in 2-D).
    hyper, lr
        Numbers for the SDE's constants (``lr`` is ``h``).
    T, p0, time_steps
        Without ``T``: the stationary density. With ``T``: the density at time ``T`` from
        the initial density ``p0`` (a function of the cell-center coordinate arrays, or an
        array of the grid's shape), by ``time_steps`` Crank–Nicolson steps.

    Examples
    --------
    ::

        >>> import sympy as sp, symflow as sf, solvers as sv
        >>> x = sp.Symbol("x")
        >>> sde = sf.SDE(drift=[x - x**3], diffusion=sp.sqrt(1 + x**2 / 4), params=[x])
        >>> p = sv.solve_fokker_planck(sde, [(-3, 3)], 600)   # bimodal, no Gibbs form
        >>> round(float(p.cdf(0.0)), 6)
        0.5
    """
    if not isinstance(sde, SDE):
        raise SymflowError(f"got {type(sde).__name__}; pass a symflow.SDE")
    if cells is None:
        cells = 800 if sde.dim == 1 else 120
    a, edges = fokker_planck_matrix(sde, bounds, cells, hyper, lr)
    n = a.shape[0]
    shape = tuple(len(e) - 1 for e in edges)
    vol = float(np.prod([e[1] - e[0] for e in edges]))
    names = [str(p) for p in sde.params]
    if T is None:
        if p0 is not None:
            raise SymflowError("p0 is the initial density of a transient solve; pass T=... "
                               "too, or leave p0 out for the stationary density")
        row = np.ravel_multi_index(tuple(s // 2 for s in shape), shape)
        lhs = a.tolil()
        lhs[row, :] = vol
        rhs = np.zeros(n)
        rhs[row] = 1.0
        p = spla.spsolve(lhs.tocsc(), rhs)
        return GridDensity(edges, p.reshape(shape), names, "Fokker-Planck (grid, stationary)")
    if not (isinstance(T, (int, float)) and np.isfinite(T) and T > 0):
        raise SymflowError(f"got T={T!r}; the final time must be a positive number")
    if isinstance(time_steps, bool) or not isinstance(time_steps, int) or time_steps < 2:
        raise SymflowError(f"got time_steps={time_steps!r}; give a whole number >= 2")
    if p0 is None:
        raise SymflowError("a transient solve needs the initial density p0 (a function of "
                           "the cell-center coordinates, or an array of the grid's shape)")
    start = p0(*np.meshgrid(*cell_centers(edges), indexing="ij")) if callable(p0) else p0
    p = np.asarray(start, dtype=float).reshape(-1)
    if p.size != n or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise SymflowError(f"p0 must give {n} finite non-negative values, not all zero")
    p = p / (p.sum() * vol)
    dt = T / time_steps
    eye = sps.identity(n, format="csc")
    implicit = spla.splu((eye - 0.5 * dt * a).tocsc())  # shared by both kinds of step
    for _ in range(2):  # Rannacher start: two implicit-Euler half steps
        p = implicit.solve(p)
    explicit = (eye + 0.5 * dt * a).tocsr()
    for _ in range(time_steps - 1):  # Crank-Nicolson
        p = implicit.solve(explicit @ p)
    return GridDensity(edges, p.reshape(shape), names, f"Fokker-Planck (grid, t={T:g})")


__all__ = ["fokker_planck_matrix", "solve_fokker_planck"]
