r"""The input- vs parameter-gradient inequality of an MLP, stated and derived exactly.

For an :math:`l`-layer perceptron :math:`h^{(t+1)} = g^{(t)}(z^{(t+1)})`,
:math:`z^{(t+1)} = W^{(t)}h^{(t)} + b^{(t)}`, :math:`h^{(1)} = x`, and any scalar
:math:`f(h^{(l+1)})` (Dherin, Munn & Barrett, *The Geometric Occam's Razor Implicit in Deep
Learning*, arXiv:2111.15090, 2021; Su Jianlin, "输入梯度惩罚与参数梯度惩罚的一个不等式", 2021):

.. math::

    \lVert\nabla_x f\rVert^2 \sum_{t=1}^{l}
    \frac{1 + \lVert h^{(t)}\rVert^2}{\lVert W^{(t)}\rVert^2\,\lVert\nabla_x h^{(t)}\rVert^2}
    \;\le\; \lVert\nabla_\theta f\rVert^2 .

Derivation (each step is checked by :class:`PenaltyDerivation`), with
:math:`\delta^{(t)} = \partial f/\partial z^{(t+1)}` and :math:`J^{(t)} = \nabla_x h^{(t)}`:

1. *Chain rule in the parameters* (exact):
   :math:`\nabla_{W^{(t)}} f = \delta^{(t)} h^{(t)\top}`, :math:`\nabla_{b^{(t)}} f = \delta^{(t)}`,
   so :math:`\lVert\nabla_\theta f\rVert^2 = \sum_t \lVert\delta^{(t)}\rVert^2(1 + \lVert
   h^{(t)}\rVert^2)`. Here :math:`\lVert\nabla_\theta f\rVert` **must be the Euclidean norm of
   all parameters** (Frobenius on each :math:`\nabla_{W^{(t)}} f`); since that matrix has rank
   one, any unitarily invariant norm gives the same value for it.
2. *Chain rule in the input* (exact): :math:`\nabla_x f = J^{(t)\top} W^{(t)\top}\delta^{(t)}`
   for *every* :math:`t`.
3. *Cauchy–Schwarz* (loses the misalignment of :math:`\delta^{(t)}` with the top singular
   direction of :math:`M = W^{(t)}J^{(t)}`): :math:`\lVert M^\top\delta\rVert \le \lVert M\rVert_2
   \lVert\delta\rVert \le \lVert M\rVert_F\lVert\delta\rVert`; the Frobenius gap is the
   Lagrange identity :math:`\lVert\delta\rVert^2\lVert M\rVert_F^2 - \lVert M^\top\delta
   \rVert^2 = \sum_k\sum_{i<j}(\delta_i M_{jk} - \delta_j M_{ik})^2`.
4. *Norm inequality* (submultiplicativity; loses the misalignment of the singular vectors
   of :math:`W^{(t)}` and :math:`J^{(t)}`): :math:`\lVert W J\rVert \le \lVert W\rVert\,\lVert
   J\rVert` for the spectral and the Frobenius norm (Frobenius gap: again a sum of
   Lagrange squares over rows of :math:`W` and columns of :math:`J`).
5. Divide, multiply by :math:`1 + \lVert h^{(t)}\rVert^2` and sum over :math:`t`.

**Which matrix norms make it hold.** The vector norms are Euclidean and
:math:`\lVert\nabla_\theta f\rVert` is the Euclidean norm of all parameters (Frobenius on
each :math:`\nabla_{W^{(t)}} f`, which has rank one, so any unitarily invariant norm gives
the same value there). The matrix norm :math:`\lVert\cdot\rVert` on :math:`W^{(t)}` and
:math:`\nabla_x h^{(t)}` is what the seed leaves unnamed. Steps 3–4 together need
:math:`\lVert W J\rVert_2 \le \lVert W\rVert\,\lVert J\rVert`, so:

* it **holds** for every norm that dominates the spectral norm,
  :math:`\lVert A\rVert \ge \lVert A\rVert_2`: the spectral norm itself (the reading of the
  seed's proof, whose step :math:`\lVert J^\top W^\top\delta\rVert \le \lVert J\rVert\lVert W
  \rVert\lVert\delta\rVert` is the defining property of the operator 2-norm; it is the
  tightest such norm, *equality* for one layer with a scalar output), Frobenius, nuclear,
  every Schatten-:math:`p` norm. With Frobenius the :math:`t = 1` term carries
  :math:`\lVert I\rVert_F^2 = d` (the input dimension) in its denominator.
* it **fails** for the entrywise max norm (steps 3 and 4 both break: it is neither
  consistent with the Euclidean norm nor submultiplicative), and for the induced
  :math:`\ell_1` (max column sum) and :math:`\ell_\infty` (max row sum) norms: they are
  submultiplicative, so step 4 survives, but step 3 does not, since
  :math:`\lVert M^\top\delta\rVert_2 \le \lVert M\rVert\lVert\delta\rVert_2` is false for
  them (row and column vectors respectively). :func:`penalty_counterexample` gives, for
  each, a one-layer network with exact ratio rhs/lhs = 1/2;
  :func:`gradient_penalty_inequality` refuses to state the inequality for them.

A one-layer net makes the condition sharp: with :math:`J^{(1)} = I` and :math:`\delta`
along the top left singular vector of :math:`W`, rhs/lhs
:math:`= \lVert W\rVert^2\lVert I\rVert^2/\lVert W\rVert_2^2`, so a norm with
:math:`\lVert W\rVert\,\lVert I_d\rVert < \lVert W\rVert_2` for some :math:`W` always has a
counterexample.
"""

from __future__ import annotations

import dataclasses
import numbers
import random

import mpmath
import sympy as sp

from .._core._errors import SymflowError
from .._core._guard import check_symbolic, to_sympy
from .._core._table import Table, TableDisplay

__all__ = ["PenaltyDerivation", "penalty_counterexample", "derive_penalty_inequality",
           "gradient_penalty_inequality", "matrix_norm", "penalty_symbols", "NORMS",
           "HOLDING_NORMS"]

#: Matrix norms understood by :func:`matrix_norm` and the checks.
NORMS = ("spectral", "frobenius", "nuclear", "max", "l1", "linf")
#: The norms for which the inequality is a theorem (they dominate the spectral norm).
HOLDING_NORMS = ("spectral", "frobenius", "nuclear")
_SUBSCRIPT = {"spectral": "2", "frobenius": "F", "nuclear": "*", "max": r"\max", "l1": "1",
              "linf": r"\infty"}


def _check_norm(norm):
    if norm not in NORMS:
        raise SymflowError(f"got norm={norm!r}; choose one of {NORMS}")
    return norm


def penalty_symbols(norm="spectral") -> dict:
    r"""The abstract symbols of :func:`gradient_penalty_inequality`.

    ``grad_x`` is :math:`\lVert\nabla_x f\rVert`, ``grad_theta`` :math:`\lVert\nabla_\theta
    f\rVert` (Euclidean), and the indexed bases ``W[t]``, ``h[t]``, ``J[t]`` stand for
    :math:`\lVert W^{(t)}\rVert`, :math:`\lVert h^{(t)}\rVert` and :math:`\lVert\nabla_x
    h^{(t)}\rVert`, the matrix ones in the norm ``norm`` (its subscript is in the name);
    ``t`` is the layer index.
    """
    sub = _SUBSCRIPT[_check_norm(norm)]
    return {
        "grad_x": sp.Symbol(r"\|\nabla_{x} f\|", nonnegative=True),
        "grad_theta": sp.Symbol(r"\|\nabla_{\theta} f\|", nonnegative=True),
        "W": sp.IndexedBase(rf"\|W\|_{{{sub}}}", positive=True),
        "h": sp.IndexedBase(r"\|h\|", nonnegative=True),
        "J": sp.IndexedBase(rf"\|\nabla_{{x}} h\|_{{{sub}}}", positive=True),
        "t": sp.Symbol("t", integer=True, positive=True),
    }


def _plain_name(name: str) -> str:
    r"""A LaTeX name of :func:`penalty_symbols` in plain text (``\|W\|_{2}`` -> ``|W|_2``)."""
    for tex, text in ((r"\|", "|"), (r"\nabla_{x}", "grad_x"), (r"\nabla_{\theta}", "grad_theta"),
                      (r"\max", "max"), (r"\infty", "inf"), ("{", ""), ("}", "")):
        name = name.replace(tex, text)
    return name


class PenaltyInequality(sp.LessThan):
    r"""The relation of :func:`gradient_penalty_inequality`: a SymPy ``Le`` whose ``str``
    spells the norms in plain text (``|grad_x f|``, ``|W|_2[t]``); its LaTeX keeps
    :math:`\lVert\nabla_x f\rVert`, :math:`\lVert W\rVert_2` and the rest.
    """

    def _sympystr(self, printer):
        plain = {s: sp.Symbol(_plain_name(s.name), **s.assumptions0)
                 for s in self.atoms(sp.Symbol) if "\\" in s.name}
        return printer._print(sp.Le(self.lhs.xreplace(plain), self.rhs.xreplace(plain),
                                    evaluate=False))


def gradient_penalty_inequality(depth, norm="spectral"):
    r"""The inequality as a SymPy relation ``Le(lhs, rhs)`` for ``depth`` layers.

    ``depth`` is a positive integer (an explicit sum) or a SymPy symbol (a ``Sum``). The
    symbols are those of :func:`penalty_symbols`. ``norm`` is the matrix norm; only the
    norms of :data:`HOLDING_NORMS` give a true statement, the others raise an error that
    cites their counterexample (see the module docstring).

    Example::

        >>> rel = gradient_penalty_inequality(2)
        >>> s = penalty_symbols()
        >>> rel.lhs.subs({s["grad_x"]: 1, s["W"][1]: 1, s["J"][1]: 1, s["h"][1]: 0,
        ...               s["W"][2]: 2, s["J"][2]: 1, s["h"][2]: 1})
        3/2
        >>> gradient_penalty_inequality(sp.Symbol("l")).lhs.has(sp.Sum)
        True
        >>> print(gradient_penalty_inequality(1))
        |grad_x f|**2*(|h|[1]**2 + 1)/(|W|_2[1]**2*|grad_x h|_2[1]**2) <= |grad_theta f|**2
    """
    if _check_norm(norm) not in HOLDING_NORMS:
        ce = penalty_counterexample(norm)
        raise SymflowError(
            f"the inequality is false for the {norm} matrix norm: "
            f"penalty_counterexample(\"{norm}\") is a one-layer network with rhs/lhs = "
            f"{ce['ratio']}. It holds for the norms "
            f"that dominate the spectral norm: {HOLDING_NORMS}")
    s = penalty_symbols(norm)
    t = s["t"]
    term = (1 + s["h"][t] ** 2) / (s["W"][t] ** 2 * s["J"][t] ** 2)
    if isinstance(depth, sp.Symbol):
        total = sp.Sum(term, (t, 1, depth))
    elif isinstance(depth, numbers.Integral) and not isinstance(depth, bool) and depth >= 1:
        total = sp.Add(*[term.subs(t, k) for k in range(1, int(depth) + 1)])
    else:
        raise SymflowError(f"got depth={depth!r}; depth must be a positive integer (number of "
                           "layers) or a SymPy symbol")
    return PenaltyInequality(s["grad_x"] ** 2 * total, s["grad_theta"] ** 2, evaluate=False)


def penalty_counterexample(norm) -> dict:
    r"""A one-layer network that violates the inequality in the matrix norm ``norm``.

    The network is derived with symbolic weights (``tanh`` units) and evaluated at
    :math:`W = (1\;1)`, readout :math:`u = 1` for ``"max"`` and ``"l1"``, at
    :math:`W = (1\;1)^\top`, :math:`u = (1, 1)` for ``"linf"``; zero bias and
    :math:`x = 0`, so every quantity is exact. Returns ``{"derivation", "point", "lhs",
    "rhs", "ratio"}``.

    Example::

        >>> penalty_counterexample("max")["ratio"], penalty_counterexample("linf")["ratio"]
        (1/2, 1/2)
    """
    if _check_norm(norm) in HOLDING_NORMS:
        raise SymflowError(f"the inequality holds for the {norm} norm (it dominates the "
                           "spectral norm); there is no counterexample")
    widths, u = ([1, 2], [1, 1]) if norm == "linf" else ([2, 1], [1])
    d = derive_penalty_inequality(widths, "tanh", readout=u)
    point = {sym: 1 if str(sym).startswith("W") else 0 for sym in d.symbols}
    lhs = sp.nsimplify(d.lhs(norm).xreplace(point))
    rhs = sp.nsimplify(d.rhs().xreplace(point))
    return {"derivation": d, "point": point, "lhs": lhs, "rhs": rhs, "ratio": rhs / lhs}


# -- activations --------------------------------------------------------------------------

def _activation(spec, layer):
    """``(g, name)`` with ``g`` a function of one SymPy expression."""
    named = {
        "tanh": sp.tanh,
        "sigmoid": lambda z: 1 / (1 + sp.exp(-z)),
        "relu": lambda z: sp.Max(0, z),
        "gelu": lambda z: z * (1 + sp.erf(z / sp.sqrt(2))) / 2,
        "softplus": lambda z: sp.log(1 + sp.exp(z)),
        "identity": lambda z: z,
    }
    if isinstance(spec, str):
        if spec == "generic":
            g = sp.Function(f"g{layer}")
            return g, f"g{layer}"
        if spec not in named:
            raise SymflowError(f"got activation={spec!r}; choose one of {sorted(named)}, "
                               "'generic' (an undefined function) or a callable")
        return named[spec], spec
    if isinstance(spec, sp.Lambda) or callable(spec):
        return spec, getattr(spec, "__name__", "custom")
    raise SymflowError(f"got activation={spec!r}; give a name such as 'tanh' or a function")


def _derivative(g, z):
    """:math:`g'(z)`, also for an undefined ``g`` (as SymPy's chain rule writes it)."""
    d = sp.Dummy("z")
    return sp.diff(g(d), d).subs(d, z)


# -- norms -------------------------------------------------------------------------------

def _fro2(A):
    return sp.Add(*[a**2 for a in A])


def matrix_norm(A, kind="spectral"):
    r"""A matrix norm of a SymPy Matrix, as an exact expression where one exists.

    ``kind``: ``"spectral"`` (largest singular value; closed form for vectors and 2x2,
    otherwise exact eigenvalues of :math:`A^\top A` when ``A`` is numeric),
    ``"frobenius"``, ``"nuclear"`` (numeric or vectors/2x2), ``"max"`` (largest
    :math:`|a_{ij}|`), ``"l1"`` (max column sum), ``"linf"`` (max row sum).

    Example::

        >>> matrix_norm(sp.Matrix([[3, 0], [0, 4]])), matrix_norm(sp.Matrix([[1, 1]]), "max")
        (4, 1)
    """
    check_symbolic(A=A)
    A = sp.Matrix(A)
    m, n = A.shape
    if kind == "frobenius":
        return sp.sqrt(_fro2(A))
    if kind == "max":
        return sp.Max(*[sp.Abs(a) for a in A])
    if kind == "l1":
        return sp.Max(*[sp.Add(*[sp.Abs(A[i, j]) for i in range(m)]) for j in range(n)])
    if kind == "linf":
        return sp.Max(*[sp.Add(*[sp.Abs(A[i, j]) for j in range(n)]) for i in range(m)])
    if kind not in ("spectral", "nuclear"):
        raise SymflowError(f"got norm kind={kind!r}; choose one of {NORMS}")
    if m == 1 or n == 1:
        return sp.sqrt(_fro2(A))
    if (m, n) == (2, 2):
        fro2, det = _fro2(A), A.det()
        if kind == "nuclear":
            return sp.sqrt(fro2 + 2 * sp.Abs(det))
        return sp.sqrt((fro2 + sp.sqrt(fro2**2 - 4 * det**2)) / 2)
    if A.free_symbols:
        raise SymflowError(
            f"the {kind} norm of a symbolic {m}x{n} matrix has no closed form here; substitute "
            "numbers first (PenaltyDerivation.evaluate does), or use kind='frobenius'")
    eig = list((A.T * A if n <= m else A * A.T).eigenvals(multiple=True))
    sv = [sp.sqrt(e) for e in eig]
    return sp.Max(*sv) if kind == "spectral" else sp.Add(*sv)


def _mp_norm(A, kind):
    """The norm of a numeric mpmath matrix (working precision)."""
    m, n = A.rows, A.cols
    if kind == "frobenius":
        return mpmath.sqrt(sum(A[i, j] ** 2 for i in range(m) for j in range(n)))
    if kind == "max":
        return max(abs(A[i, j]) for i in range(m) for j in range(n))
    if kind == "l1":
        return max(sum(abs(A[i, j]) for i in range(m)) for j in range(n))
    if kind == "linf":
        return max(sum(abs(A[i, j]) for j in range(n)) for i in range(m))
    sv = mpmath.svd_r(A, compute_uv=False)
    sv = [sv[i] for i in range(sv.rows)]
    return max(sv) if kind == "spectral" else sum(sv)


# -- the derivation ------------------------------------------------------------------------

@dataclasses.dataclass
class Step:
    """One step of the derivation: what it states, whether it was verified, what it loses."""

    name: str
    statement: str
    verified: bool
    how: str
    loses: str

    def __str__(self) -> str:
        mark = "verified" if self.verified else "NOT verified"
        return f"[{mark}] {self.name}: {self.statement}\n    ({self.how}; loses: {self.loses})"


def _lagrange_sos(a, b):
    r""":math:`\sum_{i<j}(a_i b_j - a_j b_i)^2 = \lVert a\rVert^2\lVert b\rVert^2 - (a\cdot b)^2`."""
    return sp.Add(*[(a[i] * b[j] - a[j] * b[i]) ** 2
                    for i in range(len(a)) for j in range(i + 1, len(a))])


def _vanishes(expr, symbols, points=3) -> bool:
    """Exact zero test: expansion, else 40-digit evaluation at random rationals + simplify."""
    expr = to_sympy(expr, "expr")
    if expr == 0 or sp.expand(expr) == 0:
        return True
    rng = random.Random(1)
    syms = sorted(symbols, key=str)
    for _ in range(points):
        pt = {s: sp.Rational(rng.randint(-90, 90), rng.randint(50, 120)) for s in syms}
        try:
            val = sp.N(expr.xreplace(pt), 40)
        except (TypeError, ValueError):
            break
        if not val.is_number:
            break
        if abs(val) > 1e-30:
            return False
    return sp.simplify(expr) == 0


class PenaltyDerivation(TableDisplay):
    r"""The inequality derived for one concrete MLP with symbolic weights.

    Attributes: ``x`` (input symbols), ``weights`` / ``biases`` (SymPy matrices),
    ``readout`` (:math:`u`, with :math:`f = u^\top h^{(l+1)}`; at a point only
    :math:`\partial f/\partial h^{(l+1)} = u` matters, so this covers every scalar
    :math:`f`), ``hidden[t]`` (:math:`h^{(t+1)}`, ``hidden[0] = x``), ``pre[t]``
    (:math:`z^{(t+2)}`), ``delta[t]`` (:math:`\partial f/\partial z^{(t+2)}` by backprop),
    ``jac[t]`` (:math:`\nabla_x h^{(t+1)}` by forward products), ``f``,
    ``grad_x`` and ``grad_theta`` (by SymPy's ``diff`` of ``f``, independent of the
    backprop quantities), ``steps`` (:class:`Step` list, after :meth:`verify`).
    Layers are 0-based in Python, 1-based in the formulas.
    """

    def __init__(self, weights, biases, x, readout, activations, names):
        self.weights = [sp.Matrix(W) for W in weights]
        self.biases = [sp.Matrix(b) for b in biases]
        self.x = sp.Matrix(x)
        self.readout = sp.Matrix(readout)
        self.activations = activations
        self.activation_names = names
        self.depth = len(self.weights)
        hidden, pre, dg = [self.x], [], []
        for W, b, g in zip(self.weights, self.biases, activations):
            z = W * hidden[-1] + b
            pre.append(z)
            hidden.append(z.applyfunc(g))
            dg.append(z.applyfunc(lambda zi, g=g: _derivative(g, zi)))
        self.hidden, self.pre = hidden, pre
        self.f = (self.readout.T * hidden[-1])[0, 0]
        delta = [None] * self.depth
        delta[-1] = dg[-1].multiply_elementwise(self.readout)
        for t in range(self.depth - 2, -1, -1):
            delta[t] = dg[t].multiply_elementwise(self.weights[t + 1].T * delta[t + 1])
        self.delta = delta
        jac = [sp.eye(len(self.x))]
        for t in range(self.depth - 1):
            jac.append(sp.diag(*dg[t]) * self.weights[t] * jac[-1])
        self.jac = jac
        self.grad_x = sp.Matrix([sp.diff(self.f, xi) for xi in self.x])
        blocks = []
        for W, b in zip(self.weights, self.biases):
            gW = W.applyfunc(lambda w: sp.diff(self.f, w) if isinstance(w, sp.Symbol) else 0)
            gb = b.applyfunc(lambda w: sp.diff(self.f, w) if isinstance(w, sp.Symbol) else 0)
            blocks.append((gW, gb))
        self.grad_blocks = blocks
        self.grad_theta = sp.Matrix([g for gW, gb in blocks for g in list(gW) + list(gb)])
        self.steps = []

    # -- symbolic pieces ---------------------------------------------------------------
    @property
    def symbols(self) -> set:
        out = set(self.x.free_symbols) | set(self.readout.free_symbols)
        for W, b in zip(self.weights, self.biases):
            out |= W.free_symbols | b.free_symbols
        return out

    def rhs(self):
        r""":math:`\lVert\nabla_\theta f\rVert^2 = \sum_t\lVert\delta_t\rVert^2(1 +
        \lVert h_t\rVert^2)`, the Euclidean norm over every entry of every
        :math:`W^{(t)}, b^{(t)}` (numeric entries included; step 1 checks it against
        ``grad_theta`` on the symbolic ones)."""
        return sp.Add(*[_fro2(d) * (1 + _fro2(hh)) for d, hh in zip(self.delta, self.hidden)])

    def layer_term(self, t, kind="spectral"):
        r"""The ``t``-th (0-based) term :math:`\lVert\nabla_x f\rVert^2(1+\lVert h\rVert^2)/
        (\lVert W\rVert^2\lVert J\rVert^2)` as an expression (where the norm has one)."""
        W, J = self.weights[t], self.jac[t]
        return (_fro2(self.grad_x) * (1 + _fro2(self.hidden[t]))
                / (matrix_norm(W, kind) ** 2 * matrix_norm(J, kind) ** 2))

    def lhs(self, kind="spectral"):
        """The left side with the matrix norm ``kind`` (an expression)."""
        return sp.Add(*[self.layer_term(t, kind) for t in range(self.depth)])

    def statement(self, kind="spectral"):
        """``Le(lhs, rhs)`` for this network and norm."""
        return sp.Le(self.lhs(kind), self.rhs(), evaluate=False)

    def frobenius_certificate(self):
        r"""An explicit sum of non-negative terms equal to ``rhs - lhs("frobenius")``.

        .. math::

            \sum_t \frac{1 + \lVert h_t\rVert^2}{\lVert W_t\rVert_F^2\lVert J_t\rVert_F^2}
            \Bigl[\lVert\delta_t\rVert^2 \sum_{i,k}\Lambda(w_i, j_k) + \sum_k \Lambda(\delta_t, m_k)
            \Bigr],

        with :math:`\Lambda(a,b) = \sum_{p<q}(a_p b_q - a_q b_p)^2` (Lagrange), :math:`w_i`
        the rows of :math:`W_t`, :math:`j_k` and :math:`m_k` the columns of :math:`J_t` and
        :math:`M_t = W_tJ_t`. It holds once the chain rule (steps 1–2) holds.
        """
        total = sp.S.Zero
        for t in range(self.depth):
            W, J, d = self.weights[t], self.jac[t], self.delta[t]
            M = W * J
            sos_d = sp.Add(*[_lagrange_sos(list(W.row(i)), list(J.col(k)))
                             for i in range(W.rows) for k in range(J.cols)])
            sos_c = sp.Add(*[_lagrange_sos(list(d), list(M.col(k))) for k in range(M.cols)])
            total += ((1 + _fro2(self.hidden[t])) / (_fro2(W) * _fro2(J))
                      * (_fro2(d) * sos_d + sos_c))
        return total

    # -- verification --------------------------------------------------------------------
    def verify(self, points=3):
        """Check every step exactly (identities) or by exact substitution; fill ``steps``."""
        syms = self.symbols
        steps = []
        ok = all(_vanishes(gW[i, j] - self.delta[t][i] * self.hidden[t][j], syms, points)
                 for t, (gW, gb) in enumerate(self.grad_blocks)
                 for i in range(gW.rows) for j in range(gW.cols)
                 if isinstance(self.weights[t][i, j], sp.Symbol))
        ok &= all(_vanishes(gb[i] - self.delta[t][i], syms, points)
                  for t, (gW, gb) in enumerate(self.grad_blocks) for i in range(len(gb))
                  if isinstance(self.biases[t][i], sp.Symbol))
        steps.append(Step(
            "1. chain rule (parameters)",
            "grad_W(t) f = delta_t h_t^T, grad_b(t) f = delta_t, hence |grad_theta f|^2 = "
            "sum_t |delta_t|^2 (1 + |h_t|^2)", ok,
            "sp.diff of f against backprop, residual 0", "nothing (an identity)"))
        ok = all(_vanishes(gx - c, syms, points) for t in range(self.depth)
                 for gx, c in zip(self.grad_x,
                                  self.jac[t].T * self.weights[t].T * self.delta[t]))
        steps.append(Step(
            "2. chain rule (input)", "grad_x f = J_t^T W_t^T delta_t for every layer t", ok,
            "sp.diff of f against the product, residual 0", "nothing (an identity)"))
        ok = self._lagrange_identities()
        steps.append(Step(
            "3. Cauchy-Schwarz",
            "|M^T delta|^2 <= |M|_2^2 |delta|^2 <= |M|_F^2 |delta|^2, M = W_t J_t", ok,
            "Frobenius gap = Lagrange sum of squares, exact polynomial identity at these shapes",
            "the angle between delta_t and the top singular direction of W_t J_t"))
        steps.append(Step(
            "4. norm inequality",
            "|W_t J_t| <= |W_t| |J_t| (spectral or Frobenius)", ok,
            "Frobenius gap = Lagrange sum of squares (exact identity); spectral: a theorem "
            "(|A|_2 = max |Av|/|v|), its loss factor at a point from evaluate()",
            "the misalignment of the singular vectors of W_t and J_t (and, for Frobenius, the "
            "spread of the singular values: |A|_F >= |A|_2)"))
        steps.append(Step(
            "5. sum over layers",
            "|grad_x f|^2 sum_t (1+|h_t|^2)/(|W_t|^2 |J_t|^2) <= sum_t |delta_t|^2 (1+|h_t|^2) "
            "= |grad_theta f|^2", all(s.verified for s in steps),
            "steps 1-4 term by term", "nothing beyond steps 3-4"))
        self.steps = steps
        return steps

    def _lagrange_identities(self) -> bool:
        """The two Lagrange identities, on generic entries of this network's shapes."""
        for t in range(self.depth):
            W, J = self.weights[t], self.jac[t]
            m, k = W.rows, W.cols
            n = J.cols
            A = sp.Matrix(m, k, lambda i, j: sp.Symbol(f"a{i}_{j}"))
            B = sp.Matrix(k, n, lambda i, j: sp.Symbol(f"b{i}_{j}"))
            d = sp.Matrix(m, 1, lambda i, _: sp.Symbol(f"d{i}"))
            M = A * B
            gap_c = _fro2(d) * _fro2(M) - _fro2(M.T * d)
            sos_c = sp.Add(*[_lagrange_sos(list(d), list(M.col(j))) for j in range(n)])
            gap_d = _fro2(A) * _fro2(B) - _fro2(M)
            sos_d = sp.Add(*[_lagrange_sos(list(A.row(i)), list(B.col(j)))
                             for i in range(m) for j in range(n)])
            if sp.expand(gap_c - sos_c) != 0 or sp.expand(gap_d - sos_d) != 0:
                return False
        return True

    # -- numbers ---------------------------------------------------------------------------
    def random_point(self, seed=0, scale=1):
        """A reproducible random rational point for every symbol (weights, x, readout)."""
        check_symbolic(scale=scale)
        rng = random.Random(seed)
        return {s: sp.Rational(rng.randint(-100, 100), 50) * scale
                for s in sorted(self.symbols, key=str)}

    def _numeric_activations(self):
        if not hasattr(self, "_num_act"):
            zs = sp.Dummy("z")
            mods = [{"Heaviside": lambda z, h0=0.5: mpmath.mpf(1) if z > 0 else
                     (mpmath.mpf(0) if z < 0 else mpmath.mpf(h0)),
                     "Max": max, "Min": min}, "mpmath"]
            out = []
            for g in self.activations:
                val = g(zs)
                if val.atoms(sp.core.function.AppliedUndef):
                    raise SymflowError(
                        "a generic (undefined) activation has no numeric values; derive with a "
                        "concrete activation such as 'tanh' to evaluate")
                out.append((sp.lambdify(zs, val, mods), sp.lambdify(zs, _derivative(g, zs), mods)))
            self._num_act = out
        return self._num_act

    def evaluate(self, point, kind="spectral", dps=30) -> dict:
        r"""lhs, rhs and the per-layer losses at a point, in ``dps``-digit arithmetic.

        The point is propagated numerically (forward values, backprop :math:`\delta`,
        forward Jacobians), which :meth:`verify` has shown to equal the symbolic gradients.
        Per layer ``t``: ``cauchy_schwarz[t]`` :math:`= \lVert\delta\rVert^2\lVert M
        \rVert^2/\lVert\nabla_x f\rVert^2` and ``submultiplicative[t]`` :math:`= \lVert W
        \rVert^2\lVert J\rVert^2/\lVert M\rVert^2` (both :math:`\ge 1` for holding norms).
        A term with :math:`\lVert W\rVert\lVert J\rVert = 0` (dead ReLU layer) is
        :math:`0/0`; it is taken as 0 since :math:`\nabla_x f = 0` there too.
        """
        if kind not in NORMS:
            raise SymflowError(f"got kind={kind!r}; choose one of {NORMS}")
        acts = self._numeric_activations()
        with mpmath.workdps(dps):
            def num(M):
                M = sp.Matrix(M).xreplace(point)
                return mpmath.matrix([[mpmath.mpf(sp.N(M[i, j], dps + 5))
                                       for j in range(M.cols)] for i in range(M.rows)])

            def sq(v):
                return sum(c ** 2 for c in v)

            Ws = [num(W) for W in self.weights]
            bs = [num(b) for b in self.biases]
            u = num(self.readout)
            hs, dgs = [num(self.x)], []
            for W, b, (g, dg) in zip(Ws, bs, acts):
                z = W * hs[-1] + b
                hs.append(mpmath.matrix([g(c) for c in z]))
                dgs.append(mpmath.matrix([dg(c) for c in z]))
            deltas = [None] * self.depth
            deltas[-1] = mpmath.matrix([a * c for a, c in zip(dgs[-1], u)])
            for t in range(self.depth - 2, -1, -1):
                back = Ws[t + 1].T * deltas[t + 1]
                deltas[t] = mpmath.matrix([a * c for a, c in zip(dgs[t], back)])
            Js = [mpmath.eye(hs[0].rows)]
            for t in range(self.depth - 1):
                Js.append(mpmath.diag(list(dgs[t])) * Ws[t] * Js[-1])
            grad_x = Ws[0].T * deltas[0]
            gx2 = sq(grad_x)
            rhs = sum(sq(d) * (1 + sq(hh)) for d, hh in zip(deltas, hs))
            lhs, cs, sub = mpmath.mpf(0), [], []
            for t in range(self.depth):
                M = Ws[t] * Js[t]
                nW, nJ, nM = _mp_norm(Ws[t], kind), _mp_norm(Js[t], kind), _mp_norm(M, kind)
                denom = nW ** 2 * nJ ** 2
                if denom == 0:
                    cs.append(mpmath.inf)
                    sub.append(mpmath.inf)
                    continue
                lhs += gx2 * (1 + sq(hs[t])) / denom
                cs.append(sq(deltas[t]) * nM ** 2 / gx2 if gx2 else mpmath.inf)
                sub.append(denom / nM ** 2 if nM else mpmath.inf)
            return {"lhs": lhs, "rhs": rhs, "ratio": rhs / lhs if lhs else mpmath.inf,
                    "cauchy_schwarz": cs, "submultiplicative": sub}

    def check(self, kinds=NORMS, points=5, seed=0, dps=30) -> dict:
        """Evaluate at ``points`` random rational points; ``{kind: [rhs/lhs, ...]}``.

        A ratio below 1 is a violation; for the norms in :data:`HOLDING_NORMS` there is
        none (to ``dps`` digits).
        """
        out = {k: [] for k in kinds}
        for p in range(points):
            pt = self.random_point(seed + p)
            for k in kinds:
                out[k].append(self.evaluate(pt, k, dps)["ratio"])
        return out

    def report(self) -> str:
        """The derivation, step by step."""
        if not self.steps:
            self.verify()
        return str(self)

    def _head(self) -> str:
        widths = [len(self.x)] + [W.rows for W in self.weights]
        return (f"MLP widths {widths}, activations {self.activation_names}: "
                "|grad_x f|^2 sum_t (1+|h_t|^2)/(|W_t|^2 |grad_x h_t|^2) <= |grad_theta f|^2")

    def __str__(self) -> str:  # shows only what is verified: printing starts no work
        steps = [str(s) for s in self.steps] or ["(steps not verified yet: call .verify())"]
        return "\n".join([self._head()] + steps)

    def _table(self) -> Table:
        rows = [[s.name, s.statement, "yes" if s.verified else "NO", s.how, s.loses]
                for s in self.steps]
        return Table(["step", "statement", "verified", "how", "loses"], rows, self._head(),
                     [] if self.steps else ["(steps not verified yet: call .verify())"])


def _check_chain(weights, biases, x):
    for t, W in enumerate(weights):
        if not isinstance(W, sp.MatrixBase):
            raise SymflowError(f"got weights[{t}] of type {type(W).__name__}; give SymPy "
                               "matrices (or use widths=[...] for symbolic weights)")
    if len(x) != weights[0].cols:
        raise SymflowError(
            f"the input has {len(x)} entries but weights[0] is {weights[0].rows}x"
            f"{weights[0].cols}: W^(1) must have one column per input entry")
    for t in range(1, len(weights)):
        if weights[t].cols != weights[t - 1].rows:
            raise SymflowError(
                f"layer shapes do not chain: weights[{t - 1}] is {weights[t - 1].rows}x"
                f"{weights[t - 1].cols} (outputs {weights[t - 1].rows} values) but "
                f"weights[{t}] is {weights[t].rows}x{weights[t].cols} (expects "
                f"{weights[t].cols}); W^(t+1) needs as many columns as W^(t) has rows")
    for t, (W, b) in enumerate(zip(weights, biases)):
        if len(b) != W.rows:
            raise SymflowError(f"biases[{t}] has {len(b)} entries but weights[{t}] has "
                               f"{W.rows} rows; give one bias per output unit")


def derive_penalty_inequality(widths=None, activation="tanh", weights=None, biases=None,
                              readout=None, verify=True) -> PenaltyDerivation:
    r"""Derive the inequality for a concrete MLP with symbolic weights, step by step.

    Parameters
    ----------
    widths : sequence of int
        ``[d_in, d_1, ..., d_l]``: input size and the width of each of the ``l`` layers;
        weights ``W{t}_{i}{j}``, biases ``b{t}_{i}``, inputs ``x{i}`` and the readout
        ``u{i}`` (:math:`f = u^\top h^{(l+1)}`) are real symbols.
    activation : str, callable, or list of them (one per layer)
        ``"tanh"``, ``"sigmoid"``, ``"relu"``, ``"gelu"``, ``"softplus"``, ``"identity"``,
        ``"generic"`` (an undefined :math:`g_t`: the derivation for *every* activation), or
        a function of one SymPy expression.
    weights, biases : list of sympy.Matrix
        Instead of ``widths``: explicit (symbolic or numeric) layer matrices; their shapes
        must chain.
    readout : sequence
        :math:`u` (default symbols ``u{i}``).

    Examples
    --------
    Example (one layer, scalar output: equality with the spectral norm)::

        >>> d = derive_penalty_inequality([2, 1], "tanh")
        >>> all(s.verified for s in d.steps)
        True
        >>> sp.simplify(d.rhs() - d.lhs("spectral"))
        0
    """
    if weights is None:
        if widths is None:
            raise SymflowError("give widths=[d_in, d_1, ..., d_l] or weights=[W1, W2, ...]")
        widths = list(widths)
        if len(widths) < 2 or any(isinstance(w, bool) or not isinstance(w, numbers.Integral)
                                  or w < 1 for w in widths):
            raise SymflowError(f"got widths={widths}; give at least two positive integers "
                               "[d_in, d_1, ..., d_l]")
        weights = [sp.Matrix(widths[t + 1], widths[t],
                             lambda i, j, t=t: sp.Symbol(f"W{t + 1}_{i + 1}{j + 1}", real=True))
                   for t in range(len(widths) - 1)]
        if biases is None:
            biases = [sp.Matrix(widths[t + 1], 1,
                                lambda i, _, t=t: sp.Symbol(f"b{t + 1}_{i + 1}", real=True))
                      for t in range(len(widths) - 1)]
    else:
        weights = [W if not isinstance(W, (list, tuple)) else sp.Matrix(W) for W in weights]
    if biases is None:
        biases = [sp.zeros(W.rows, 1) for W in weights]
    biases = [sp.Matrix(b) for b in biases]
    if len(biases) != len(weights):
        raise SymflowError(f"got {len(weights)} weight matrices and {len(biases)} biases; "
                           "give one bias vector per layer")
    x = sp.Matrix(weights[0].cols if isinstance(weights[0], sp.MatrixBase) else 0, 1,
                  lambda i, _: sp.Symbol(f"x{i + 1}", real=True))
    _check_chain(weights, biases, x)
    depth = len(weights)
    specs = activation if isinstance(activation, (list, tuple)) else [activation] * depth
    if len(specs) != depth:
        raise SymflowError(f"got {len(specs)} activations for {depth} layers; give one per "
                           "layer or a single one")
    acts = [_activation(s, t + 1) for t, s in enumerate(specs)]
    if readout is None:
        readout = sp.Matrix(weights[-1].rows, 1, lambda i, _: sp.Symbol(f"u{i + 1}", real=True))
    readout = sp.Matrix(readout)
    if len(readout) != weights[-1].rows:
        raise SymflowError(f"got a readout of {len(readout)} entries for an output of "
                           f"{weights[-1].rows}; give one entry per output unit")
    out = PenaltyDerivation(weights, biases, x, readout, [a[0] for a in acts],
                            [a[1] for a in acts])
    if verify:
        out.verify()
    return out
