"""Numeric checks of the seeds' claims: the gradient-penalty inequality over random
networks, Gaussian divergences against samples, and the smoothing error.

Imports: ``symflow`` and ``solvers._ode``; not ``_sde`` or ``_networks``.
"""
