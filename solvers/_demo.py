"""The main job: derive a modified equation, verify its order numerically, and plot."""

from __future__ import annotations

import pathlib
import time

import sympy as sp

import symflow as sf
from symflow import SymflowError
from symflow._core._files import check_figure_path

from ._ode._plot import plot_trajectories
from ._ode._verify import verify_order


def demo(out_dir="symflow-demo", echo=print):
    """Run the demo on :math:`L(x, y) = (xy - 1)^2/2` and write two figures to ``out_dir``.

    1. Derive gradient descent's modified equation to order 3, exactly; report the
       implicit regularizer and where the gradient structure is lost.
    2. Verify the orders 0..3 numerically (slopes 1..4) on a ladder of learning rates.
    3. Draw GD's iterates at a large learning rate over the loss contours with the
       order-0, 1 and 2 flows through them.

    The figures are written through temporary files, renamed when complete.
    """
    import matplotlib

    matplotlib.use("Agg")
    out = pathlib.Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SymflowError(f"got out_dir='{out}', which is a file; give a folder for the "
                           "figures (it is created if missing)")
    out.mkdir(parents=True, exist_ok=True)
    for name in ("verify_order.png", "trajectories.png"):  # checked before the work
        check_figure_path(out / name, "out_dir")
    x, y = sp.symbols("x y")
    loss = (x * y - 1) ** 2 / 2
    start = time.perf_counter()
    me = sf.modified_equation(sf.GD(), loss=loss, params=[x, y], order=3)
    echo(f"[1/3] derived in {time.perf_counter() - start:.2f} s")
    echo(str(me))
    echo(f"order-1 modified loss (implicit regularizer): {me.truncate(1).modified_loss}")
    rep = verify_order(sf.GD(), loss, [x, y], x0=[1.5, 0.2], lrs=[0.04, 0.02, 0.01, 0.005],
                       T=1.0, orders=[0, 1, 2, 3], me=me)
    echo("[2/3] numerical check (Diffrax Tsit5, rtol = atol = 1e-12):")
    echo(rep.table())
    rep.plot(out / "verify_order.png")
    plot_trajectories(me.truncate(2), x0=[2.0, 0.05], lr=0.12, n_steps=25,
                      path=out / "trajectories.png")
    echo(f"[3/3] figures: {out / 'verify_order.png'}, {out / 'trajectories.png'}")
    echo("slopes " + ("match p+1 within 0.3" if rep.passed() else "DO NOT match p+1"))
    return rep
