"""The seeds' results: the input- vs parameter-gradient penalty inequality, Gaussian
divergences, smoothing by convolution, SGD as a kernel machine, deep linear networks
(``_deep_linear``) and the linear BYOL / SimSiam model (``_self_supervised``).

Imports: ``_core``, ``optimizers``, ``_trees`` and ``_engine``; not ``_stochastic`` or ``_games``.
"""
