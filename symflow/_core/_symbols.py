"""The learning-rate symbol shared by every derivation."""

import sympy as sp

#: The learning rate (step size) :math:`h > 0`. Modified equations are series in ``h``.
h = sp.Symbol("h", positive=True)
