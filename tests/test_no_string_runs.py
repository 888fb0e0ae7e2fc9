"""No user string is ever executed, through any public callable of symflow or solvers.

The test walks ``symflow.__all__`` and ``solvers.__all__``: every function and class, and
the public methods of a sample object of every class. For each parameter of each callable
it calls the callable with valid sample arguments except that one parameter, which gets a
code-running payload (a string, a list holding it, a dict value, an object array, and an
object whose ``str`` is the payload: SymPy reads unknown objects through their text). The
payload touches a marker file; the test fails if the marker appears. Exceptions are
expected (the guard refuses the payload); only the marker counts.

New public functions, classes and parameters are walked automatically. A new *required*
parameter name needs a valid sample in ``SAMPLES`` (the test says so); a new class needs a
sample object in ``objects()``.
"""

from __future__ import annotations

import inspect
import signal
import warnings

import numpy as np
import pytest
import sympy as sp

import solvers as sv
import symflow as sf

x, y, w, c = sp.symbols("x y w c")
LOSS = (x * y - 1) ** 2 / 2

#: Valid values for required parameters, by name (add one when a new name appears).
SAMPLES = {
    "loss": LOSS, "params": [x, y], "order": 1, "optimizer": sf.GD(), "point": [1, 1],
    "lr": 0.1, "x0": [1.0, 0.5], "n_steps": 2, "lrs": [0.1, 0.05], "T": 0.1,
    "text": "x + y", "names": [x, y], "what": "params", "beta": sp.Rational(1, 2),
    "rho": sp.Rational(1, 2), "eps": sp.Rational(1, 10), "beta1": sp.Rational(1, 2),
    "beta2": sp.Rational(1, 2), "batch_size": 1, "update": lambda th, g, h: th - h * g(th),
    "drift": [-x], "flow": [-x], "p": sp.exp(-x**2), "phi": x**2,
    "values": {c: 1}, "expr": sp.Abs(x), "matrix": sp.Matrix([x * y]), "f": lambda t: -sp.log(1 + sp.exp(-t)),
    "mu1": [0], "Sigma1": [[1]], "mu2": [1], "Sigma2": [[2]], "S": [[4]], "A": [[1, 2]],
    "Sigma": [[1]], "depth": 1, "norm": "spectral", "kernel": "gaussian",
    "model": w * x, "inputs": [x], "x_train": [[1], [2]], "y_train": [1, 3],
    "theta": sp.Matrix([x, y]), "memory": sp.Matrix([0, 0]), "grad": lambda z: z,
    "h": sf.h, "dim": 2, "z": sp.Matrix([x, y]), "player": 1, "lr_ratio": 1,
    "bounds": [(-2.0, 2.0)], "n_paths": 4, "key": 0,
    "temperature": 1, "potential": x**2 / 2, "kind": "gibbs", "x_query": [[0.5]], "indices": [0], "n_samples": 4, "mean": [0.0], "cov": [[1.0]], "n": 8,
    "sizes": [1, 2, 1], "k": 0, "t": 0, "qs": (0.5,), "tol": 0.3, "axis": 0,
    "n_first": 1, "x": x, "ts": [0.0, 0.1], "u": np.array([1.0]), "shape": (1, 1),
    "X": np.eye(2), "w0": 0.5, "p0": 0.5,
}
#: Parameters that never reach SymPy (files, figures, flags, solver tolerances and grid
#: sizes read by NumPy/JAX) and would only slow the walk: a payload there runs a whole
#: numeric computation before it fails.
NOT_SYMBOLIC = {"path", "ax", "axes", "out_dir", "echo", "progress", "title", "label",
                "name", "warn", "method", "solver", "on_divergence", "devices", "chunk_size",
                "chunk", "stiff", "track_divergence", "margin", "zero_start", "rtol", "atol",
                "return_memory", "n", "time_steps", "bins"}

PAYLOAD = "__import__('pathlib').Path({marker!r}).touch()"


class Trojan:
    """An object that SymPy's non-strict sympify would read through its text."""

    def __init__(self, text):
        self.text = text

    def __str__(self):
        return self.text

    __repr__ = __str__


class _Slow(Exception):
    pass


def _variants(sample, payload):
    yield payload
    yield [payload]
    yield Trojan(payload)
    yield np.array([payload], dtype=object)
    yield lambda *args, **kwargs: payload  # a user function that returns the text
    yield {c: payload}  # a value for a constant, as in hyper= or values=
    if isinstance(sample, dict) and sample:
        yield {next(iter(sample)): payload}
    if isinstance(sample, (list, tuple)) and sample:
        yield [payload, *list(sample)[1:]]


def _alarm(signum, frame):
    raise _Slow


def _call(fn, kwargs) -> bool:
    """Call ``fn(**kwargs)``, cut after a second; False when it was cut (still running)."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn(**kwargs)
    except _Slow:
        return False
    except BaseException as err:  # noqa: BLE001 -- refusals are expected, only the marker counts
        if isinstance(err, KeyboardInterrupt):
            raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    return True


def _parameters(fn):
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    return [p for p in sig.parameters.values() if p.name != "self"
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def walk(fn, label, marker, samples, tried, strict=True, unsampled=None):
    """Feed the payload to each parameter of ``fn``; return the labels that ran it.

    ``strict=False`` (class constructors) skips a constructor with a required parameter
    that has no sample: result classes are built by functions, from internal values.
    """
    params = _parameters(fn)
    if params is None:
        return []
    missing = [p.name for p in params if p.default is p.empty and p.name not in samples]
    if missing:
        if strict:
            unsampled.append(f"{label}: {missing}")
        return []
    base = {p.name: samples[p.name] for p in params if p.default is p.empty}
    ran = []
    for p in params:
        if p.name in NOT_SYMBOLIC:
            continue
        for bad in _variants(samples.get(p.name), PAYLOAD.format(marker=str(marker))):
            finished = _call(fn, {**base, p.name: bad})
            tried.append((label, p.name))
            if marker.exists():
                marker.unlink()
                ran.append(f"{label}({p.name}={type(bad).__name__})")
            if not finished:  # a numeric argument not checked up front: one variant is enough
                break
    return ran


def objects():
    """One cheap sample object of each public class (by class name)."""
    E, players = sf.dirac_gan()
    gda = sf.SimultaneousGDA(n_first=1)
    sde = sf.SDE(drift=[-x], diffusion=[[1]], params=[x])
    fp = sf.fokker_planck(sde)
    cf = sf.coordinate_free_equation(sf.GD(), 1)
    me = sf.modified_equation(sf.GD(), LOSS, [x, y], 1)
    arr = np.zeros(2)
    grid = sv.GridDensity([np.linspace(-1, 1, 5)], np.full(4, 0.5))
    return {
        "GD": sf.GD(), "SGD": sf.SGD(1), "HeavyBall": sf.HeavyBall(sp.Rational(1, 2)),
        "Nesterov": sf.Nesterov(sp.Rational(1, 2)),
        "RMSprop": sf.RMSprop(sp.Rational(1, 2), sp.Rational(1, 10)),
        "Adam": sf.Adam(sp.Rational(1, 2), sp.Rational(1, 2), sp.Rational(1, 10)),
        "AdaGrad": sf.AdaGrad(sp.Rational(1, 10)), "Custom": SAMPLES["update"] and
        sf.Custom(update=SAMPLES["update"]), "SimultaneousGDA": gda,
        "AlternatingGDA": sf.AlternatingGDA(n_first=1), "ModifiedEquation": me,
        "StateModifiedEquation": sf.state_modified_equation(
            sf.HeavyBall(1 - c * sp.sqrt(sf.h)), x**2 / 2, [x], 0, hyper=[c]),
        "ValidityReport": sf.check_validity(LOSS, [x, y], [1.0, 0.5], 0.1, warn=False),
        "CoordinateFreeEquation": cf, "TreeSeries": cf.field,
        "Dataset": sf.Dataset(losses=[x**2, (x - 1)**2], params=[x]), "SDE": sde,
        "EpochFlow": sf.epoch_mean_flow([x**2, (x - 1)**2], [x], batch_size=1),
        "MomentSystem": sf.sde_moments(sde, 2), "FokkerPlanck": fp,
        "FreeEnergy": sf.FreeEnergy(x**2 / 2, [x], 1),
        "StationaryDensity": fp.stationary_density(),
        "GameObjectives": sf.modified_objectives(gda, 1),
        "EquilibriumSpectrum": sf.equilibrium_eigenvalues(gda, E, players, [0, 0], 1),
        "PenaltyDerivation": sf.derive_penalty_inequality(widths=[1, 1], verify=False),
        "KernelMachine": sf.kernel_machine(w * x, [w], [x], [[1], [2]], [1, 3]),
        "VerifyReport": sv.VerifyReport("GD", np.array([0.1, 0.05]), 0.1, (0,),
                                        {0: arr}, {0: 1.0}),
        "Ensemble": sv.Ensemble(np.zeros(1), np.zeros((1, 2, 1)), {}, np.zeros(2, bool),
                                None, {}),
        "GridDensity": grid,
        "StationaryReport": sv.StationaryReport(grid, {"a": np.zeros(3)}, {"a": (0.0, 1.0)},
                                                {"a": (0.0, 1.0)}),
        "WeakErrorReport": sv.WeakErrorReport("GD", x**2, np.array([0.1, 0.05]), 0.1, (1,),
                                              "exact", arr, {1: arr}, {1: arr}, {1: arr},
                                              {1: 2.0}),
        "GaussianComparison": sv.GaussianComparison(2, 1, 0.0, 0.0, 0.0, 0.0, arr, arr),
        "FieldModifiedEquation": sf.modified_equation(sf.GD(), field=sp.Matrix([-y, x]),
                                                      params=[x, y], order=1),
        "ScalingRule": sf.scaling_rule(sf.SGD(batch_size=1), losses=[x**2, 3 * x**2 + x],
                                       params=[x]),
        "DeepLinear": sf.deep_linear(2, (1, 1), [1]), "LinearSSL": sf.linear_ssl(),
        "CompletionStudy": sv.CompletionStudy([], {}), "SSLRun": sv.SSLRun(arr, arr, arr),
        "NetworkField": sv.network_field(cf, sv.mse_loss),
        "NetworkOptimizer": sv.network_optimizer(sf.GD(), sv.mse_loss),
        "ImplicitRegularization": sv.ImplicitRegularization(arr, arr, [], [], {}, []),
        "PenaltyStudy": sv.PenaltyStudy(("spectral",), arr, arr, arr, arr, arr, arr, arr),
        "SmoothingError": sv.SmoothingError("f", arr, arr, arr, 1.0, 1.0, arr, arr, []),
    }


#: Classes whose methods take only JAX pytrees and arrays, with the reason they get no sample.
NUMERIC_ONLY = {"NetworkSME": "its methods take parameter pytrees; building one compiles "
                              "JAX functions (4 s)",
                "MemoryNetworkSME": "as NetworkSME: its methods take states of pytrees"}


def _with_objects():
    """SAMPLES plus the sample objects that take some work to build (once per module)."""
    sde = sf.SDE(drift=[-x], diffusion=[[1]], params=[x])
    cf = sf.coordinate_free_equation(sf.GD(), 1)
    params0 = sv.mlp_init([2, 2, 1])
    return {**SAMPLES, "sde": sde, "me": sf.modified_equation(sf.GD(), LOSS, [x, y], 1),
            "cf": cf, "field": sv.network_field(cf, sv.mse_loss), "loss_fn": sv.mse_loss, "params0": params0, "theta0": params0,
            "batch": sv.toy_regression(n=4, dim=2),
            "density": sv.GridDensity([np.linspace(-1, 1, 5)], np.full(4, 0.5)),
            "samples": {"a": np.zeros(3)},
            "dataset": sf.Dataset(losses=[x**2, (x - 1)**2], params=[x]),
            "sme": None,  # a network SME takes a JAX model: numbers only, no expressions
            "problem": sv.completion_problem(n=4, rank=1, n_observed=8)}


def _classes():
    for mod in (sf, sv):
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isclass(obj) and not issubclass(obj, BaseException):
                yield name, obj


@pytest.fixture(scope="module")
def samples():
    return _with_objects()


@pytest.fixture(scope="module")
def marker(tmp_path_factory):
    return tmp_path_factory.mktemp("guard") / "MARKER"


def test_the_walk_detects_a_hole(marker):
    """The harness itself: a function that sympifies its argument is caught."""
    tried = []
    assert walk(lambda expr: sp.sympify(expr), "sympify", marker, SAMPLES, tried)
    assert walk(lambda expr: sp.exp(expr), "exp", marker, SAMPLES, tried)


# a cut call may be cut inside a JAX callback, which reports the interrupt as unraisable
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_no_public_function_runs_a_string(marker, samples, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a payload taken for a file name lands here
    ran, tried, functions, unsampled = [], [], set(), []
    for mod in (sf, sv):
        for name in mod.__all__:
            obj = getattr(mod, name)
            if not callable(obj) or inspect.isclass(obj) and issubclass(obj, BaseException):
                continue
            if inspect.isclass(obj) and inspect.isabstract(obj):
                continue
            label = f"{mod.__name__}.{name}"
            if not inspect.isclass(obj) and any(p.name not in NOT_SYMBOLIC
                                                for p in _parameters(obj) or ()):
                functions.add(label)
            ran += walk(obj, label, marker, samples, tried, strict=not inspect.isclass(obj),
                        unsampled=unsampled)
    assert not ran, f"code ran through: {ran}"
    assert not unsampled, ("add valid samples for these required parameters to SAMPLES in "
                           f"tests/test_no_string_runs.py: {unsampled}")
    assert functions <= {label for label, _ in tried}, "every public function was tried"
    assert len(functions) > 50


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_no_result_method_runs_a_string(marker, samples, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    instances = objects()
    ran, tried, missing = [], [], []
    for name, cls in _classes():
        if inspect.isabstract(cls) or name.startswith("Abstract"):
            continue
        if name not in instances and name not in NUMERIC_ONLY:
            if [m for m, _ in inspect.getmembers(cls, inspect.isfunction)
                    if not m.startswith("_")]:
                missing.append(name)
            continue
        if name in NUMERIC_ONLY:
            continue
        instance = instances[name]
        assert isinstance(instance, cls), name
        for meth, _ in inspect.getmembers(cls, inspect.isfunction):  # not properties
            if not meth.startswith("_"):
                ran += walk(getattr(instance, meth), f"{name}.{meth}", marker, samples, tried,
                            strict=False)
    assert not missing, f"add a sample object for the classes {missing} in objects()"
    assert not ran, f"code ran through: {ran}"
