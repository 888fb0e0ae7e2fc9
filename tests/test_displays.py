"""Every public result type renders to text, and to LaTeX (math) or an HTML table (reports).

The assertions are on content: the terms of a derivation, the numbers of a report's table,
the same numbers in its text, HTML and Markdown forms. Reports are built from known
numbers (no solving), so each cell can be predicted.
"""

from html.parser import HTMLParser

import numpy as np
import sympy as sp

import solvers as sv
import symflow as sf
from symflow._claims._penalty import NORMS


class _Cells(HTMLParser):
    """The text of every <th>/<td> cell, row by row, and the caption."""

    def __init__(self, text):
        super().__init__()
        self.rows, self.caption, self._in = [], "", None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th", "caption"):
            self._in = tag
            if tag != "caption":
                self.rows[-1].append("")

    def handle_endtag(self, tag):
        if tag in ("td", "th", "caption"):
            self._in = None

    def handle_data(self, data):
        if self._in == "caption":
            self.caption += data
        elif self._in:
            self.rows[-1][-1] += data


def table_of(report):
    """The report's HTML table as rows of cell strings; also checks the Markdown and repr."""
    html = report._repr_html_()
    cells = _Cells(html)
    md = report._repr_markdown_()
    for row in cells.rows:
        assert "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" in md
    assert repr(report) == str(report)          # the table, not the dataclass fields
    return cells.rows, cells.caption, html


def column(rows, name):
    i = rows[0].index(name)
    return [r[i] for r in rows[1:]]


# -- reports -------------------------------------------------------------------------------

def test_verify_report():
    rep = sv.VerifyReport(optimizer="GD()", lrs=np.array([0.04, 0.02]), T=1.0, orders=(0, 1),
                          errors={0: np.array([3.7e-3, 1.9e-3]), 1: np.array([1.4e-4, 3.6e-5])},
                          slopes={0: 0.961, 1: 1.959})
    rows, caption, _ = table_of(rep)
    assert rows[0] == ["lr", "order 0 error", "order 1 error"]
    assert rows[1] == ["0.04", "3.700e-03", "1.400e-04"]
    assert rows[3] == ["slope", "0.96", "1.96"] and rows[4] == ["expected", "1", "2"]
    assert caption == "verify_order: GD(), T = 1"
    assert "3.600e-05" in str(rep) and "1.96" in str(rep)


def test_weak_error_report_monte_carlo():
    rep = sv.WeakErrorReport(label="SGD(batch_size=1)", phi="w**2", lrs=np.array([0.1, 0.05]),
                             T=1.0, orders=(1,), method="monte carlo",
                             sgd=np.array([0.25, 0.26]), sde={1: np.array([0.2, 0.24])},
                             errors={1: np.array([0.05, 0.02])},
                             stderr={1: np.array([0.001, 0.01])}, slopes={1: 1.32})
    rows, caption, _ = table_of(rep)
    assert rows[1] == ["0.1", "0.25", "5.000e-02 ± 1.0e-03"]
    assert rows[-2][-1] == "1.32" and rows[-1][-1] == "1"
    assert "w**2" in caption and "monte carlo" in caption
    assert "order 1 at h=0.05" in rep._repr_html_()   # the unresolved error is flagged


def test_stationary_report():
    grid = sv.GridDensity([np.linspace(-1, 1, 11)], np.ones(10), names=["w"], label="Gibbs law")
    rep = sv.StationaryReport(density=grid, samples={"SGD": np.zeros((500, 1))},
                              ks={"SGD": (0.0123, 0.456)}, tv={"SGD": (0.0345, 0.0211)})
    rows, caption, _ = table_of(rep)
    assert rows[0] == ["sample", "n", "KS w", "p", "TV", "TV noise floor"]
    assert rows[1] == ["SGD", "500", "0.0123", "0.456", "0.0345", "0.0211"]
    assert caption == "distances from the Gibbs law" and "0.0345" in str(rep)


def test_gaussian_comparison_smoothing_error_and_penalty_study():
    g = sv.GaussianComparison(n=4000, d=2, kl=0.00123, kl_noise=0.00125, bhattacharyya=3e-4,
                              w2=0.0456, sample_mean=np.zeros(2), sample_cov=np.eye(2))
    rows, caption, _ = table_of(g)
    assert dict(rows[1:])["KL(fit || law)"] == "0.00123" and dict(rows[1:])["W2"] == "0.0456"
    assert dict(rows[1:])["ratio"] == "0.984" and "4000 samples" in caption

    s = sv.SmoothingError(label="relu, gaussian", widths=np.array([0.2, 0.1]),
                          sup=np.array([0.08, 0.04]), l1=np.array([0.016, 0.004]),
                          slope_sup=1.0, slope_l1=2.0, grid=np.zeros(3), f=np.zeros(3),
                          smoothed=[np.zeros(3)] * 2)
    rows, caption, _ = table_of(s)
    assert rows[2] == ["0.1", "0.04", "0.004"] and rows[3] == ["slope", "1.000", "2.000"]
    assert caption == "relu, gaussian"

    n, k = 2, len(NORMS)
    ratio = np.tile(np.linspace(2.0, 0.5, k), (n, 1))       # the last norms "violated"
    steps = np.full((n, k, 1), 1.5)
    p = sv.PenaltyStudy(norms=NORMS, widths=np.array([[2, 3], [2, 4]]), activation=np.zeros(n),
                        lhs=np.ones(n), rhs=ratio[:, 0], ratio=ratio, cauchy_schwarz=steps,
                        submultiplicative=steps)
    rows, caption, _ = table_of(p)
    assert column(rows, "norm") == list(NORMS)
    assert column(rows, "claim")[0] == "holds" and column(rows, "claim")[-1] == "fails"
    assert column(rows, "violations") == [str(int(r < 1 - 1e-9) * n) for r in ratio[0]]
    assert column(rows, "median")[0] == "2" and "2 random networks" in caption


def test_validity_implicit_regularization_and_path_kernel():
    x = sp.Symbol("x")
    v = sf.check_validity(3 * x**2 / 2, [x], [1.0], 0.1, warn=False)   # h*lambda = 0.3
    rows, _, _ = table_of(v)
    assert dict(rows[1:])["h*|lambda|_max"] == "0.3" and dict(rows[1:])["learning rate h"] == "0.1"

    t = np.linspace(0, 1, 3)
    run = {"loss": np.array([1.0, 0.5, 0.25]), "grad_sq": np.array([4.0, 2.0, 1.0]),
           "params": np.zeros((3, 2))}
    reg = {**run, "loss": np.array([1.0, 0.5, 0.2])}
    ir = sv.ImplicitRegularization(lrs=np.array([0.1]), times=t, gd=[run], regularized=[reg],
                                   flow=run, h_sharpness=[np.array([0.2, 0.25, 0.3])])
    rows, _, _ = table_of(ir)
    assert column(rows, "h*lam_max (min..max)") == ["0.200 .. 0.300"]
    assert column(rows, "dL/L reg") == ["2.00e-01"]                      # |0.25 - 0.2| / 0.25

    pred = np.array([[1.0, 2.0], [0.5, 1.5]])
    pk = sv.PathKernel(ts=np.array([0.0, 1.0]), theta=np.zeros((2, 2)), prediction=pred,
                       kernel=np.ones((2, 2, 1)), weighted=np.array([[[0.0], [0.0]],
                                                                      [[0.5], [0.5]]]),
                       frozen=np.array([[1.0, 2.0], [0.6, 1.5]]))
    rows, caption, _ = table_of(pk)
    assert rows[1] == ["0", "1", "0.5", "0.5", "0.6"]
    assert rows[-1][-1] == "1.000e-01" and "gradient flow" in caption


# -- symbolic results: text and LaTeX --------------------------------------------------------

def test_modified_equation_and_coordinate_free_terms():
    x = sp.Symbol("x")
    me = sf.modified_equation(sf.GD(), loss=x**2 / 2, params=[x], order=1)   # -x - h x/2
    assert "x/2" in str(me) and "\\frac{x}{2}" in me._repr_latex_()
    cf = sf.modified_equation(sf.GD(), order=1)                               # -g - h/2 H g
    assert "H g" in str(cf) and "\\frac{1}{2}" in cf._repr_latex_()


def test_sde_fokker_planck_and_stationary_density():
    w, s = sp.Symbol("w"), sp.Symbol("s", positive=True)
    well = sf.sme(sf.GD(), losses=w**2 / 2, params=[w], noise=s**2)
    assert "w" in str(well) and "s" in str(well)
    fp = sf.fokker_planck(well)
    assert "\\partial" in fp._repr_latex_()
    rho = fp.stationary_density()
    assert "e^{" in rho._repr_latex_() and "exp" in str(rho)


def test_games_and_penalty_inequality():
    E, (theta, psi) = sf.dirac_gan()
    spec = sf.equilibrium_eigenvalues(sf.SimultaneousGDA(n_first=1), E, [theta, psi], [0, 0],
                                      order=1)
    spec.eigenvalues                                      # computed once asked for
    assert "\\frac{h}{8}" in spec._repr_latex_()          # h/8 +- i/2: the outward spiral
    assert "+0.012500+0.500000i" in str(spec.table(0.1))
    rel = sf.gradient_penalty_inequality(sp.Symbol("l"))
    text = str(rel)
    assert "|grad_x f|**2*Sum(" in text and "<= |grad_theta f|**2" in text
    assert "\\" not in text and "\\nabla" in sp.latex(rel)


def test_grid_density_plot_labels_its_axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    edges = [np.linspace(-1, 1, 5)] * 2
    grid = sv.GridDensity(edges, np.ones((4, 4)), names=["w", "b"], label="Gibbs law")
    ax = grid.plot()
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("w", "b") and "Gibbs law" in ax.get_title()
    ax = grid.marginal(1).plot()
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("b", "density")
    plt.close("all")


def test_ensemble_and_penalty_derivation():
    ens = sv.Ensemble(ts=np.array([0.0, 1.0]), ys=np.zeros((4, 2, 1)), stats={},
                      diverged=np.array([False, False, False, True]),
                      diverged_at=np.array([np.nan] * 3 + [0.5]),
                      info={"method": "euler", "dt": 0.01, "n_steps": 100, "chunks": 1,
                            "devices": 1, "seconds": 0.25})
    rows = _Cells(ens._repr_html_()).rows
    assert dict(rows[1:])["diverged"] == "25.00%" and dict(rows[1:])["steps"] == "100"

    d = sf.derive_penalty_inequality([1, 1], "identity", verify=False)
    assert "call .verify()" in str(d) and "call .verify()" in d._repr_html_()  # no work done
    d.verify()
    rows, caption, _ = table_of(d)
    assert len(rows) == 1 + len(d.steps) and all(r[2] == "yes" for r in rows[1:])
    assert [r[0] for r in rows[1:]] == [s.name for s in d.steps]
    assert "MLP widths [1, 1]" in caption and str(d) == d.report()
