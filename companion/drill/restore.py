"""Restore a snapshot into scratch; when the store is corrupt, salvage every readable chunk.

The store's own restore stops at the first unreadable chunk. To name the exact files and
pieces a corruption costs, the drill then rebuilds each file chunk by chunk with
`store.read_chunk` (verified reads), leaving the unreadable chunks as holes: the SHA-256 pass
and libtorrent's recheck then see exactly what a real restore would lose.
"""

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import StoreCorrupt

log = logging.getLogger(__name__)


@dataclass
class Restored:
    bytes: int
    corrupt: list[tuple[int, int, str]] = field(default_factory=list)  # (file_index, piece, chunk_id)
    reason: str = ""
    sha256: dict[str, str] = field(default_factory=dict)  # path -> SHA-256 computed while restoring

    def corrupt_pieces(self) -> list[int]:
        return sorted({piece for _, piece, _ in self.corrupt})

    def corrupt_files(self, meta) -> list[str]:
        indices = {index for index, _, _ in self.corrupt}
        return sorted(f.path for f in meta.real_files if f.index in indices)

    def describe(self) -> str:
        chunks = sorted({cid for _, _, cid in self.corrupt})
        shown = ", ".join(c[:12] for c in chunks[:5]) + (" ..." if len(chunks) > 5 else "")
        return f"{len(chunks)} unreadable chunks ({shown}): {self.reason}"


def restore_snapshot(store, cat, snapshot_id: str, meta, dest: Path, progress=None) -> Restored:
    try:
        # The torrent's own names: libtorrent rechecks the .torrent's layout, whatever qBittorrent renamed.
        done = store.restore(snapshot_id, dest, paths={e.index: e.path for e in meta.real_files}, keep_cache=True,
                             progress=progress)
    except StoreCorrupt as exc:
        log.warning("restore of snapshot %s hit a corrupt store (%s); salvaging chunk by chunk", snapshot_id[:12], exc)
        restored = salvage(store, cat, snapshot_id, meta, dest)
        restored.reason = str(exc)
        return restored
    return Restored(bytes=done.bytes, sha256=done.sha256)


def salvage(store, cat, snapshot_id: str, meta, dest: Path) -> Restored:
    from ..catalog.snapshots import snapshot_chunks

    restored = Restored(bytes=0)
    bad_ids: set[str] = set()
    by_file: dict[int, list] = {}
    for row in snapshot_chunks(cat, snapshot_id):
        by_file.setdefault(row["file_index"], []).append(row)
    from ..catalog.snapshots import snapshot_files

    indices = {r["file_index"] for r in snapshot_files(cat, snapshot_id)}
    for entry in meta.real_files:
        if entry.index not in indices:
            continue
        path = dest / entry.path
        path.parent.mkdir(parents=True, exist_ok=True)
        if entry.symlink is not None:  # a BEP 47 link entry: a link, never bytes
            if not os.path.lexists(path):
                os.symlink(entry.link_target, path)
            continue
        with open(path, "wb") as fh:
            fh.truncate(entry.size)  # holes where chunks are unreadable
            for row in by_file.get(entry.index, []):
                chunk_id = row["chunk_id"]
                if chunk_id not in bad_ids:
                    try:
                        data = store.read_chunk(chunk_id)
                    except StoreCorrupt:
                        bad_ids.add(chunk_id)
                    else:
                        fh.seek(row["offset"])
                        fh.write(data)
                        restored.bytes += len(data)
                        continue
                restored.corrupt.append((entry.index, row["piece"], chunk_id))
    return restored
