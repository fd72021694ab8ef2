"""Types every quantgate package shares: run results, per-question samples, the pydantic base.

This package imports nothing from quantgate but `quantgate.errors`, so `decision`, `lmeval`, `api`
and the rest can all import it without importing upward.
"""
