"""Command line: ``symflow derive | verify | demo``.

Loss and update strings are parsed by :func:`symflow.parse_expression` (a whitelist,
nothing is executed). ``verify`` and ``demo`` import the numerics (``solvers``) lazily,
so ``symflow derive`` never loads jax.
"""

from __future__ import annotations

import argparse
import os
import sys

from ._core._errors import SymflowError
from ._core._files import check_figure_path
from ._core._parse import parse_expression, parse_symbols
from ._engine._modified import modified_equation
from .optimizers import (
    GD,
    AdaGrad,
    Adam,
    AlternatingGDA,
    Custom,
    HeavyBall,
    Nesterov,
    RMSprop,
    SimultaneousGDA,
)

EXTRAGRADIENT = "theta - h*grad(theta - h*grad(theta))"
BUILTIN = {"heavy-ball": HeavyBall, "nesterov": Nesterov, "rmsprop": RMSprop, "adam": Adam,
           "adagrad": AdaGrad, "sim-gda": SimultaneousGDA, "alt-gda": AlternatingGDA}
#: An --opt-args example per built-in, for messages.
EXAMPLE_ARGS = {Adam: "beta1=9/10,beta2=999/1000,eps=1e-8", RMSprop: "rho=9/10,eps=1e-8",
                AdaGrad: "eps=1e-8", SimultaneousGDA: "n_first=1,lr_ratio=2",
                AlternatingGDA: "n_first=1,lr_ratio=2"}


def _builtin(args, names):
    """A built-in optimizer with ``--opt-args "beta=9/10"`` (numbers or declared symbols)."""
    cls = BUILTIN[args.optimizer]
    kwargs = {}
    for item in filter(None, (s.strip() for s in (args.opt_args or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise SymflowError(f"got --opt-args {item!r}; write name=value, e.g. beta=9/10")
        value = parse_expression(value, names)
        kwargs[key.strip()] = int(value) if key.strip() == "n_first" and value.is_Integer \
            else value
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise SymflowError(f"--optimizer {args.optimizer}: {err}; e.g. --opt-args "
                           f"\"{EXAMPLE_ARGS.get(cls, 'beta=9/10')}\"") from None


def _optimizer(args, params, hypers):
    names = {str(s): s for s in hypers}
    for flag, value, takes in (("--opt-args", getattr(args, "opt_args", None), BUILTIN),
                               ("--update", getattr(args, "update", None), ("custom",))):
        if value and args.optimizer not in takes:
            raise SymflowError(f"got {flag} {value!r} with --optimizer {args.optimizer}, which "
                               f"takes no {flag}; drop it, or choose "
                               + ("a built-in optimizer (" + ", ".join(BUILTIN) + ")"
                                  if flag == "--opt-args" else "--optimizer custom"))
    if args.optimizer == "gd":
        return GD()
    if args.optimizer in BUILTIN:
        return _builtin(args, names)
    text = EXTRAGRADIENT if args.optimizer == "extragradient" else args.update
    if not text:
        raise SymflowError("--optimizer custom needs --update, e.g. "
                           f"--update \"{EXTRAGRADIENT}\"")

    def update(theta, grad, step):
        scope = {**names, **{str(p): theta[i] for i, p in enumerate(params)},
                 "theta": theta, "grad": grad, "h": step}
        return parse_expression(text, scope)

    return Custom(update=update, hyper=hypers, name=args.optimizer)


def _problem(args):
    params = parse_symbols(args.params, "parameter")
    if not params:
        raise SymflowError("got --params ''; name the parameters, e.g. --params x,y")
    values = {}
    hypers = []
    for item in filter(None, (s.strip() for s in (args.hyper or "").split(","))):
        name, _, value = item.partition("=")
        (sym,) = parse_symbols(name, "hyperparameter")
        hypers.append(sym)
        if value:
            try:
                values[str(sym)] = float(value)
            except ValueError:
                raise SymflowError(f"got --hyper {item!r}; the value must be a number") from None
    names = {str(s): s for s in params + tuple(hypers)}
    if "h" in names:
        raise SymflowError("'h' is the learning rate; do not use it as a parameter name")
    loss = parse_expression(args.loss, names)
    return loss, params, tuple(hypers), values, _optimizer(args, params, tuple(hypers))


def _floats(text, what):
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SymflowError(f"got {what} {text!r}; give comma-separated numbers") from None


def cmd_derive(args):
    loss, params, hypers, _, opt = _problem(args)
    me = modified_equation(opt, loss, params, args.order, hyper=hypers)
    me.modified_loss  # noqa: B018 -- asked for: printing shows only what is computed
    print(me.latex() if args.latex else me)


def _orders(text):
    """``--orders 0,1,2`` as whole numbers (``1.5`` is refused, not read as 1)."""
    items = [v.strip() for v in text.split(",") if v.strip()]
    if not items or not all(v.isascii() and v.isdigit() for v in items):
        raise SymflowError(f"got --orders {text!r}; give comma-separated whole numbers "
                           ">= 0, e.g. 0,1,2")
    return [int(v) for v in items]


def cmd_verify(args):
    out = check_figure_path(args.out, "--out") if args.out else None  # before the work
    import solvers as sv

    loss, params, hypers, values, opt = _problem(args)
    orders = _orders(args.orders)
    rep = sv.verify_order(opt, loss, params, x0=_floats(args.x0, "--x0"),
                          lrs=_floats(args.lrs, "--lrs"), T=args.T, orders=orders,
                          hyper=values, progress=True)
    print(rep)
    if out:
        rep.plot(out)
        print(f"figure written to {out}")
    return 0 if rep.passed() else 1


def cmd_demo(args):
    import solvers as sv

    return 0 if sv.demo(args.out).passed() else 1


def _common(p):
    p.add_argument("--optimizer", default="gd",
                   choices=["gd", "extragradient", "custom", *BUILTIN])
    p.add_argument("--opt-args", help="hyperparameters of a built-in optimizer, e.g. "
                   "\"beta=9/10\" or \"beta1=0.9,beta2=0.999,eps=1e-8\" (symbols from --hyper)")
    p.add_argument("--update", help="update rule for --optimizer custom, in theta, grad, h, "
                   f"e.g. \"{EXTRAGRADIENT}\"")
    p.add_argument("--loss", required=True, help='e.g. "(x*y - 1)**2/2"')
    p.add_argument("--params", required=True, help="comma-separated, e.g. x,y")
    p.add_argument("--hyper", help="constants in the loss or rule, e.g. lam or lam=0.5")


def build_parser():
    parser = argparse.ArgumentParser(prog="symflow", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("derive", help="derive a modified equation exactly")
    _common(d)
    d.add_argument("--order", type=int, default=2)
    d.add_argument("--latex", action="store_true", help="print LaTeX")
    d.set_defaults(func=cmd_derive)
    v = sub.add_parser("verify", help="check the orders numerically (slopes p+1)")
    _common(v)
    v.add_argument("--x0", required=True, help="start, e.g. 1,0.5")
    v.add_argument("--lrs", default="0.04,0.02,0.01,0.005")
    v.add_argument("--T", type=float, default=1.0)
    v.add_argument("--orders", default="0,1,2")
    v.add_argument("--out", help="write the log-log figure to this PNG")
    v.set_defaults(func=cmd_verify)
    m = sub.add_parser("demo", help="derive, verify and plot on a sample loss")
    m.add_argument("--out", default="symflow-demo", help="folder for the figures")
    m.set_defaults(func=cmd_demo)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except SymflowError as err:
        print(f"symflow {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, the shell's code for SIGINT
        print(f"symflow {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


__all__ = ["main"]
