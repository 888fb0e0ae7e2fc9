"""Numeric checks of the seeds' claims: the gradient-penalty inequality over random
networks, Gaussian divergences against samples, the smoothing error, matrix completion
with deep linear networks (``_matrix_completion``) and GD on the linear BYOL / SimSiam
model against its derived flows (``_ssl_run``).

Imports: ``symflow`` and ``solvers._ode``; not ``_sde`` or ``_networks``.
"""
