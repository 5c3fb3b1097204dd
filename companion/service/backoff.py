"""Moved to companion/loops.py (the core must not import the service); this name goes once nothing uses it."""

from ..loops import Backoff  # noqa: F401
