r"""Update rules as *vector-linear forms*: the input of the coordinate-free derivation.

An optimizer has a coordinate-free modified equation when its update is, in every
coordinate, the same linear combination with scalar coefficients (numbers, :math:`h`,
hyperparameters) of the parameters :math:`\theta`, its memory slots :math:`m_j` and gradients
:math:`g(p)` evaluated at points :math:`p` that are themselves such combinations:

.. math::

    \theta_{n+1} = \theta_n - h\, g\bigl(\theta_n - h\, g(\theta_n)\bigr)
    \quad\text{(extragradient)}, \qquad
    v_{n+1} = \beta v_n - h\, g(\theta_n) \quad\text{(heavy ball)}.

The rule is run once with opaque symbols (a few coordinates, an undefined gradient
function per coordinate), parsed into forms, and checked against a run with more
coordinates: a rule that squares, normalises or mixes coordinates (RMSprop, Adam, a
preconditioner) has no such form and is refused with a :class:`SymflowError`.

Optimizers that split the parameters between players (``n_first`` or ``players``, as the
gradient descent-ascent schemes of :mod:`symflow.optimizers._gda`) get one form per player
block: each block may use its own combination (descent for one player, ascent for the
other, or a gradient at the other player's new position).

A *block form* is a tuple of ``(node, scalar)``; a node is :data:`THETA`, ``("m", j)`` (memory
slot ``j``) or ``("G", point)``, the gradient at ``point``, a tuple of block forms, one per
block. In block :math:`b` every node stands for its block-:math:`b` part.

Example::

    >>> import symflow as sf
    >>> from symflow._trees._linear_rule import linear_rule
    >>> rule = linear_rule(sf.Nesterov(beta=0.5))
    >>> rule.theta[0]  # theta + beta m - h g(theta + beta m)
    ((('theta',), 1), (('m', 0), 1/2), (('G', (((('theta',), 1), (('m', 0), 1/2)),)), -h))
"""

from __future__ import annotations

import dataclasses

import sympy as sp
from sympy.core.function import AppliedUndef

from .._core._errors import SymflowError
from .._core._guard import as_sympy
from .._core._symbols import h
from .._core._validate import rationalize

#: The node of the parameters themselves.
THETA = ("theta",)


def memory_node(j: int) -> tuple:
    """The node of memory slot ``j``."""
    return ("m", j)


@dataclasses.dataclass(frozen=True)
class LinearRule:
    """An update rule as vector-linear forms.

    ``theta[b]`` is the block form of :math:`\\theta_{n+1}` in block ``b``;
    ``memory[j][b]`` that of memory slot ``j``. ``blocks`` is the number of player blocks.
    """

    optimizer: object
    theta: tuple
    memory: tuple
    blocks: int

    def scalars(self) -> list:
        """Every scalar coefficient of the rule (SymPy expressions in ``h`` and hyperparameters)."""
        out: list = []
        forms = list(self.theta) + [f for slot in self.memory for f in slot]
        while forms:
            for node, s in forms.pop():
                out.append(s)
                if node[0] == "G":
                    forms.extend(node[1])
        return out

    @property
    def hyper(self) -> tuple:
        """The symbols other than ``h`` in the coefficients, sorted by name."""
        free = set()
        for s in self.scalars():
            free |= as_sympy(s).free_symbols
        return tuple(sorted(free - {h}, key=str))


# -- running the rule with opaque symbols ---------------------------------------------------

class _Run:
    """One run of the rule in ``sum(sizes)`` coordinates split into blocks of ``sizes``."""

    def __init__(self, optimizer, sizes, mem_size, tag, thetas=None):
        self.sizes = tuple(sizes)
        self.dim = dim = sum(sizes)
        self.block_of = [b for b, s in enumerate(sizes) for _ in range(s)]
        self.first = [sum(sizes[:b]) for b in range(len(sizes))]
        self.thetas = tuple(thetas) if thetas is not None else sp.symbols(f"theta{tag}_0:{dim}")
        self.mems = sp.symbols(f"m{tag}_0:{mem_size}") if mem_size else ()
        self.grads = tuple(sp.Function(f"G{tag}_{i}") for i in range(dim))
        self.theta_next, self.memory_next = self._step(optimizer)

    def _step(self, optimizer):
        dim = self.dim

        def oracle(point):
            point = sp.Matrix(point) if isinstance(point, (list, tuple)) else point
            if not isinstance(point, sp.MatrixBase) or len(point) != dim:
                raise SymflowError(f"grad() was called with {point!r}; it takes a column "
                                   f"Matrix of {dim} entries")
            return sp.Matrix([g(*point) for g in self.grads])

        theta = sp.Matrix(self.thetas)
        try:
            if self.mems:
                nxt, mem = optimizer.step_memory(theta, sp.Matrix(self.mems), oracle, h)
            else:
                nxt, mem = optimizer.step(theta, oracle, h), sp.zeros(0, 1)
        except Exception as err:  # noqa: BLE001 -- user code on opaque symbolic input
            raise SymflowError(
                f"the coordinate-free form is not available for {optimizer!r}: running its "
                f"update on {dim} opaque parameter(s) with an opaque gradient raised "
                f"{type(err).__name__}: {err}") from err
        return ([rationalize(e) for e in sp.Matrix(nxt)],
                [rationalize(e) for e in sp.Matrix(mem)])

    def is_vector(self, f) -> bool:
        return f.has(*self.thetas, *self.mems, *self.grads)


class _Parser:
    """Parse the components of a run into block forms (one coordinate per block)."""

    def __init__(self, optimizer, run: _Run):
        self.optimizer = optimizer
        self.run = run
        self._memo: dict = {}

    def _fail(self, what, where):
        what = str(what)
        what = what if len(what) <= 80 else what[:77] + "..."
        raise SymflowError(
            f"the coordinate-free form is not available for {self.optimizer!r}: its update "
            f"contains {what} in {where}, an element-wise operation on vectors (products, "
            "powers or functions of the parameters, memory or gradients, as in RMSprop and "
            "Adam). It needs updates that are linear combinations, with scalar coefficients, "
            "of the parameters, the memory and gradients; use the concrete form "
            "sf.modified_equation(optimizer, loss, params, order) instead")

    def _mixing(self, where):
        raise SymflowError(
            f"the coordinate-free form is not available for {self.optimizer!r}: {where} "
            "combines different coordinates (it is not the same linear combination in every "
            "coordinate), so it has no expansion in elementary differentials of L")

    def point(self, args) -> tuple:
        """The block forms of a gradient's point (one per block, read at its first coordinate)."""
        return tuple(self.parse(args[i], i, f"the point {list(args)} of a gradient")
                     for i in self.run.first)

    def parse(self, expr, i: int, where: str = "the update") -> tuple:
        """The block form of ``expr``, the ``i``-th component of a vector."""
        key = (expr, i)
        if key in self._memo:
            return self._memo[key]
        run = self.run
        out: dict = {}
        for term in sp.Add.make_args(sp.expand(expr)):
            if term == 0:
                continue
            scalars, vectors = [], []
            for f in sp.Mul.make_args(term):
                (vectors if run.is_vector(f) else scalars).append(f)
            if not vectors:
                raise SymflowError(
                    f"the coordinate-free form is not available for {self.optimizer!r}: its "
                    f"update adds the constant {term} to a vector in {where}; every summand "
                    "must be a scalar times a vector (parameters, memory or a gradient)")
            if len(vectors) > 1:
                self._fail(sp.Mul(*vectors), where)
            v = vectors[0]
            if v in run.thetas:
                node, j = THETA, run.thetas.index(v)
            elif v in run.mems:
                slot, j = divmod(run.mems.index(v), run.dim)
                node = memory_node(slot)
            elif isinstance(v, AppliedUndef) and v.func in run.grads:
                j = run.grads.index(v.func)
                node = ("G", self.point(v.args))
            else:
                self._fail(v, where)
            if j != i:
                self._mixing(where)
            out[node] = out.get(node, 0) + sp.Mul(*scalars)
        form = tuple((node, s) for node, s in out.items() if s != 0)
        self._memo[key] = form
        return form


def render(form: tuple, i: int, run: _Run):
    """A block form as the ``i``-th component of a vector in ``run``'s coordinates."""
    out = []
    for node, s in form:
        if node == THETA:
            out.append(s * run.thetas[i])
        elif node[0] == "m":
            out.append(s * run.mems[node[1] * run.dim + i])
        else:
            point = [render(node[1][run.block_of[k]], k, run) for k in range(run.dim)]
            out.append(s * run.grads[i](*point))
    return sp.Add(*out)


def _layouts(optimizer):
    """Block sizes of the parsing run and of the checking run, and fixed symbols if any."""
    players = getattr(optimizer, "players", None)
    n_first = getattr(optimizer, "n_first", None)
    if players:
        sizes = (len(players[0]), len(players[1]))
        return sizes, sizes, tuple(players[0]) + tuple(players[1])
    if n_first is not None:
        return (n_first, 1), (n_first, 2), None
    return (1,), (2,), None


def linear_rule(optimizer) -> LinearRule:
    """Parse ``optimizer``'s update rule into vector-linear forms (or raise :class:`SymflowError`)."""
    parse_sizes, check_sizes, fixed = _layouts(optimizer)
    dims = (sum(parse_sizes), sum(check_sizes))
    mem_sizes = [optimizer.memory_size(d) for d in dims]
    run = _Run(optimizer, parse_sizes, mem_sizes[0], "", fixed)
    parser = _Parser(optimizer, run)
    # the parameter update first: it shows element-wise operations (RMSprop, Adam)
    theta = tuple(parser.parse(run.theta_next[i], i, "the parameter update") for i in run.first)
    n_mem = mem_sizes[0] // dims[0]
    if any(m != n_mem * d for m, d in zip(mem_sizes, dims)):
        raise SymflowError(
            f"the coordinate-free form is not available for {optimizer!r}: its memory is not "
            f"a fixed number of vectors the size of the parameters ({mem_sizes[0]} entries for "
            f"{dims[0]} parameters, {mem_sizes[1]} for {dims[1]}; scalar state such as a step "
            "counter has no expansion in elementary differentials)")
    memory = tuple(tuple(parser.parse(run.memory_next[j * run.dim + i], i, "the memory update")
                         for i in run.first) for j in range(n_mem))
    # every coordinate of a run with more coordinates must be the same combination
    check = run if check_sizes == parse_sizes else \
        _Run(optimizer, check_sizes, mem_sizes[1], "c", fixed)
    expected = [(check.theta_next[i], theta, i) for i in range(check.dim)]
    expected += [(check.memory_next[j * check.dim + i], memory[j], i)
                 for j in range(n_mem) for i in range(check.dim)]
    for got, forms, i in expected:
        if sp.expand(got - render(forms[check.block_of[i]], i, check)) != 0:
            raise SymflowError(
                f"the coordinate-free form is not available for {optimizer!r}: its update "
                "is not the same linear combination in every coordinate (it mixes or treats "
                "coordinates differently), so it has no expansion in elementary "
                "differentials of L")
    return LinearRule(optimizer, theta, memory, len(parse_sizes))
