"""The snapshot store (restic's vocabulary): chunks, packs, index, snapshots, lock, backend."""

from .store import (CheckResult, ForgetResult, HealResult, PruneResult, RestoreResult, Snapshot,
                    SnapshotRefused, Store)

__all__ = ["CheckResult", "ForgetResult", "HealResult", "PruneResult", "RestoreResult", "Snapshot",
           "SnapshotRefused", "Store"]
