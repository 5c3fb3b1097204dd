"""A damaged payload file: what drift found in it and the segments a heal writes back (pure)."""

from dataclasses import dataclass
from pathlib import Path

from ..errors import Error
from ..piece_plan import Segment, file_segments
from ..torrent import FileEntry, TorrentMeta
from .classify import Drift


class HealError(Error):
    """heal of {}: {}"""


@dataclass
class FileDamage:
    entry: FileEntry
    path: Path
    drift: Drift

    def segments(self, meta: TorrentMeta) -> list[Segment]:
        """The segments to write back: all of them for whole-file kinds, else the bad ones."""
        segs = file_segments(meta, self.entry)
        if self.drift.whole_file:
            return segs
        bad = set(self.drift.pieces)
        return [s for s in segs if s.piece in bad]
