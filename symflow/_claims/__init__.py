"""The seeds' results: the input- vs parameter-gradient penalty inequality, Gaussian
divergences, smoothing by convolution, and SGD as a kernel machine.

Imports: ``_core``, ``optimizers``, ``_trees`` and ``_engine``; not ``_stochastic`` or ``_games``.
"""
