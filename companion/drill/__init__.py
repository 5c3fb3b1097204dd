"""Restore drills: prove snapshots by restoring them into scratch and rechecking in libtorrent."""

from .run import Drill, DrillError, DrillResult, SnapshotMissing
from .scratch import ScratchFull, ScratchUnsafe, cleanup_scratch, scratch_root


def last_drills(catalog) -> list[dict]:
    """The newest finished drill of each torrent (for `seedward status`), newest first."""
    from ..catalog.drills import last_drill_per_torrent
    from .records import drill_json

    return [drill_json(r) for r in last_drill_per_torrent(catalog)]


__all__ = ["Drill", "DrillError", "DrillResult", "SnapshotMissing", "ScratchFull", "ScratchUnsafe",
           "cleanup_scratch", "scratch_root", "last_drills"]
