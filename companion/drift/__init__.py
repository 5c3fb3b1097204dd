"""Drift detection: watchdog observers over protected payloads, debounce, quick verify, classify."""

from .classify import Baseline, Drift, Observed, classify
from .debounce import Debouncer
from .watch import PayloadWatch

__all__ = ["Baseline", "Debouncer", "Drift", "DriftMonitor", "Observed", "PayloadWatch", "classify"]


def __getattr__(name):
    if name == "DriftMonitor":
        from .monitor import DriftMonitor

        return DriftMonitor
    raise AttributeError(name)
