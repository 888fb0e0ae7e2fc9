r"""Eliminating an optimizer's memory on its invariant (slow) manifold.

An optimizer with memory is a map on :math:`z = (\theta, m)`:

.. math::  \theta_{n+1} = \theta_n + A_h(\theta_n, m_n), \qquad m_{n+1} = B_h(\theta_n, m_n),

with :math:`A_0 = 0` (consistency) and, at :math:`h = 0`, an affine memory map
:math:`B_0(\theta, m) = P m + c(\theta)` whose matrix :math:`P` has no eigenvalue 1 (heavy
ball: :math:`P = \beta I`; Adam: :math:`P = \mathrm{diag}(\beta_1, \beta_2)`). Then the memory
relaxes geometrically to a manifold :math:`m = M_h(\theta) = \sum_k h^k M_k(\theta)` that the
map leaves invariant:

.. math::  M_h\bigl(\theta + A_h(\theta, M_h(\theta))\bigr) = B_h\bigl(\theta, M_h(\theta)\bigr).

At order :math:`h^k` the unknown :math:`M_k` enters only as :math:`(I - P) M_k`, so
:math:`M_k = (I - P)^{-1} r_k` with :math:`r_k` built from :math:`M_0, \dots, M_{k-1}`.
On the manifold the optimizer is the one-step map :math:`\theta \mapsto \theta +
A_h(\theta, M_h(\theta))`, whose modified equation is the reduced flow (cf. Kovachki &
Stuart, *Continuous time analysis of momentum methods*, JMLR 22, 2021, and the
invariant-manifold reduction of Fenichel theory).
"""

from __future__ import annotations


import sympy as sp

from .._core._errors import SymflowError
from .._core._progress import progress_bar
from .._core._symbols import h as H
from .._core._validate import rationalize
from ._algebra import ExprAlgebra, PolyAlgebra
from ._jets import JetAlgebra, _plus, _unit
from ._ratjets import RationalJetAlgebra
from ._rings import coefficient_domains, inverse_constants
from ._series import Evaluator, NotExpressible, SeriesOps, multi_index_powers, multi_indices


def gradient_functions(dim: int):
    """One undefined SymPy function per gradient component (kept opaque in the rule)."""
    return [sp.Function(f"grad_{i}") for i in range(dim)]


def symbolic_rule(optimizer, params, n_held=0):
    r"""Run ``step_memory`` on symbols: returns ``(A, B, memory_symbols, grad_functions)``.

    ``A = theta_next - theta`` and ``B = memory_next`` are column Matrices of expressions
    in the parameters, memory symbols, ``h``, hyperparameters and ``grad_i(point)``.
    With ``n_held > 0`` (a stop-gradient loss, see :mod:`symflow._engine._field`) the rule
    may also call ``grad(point, held)``, which becomes ``grad_i(*point, *held)``.
    """
    dim = len(params)
    theta = sp.Matrix(params)
    size = optimizer.memory_size(dim)
    memory = sp.Matrix([sp.Dummy(f"m{k}") for k in range(size)])
    fns = gradient_functions(dim)

    def oracle(point, held=None):
        point = sp.Matrix(point) if isinstance(point, (list, tuple)) else point
        if not isinstance(point, sp.MatrixBase) or len(point) != dim:
            raise SymflowError(f"grad() was called with {point!r}; it takes a column Matrix "
                               f"of {dim} entries (one per parameter)")
        if held is None:
            return sp.Matrix([f(*point) for f in fns])
        held = sp.Matrix(held) if isinstance(held, (list, tuple)) else held
        if not n_held:
            raise SymflowError("grad() was called with a second (held) point; only a "
                               "stop-gradient loss has one: pass stop_gradient={copy: param}")
        if not isinstance(held, sp.MatrixBase) or len(held) != n_held:
            raise SymflowError(f"grad() was called with the held point {held!r}; it takes "
                               f"{n_held} entries, one per stop-gradient copy")
        return sp.Matrix([f(*point, *held) for f in fns])

    try:
        nxt, mem = optimizer.step_memory(theta, memory, oracle, H)
    except SymflowError:
        raise
    except Exception as err:  # the rule failed on symbolic input
        raise SymflowError(f"the update rule of {optimizer!r} raised {type(err).__name__}: "
                           f"{err}") from err
    nxt, mem = sp.Matrix(nxt), sp.Matrix(mem)
    if nxt.shape != (dim, 1) or mem.shape != (size, 1):
        raise SymflowError(
            f"step_memory of {optimizer!r} returned shapes {nxt.shape} and {mem.shape}; "
            f"expected ({dim}, 1) for theta and ({size}, 1) for the memory")
    return ((nxt - theta).applyfunc(rationalize), mem.applyfunc(rationalize),
            tuple(memory), fns)


def relaxation_matrix(B, memory):
    r"""``(I - P)^{-1}`` with :math:`P = \partial B / \partial m` at :math:`h = 0`, checked constant."""
    P = B.jacobian(sp.Matrix(memory)).subs(H, 0)
    if not P.is_zero_matrix and (P.free_symbols & set(memory) or P.atoms(sp.core.function.AppliedUndef)):
        raise SymflowError(
            "the memory update is not affine in the memory with a constant matrix at h = 0 "
            f"(d memory_next / d memory = {P.tolist()}); the invariant-manifold reduction "
            "needs m_next = P m + c(theta) + O(h)")
    I_minus_P = sp.eye(len(memory)) - P
    # rational functions of the hyperparameters are decided by cancellation; simplify only
    # for anything else (sqrt(beta), ...)
    exact = all(e.is_rational_function() for e in I_minus_P)
    tidy = sp.cancel if exact else sp.simplify
    det = tidy(I_minus_P.det())
    if det == 0:
        raise SymflowError(
            "the memory does not relax: d memory_next / d memory has the eigenvalue 1 at h = 0 "
            f"(P = {P.tolist()}), so there is no invariant manifold m = M(theta); "
            "use reduce=False for the flow on the whole state")
    return I_minus_P.inv().applyfunc(sp.factor) if exact else sp.simplify(I_minus_P.inv())


def reduce_on_manifold(alg, params, A, B, memory, fns, grad_derivative, order: int,
                       inv=None, bases=None, progress=None):
    r"""Manifold :math:`M_0..M_K` and reduced increments :math:`d_0..d_K`, ``K = order``.

    ``grad_derivative(i, beta)`` returns :math:`\partial^\beta \nabla_i L` in ``alg``.
    ``bases``: the points about which the arguments of ``grad_i`` are expanded (default
    ``params``; a stop-gradient oracle appends the parameters its held copies copy).
    ``progress``: the bar over the orders of the manifold (see :func:`progress_bar`).
    """
    dim, size = len(params), len(memory)
    if inv is None:
        inv = relaxation_matrix(B, memory)
    inv = [[alg.from_expr(c) for c in row] for row in inv.tolist()]
    reduce = getattr(alg, "reduce", lambda a: a)
    manifold = [[alg.zero] * size for _ in range(order + 1)]
    grads = {f: (i, (lambda beta, i=i: grad_derivative(i, beta))) for i, f in enumerate(fns)}
    theta = [alg.from_expr(p) for p in params]

    def evaluator(k):
        ops = SeriesOps(alg, k)
        leaves = {m: [manifold[j][c] for j in range(k + 1)] for c, m in enumerate(memory)}
        return Evaluator(ops, params if bases is None else bases, H, leaves, grads)

    derivatives = []  # derivatives[j][c](beta) = D^beta M_j[c], cached across orders
    # theta's step does not depend on the memory at h = 0: then h^k of the step needs
    # M_0..M_{k-1} only, and the last step series below is already the final one
    slow = A.jacobian(sp.Matrix(memory)).subs(H, 0).is_zero_matrix
    for k in progress_bar(range(order + 1), desc="memory manifold", unit="order",
                          progress=progress):
        ev = evaluator(k)
        shift = [ev(a) for a in A]
        rhs = [ev(b)[k] for b in B]
        lhs = _moved_manifold(alg, derivatives, shift, k, size)
        resid = [r - l for r, l in zip(rhs, lhs)]
        manifold[k] = [reduce(sum((inv[c][e] * resid[e] for e in range(size)), alg.zero))
                       for c in range(size)]
        derivatives.append([_derivative_fn(alg, m) for m in manifold[k]])
        if k == 0:
            _check_slaved(alg, A, memory, manifold[0], dim)
    if not slow:
        shift = [evaluator(order)(a) for a in A]
    if any(not alg.is_zero(s[0]) for s in shift):
        raise SymflowError("the update rule does not reduce to the identity on theta at h = 0; "
                           "a modified equation exists only for consistent maps")
    d = [tuple(theta)] + [tuple(shift[i][k] for i in range(dim)) for k in range(1, order + 1)]
    return d, manifold


def _moved_manifold(alg, derivatives, shift, k, size):
    r"""The :math:`h^k` coefficient of :math:`\sum_{j<k} h^j M_j(\theta + \delta)`.

    ``shift`` holds the series :math:`\delta` (zero at :math:`h = 0`) and
    ``derivatives[j][c](beta)`` :math:`= \partial^\beta M_j[c]`. By Taylor's formula the
    term :math:`j` contributes :math:`\sum_{1 \le |\beta| \le k-j} \partial^\beta M_j
    [\delta^\beta]_{k-j} / \beta!`: one coefficient per multi-index, with the powers
    :math:`\delta^\beta` computed once for every :math:`j` and memory component.
    """
    lhs = [alg.zero] * size
    if not k:
        return lhs
    if any(not alg.is_zero(s[0]) for s in shift):
        raise NotExpressible("evaluated at a point that does not tend to theta as h -> 0")
    ops = SeriesOps(alg, k)
    power = multi_index_powers(ops, shift)
    active = [i for i, s in enumerate(shift) if any(not alg.is_zero(c) for c in s)]
    dim = len(shift)
    for n in range(1, k + 1):
        for beta, weight in multi_indices(active, n, dim):
            weight = alg.const(weight)
            series = power(beta)
            for j in range(k - n + 1):
                coeff = series[k - j]
                if alg.is_zero(coeff):
                    continue
                coeff = coeff * weight
                for c in range(size):
                    der = derivatives[j][c](beta)
                    if not alg.is_zero(der):
                        lhs[c] = lhs[c] + der * coeff
    reduce = getattr(alg, "reduce", lambda a: a)
    return [reduce(c) for c in lhs]


def _check_slaved(alg, A, memory, m0, dim):
    """The recursion needs the memory to move theta only at O(h) where M_0 varies."""
    A_m = A.jacobian(sp.Matrix(memory)).subs(H, 0)
    if A_m.is_zero_matrix:
        return
    varying = [c for c, comp in enumerate(m0)
               if any(not alg.is_zero(alg.diff(comp, i)) for i in range(dim))]
    if any(A_m[:, c] != sp.zeros(A_m.rows, 1) for c in varying):
        raise SymflowError(
            "this update moves theta by O(1) through a memory component whose manifold "
            "value depends on theta at h = 0; the reduction supports updates where such "
            "memory enters theta's step multiplied by h (like Adam and RMSprop)")


def _derivative_fn(alg, element):
    cache = {}

    def derivative(beta):
        if beta not in cache:
            if not any(beta):
                cache[beta] = element
            else:
                i = next(k for k, e in enumerate(beta) if e)
                lower = tuple(e - (k == i) for k, e in enumerate(beta))
                cache[beta] = alg.diff(derivative(lower), i)
        return cache[beta]

    return derivative


def _half_powers(exprs) -> int:
    return sum(1 for e in exprs for p in e.atoms(sp.Pow) if p.exp.is_Rational and p.exp.q == 2)


def expand_reduced_map(optimizer, loss, params, hypers, order: int, path: str = "auto",
                       progress=None):
    r"""The reduced one-step map of a memory optimizer, expanded to ``h**(order)``.

    Returns ``(algebra, d, manifold)``: ``d[k]`` the increments of the reduced map
    (``d[0] = theta``, ``k <= order``) and ``manifold[k]`` the coefficient :math:`M_k` of
    the memory.
    Arithmetics are tried in turn: polynomial, jet, rational jet, expressions.
    """
    A, B, memory, fns = symbolic_rule(optimizer, params)
    exact_inv = relaxation_matrix(B, memory)
    inv, post = inverse_constants(exact_inv)
    domain = coefficient_domains(set(hypers) | set(post))[0]
    # the rational path keeps exact fractions in the hyperparameters: cancelling them
    # costs gcds, but iota-symbols would leave its results unsimplified
    rational_domain = coefficient_domains(hypers)[-1]
    dim = len(params)

    def jet_derivative(alg):
        return lambda i, beta: alg.jet(_plus(_unit(dim, i), beta)) if hasattr(alg, "jet") \
            else alg.gens[alg.index[_plus(_unit(dim, i), beta)]]

    def concrete_derivative(alg):
        grad = [alg.from_expr(sp.diff(loss, p)) for p in params]
        cache = {}

        def derivative(i, beta):
            if (i, beta) not in cache:
                cache[(i, beta)] = _derivative_fn(alg, grad[i])(beta)
            return cache[(i, beta)]

        return derivative

    radical = _half_powers(list(A) + list(B)) > 0 or any(
        p.exp.is_negative and (p.base.free_symbols & set(memory) or p.base.has(*fns))
        for e in list(A) + list(B) for p in e.atoms(sp.Pow))

    def candidates():
        # a polynomial ring has no square roots: skip it for a rule that takes one (Adam)
        if path == "polynomial" or (path == "auto" and not _half_powers(list(A) + list(B))):
            try:
                alg = PolyAlgebra(params, domain)
                alg.from_expr(loss)
                yield alg, concrete_derivative(alg)
            except (ValueError, TypeError, sp.PolynomialError,
                    sp.polys.polyerrors.CoercionFailed):
                pass
        for extra in (2, 4):
            if path == "jet" or (path == "auto" and not radical):
                alg = JetAlgebra(params, loss, domain, max_order=order + 1 + extra)
                yield alg, jet_derivative(alg)
            if path in ("auto", "rational"):
                n_atoms = 8 * dim + 4 * _half_powers(list(A) + list(B))
                if post:  # 1/(1 - beta) as iota symbols in normal form: no gcds
                    alg = RationalJetAlgebra(params, loss, domain, order + 1 + extra,
                                             n_atoms=n_atoms, post=post)
                    yield alg, jet_derivative(alg)
                if not post or not jets_short:  # fractions: other denominators (1 + beta)
                    alg = RationalJetAlgebra(params, loss, rational_domain, order + 1 + extra,
                                             n_atoms=n_atoms)
                    yield alg, jet_derivative(alg)
        if path in ("auto", "general"):
            alg = ExprAlgebra(params)
            yield alg, concrete_derivative(alg)

    reasons, jets_short = [], False
    for alg, derivative in candidates():
        # iota symbols on rings (in normal form on the rational path: its atoms need exact
        # zero tests); plain expressions and fractions take the exact inverse
        exact = alg.kind == "general" or (alg.kind == "rational" and not alg.post)
        if alg.kind != "rational":
            alg.post = {} if exact else post
        jets_short = False
        try:
            d, manifold = reduce_on_manifold(alg, params, A, B, memory, fns, derivative, order,
                                             exact_inv if exact else inv, progress=progress)
            return alg, d, manifold
        except NotExpressible as err:
            reasons.append(f"{alg.kind}: {err}")
        except RuntimeError as err:  # jet order exceeded: retry with more jets
            reasons.append(f"{alg.kind}: {err}")
            jets_short = True
    raise SymflowError(f"could not expand the update rule of {optimizer!r} on its memory "
                       f"manifold ({'; '.join(reasons)})")
