"""The snapshot store (restic's vocabulary): chunks, packs, index, snapshots, lock, backend."""

from .results import (CheckResult, ForgetResult, HealResult, PruneResult, RestoreResult, Snapshot,
                      SnapshotRefused)
from .store import Store

__all__ = ["CheckResult", "ForgetResult", "HealResult", "PruneResult", "RestoreResult", "Snapshot",
           "SnapshotRefused", "Store"]
