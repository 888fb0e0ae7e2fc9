"""Exceptions and warnings raised by symflow.

Every message states what was received, why it is wrong, and how to fix it.
"""


class SymflowError(ValueError):
    """Bad input to a symflow function (a subclass of :class:`ValueError`)."""


class UnsafeExpressionError(SymflowError):
    """An expression string uses syntax or names outside the parser's whitelist."""


class ValidityWarning(UserWarning):
    """The learning rate is too large for the modified-equation series to be trusted."""


class CostWarning(UserWarning):
    """A request is allowed but may take long (a high order); the message gives an estimate."""


class MemoryWarning(UserWarning):
    """An optimizer's memory does not relax, so the flow on the whole state is returned."""


# Shown as ``symflow.SymflowError`` in tracebacks: the public name, not the private module.
for _cls in (SymflowError, UnsafeExpressionError, ValidityWarning, MemoryWarning,
             CostWarning):
    _cls.__module__ = "symflow"
del _cls
