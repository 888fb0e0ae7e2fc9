"""The deterministic numerics: compiling SymPy fields into JAX functions, iterating
optimizer maps, solving flows with Diffrax, the order-verification ladder and trajectory plots.

Imports: ``symflow`` (the public package and its private modules); nothing of ``solvers``.
"""
