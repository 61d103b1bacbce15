"""The backend contract's former home, kept so plugins written against it keep importing:
the contract lives in :mod:`curvestore.core.backend` (the core owns it), and
:mod:`curvestore.backends` exports it."""

from curvestore.core.backend import Backend, IntegrityProblem, Transaction, stale_state

__all__ = ["Backend", "IntegrityProblem", "Transaction", "stale_state"]
