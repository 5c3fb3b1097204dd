"""What a snapshot takes without reading: a file's record from the torrent's previous content
snapshot when its stat is unchanged, a file content the store already holds, and the content chunk
ids of a verified file that follow from the catalog's segment roots."""

import os
from pathlib import Path

from ..catalog import content as content_rows
from ..catalog import snapshots as records
from ..scan import resolve_payload_path
from ..torrent import FileEntry, TorrentMeta
from . import content
from .trusted import Trusted


def previous_files(store, torrent_id: str) -> dict[int, tuple]:
    """file_index -> (file row, chunk rows) from the newest content snapshot holding that file
    (older, piece-aligned snapshots are not reused: their files go to content chunks once)."""
    out: dict[int, tuple] = {}
    for snap in reversed(records.list_snapshots(store.catalog, torrent_id)):
        if snap["layout"] != content_rows.CONTENT:
            continue
        rows = records.snapshot_files(store.catalog, snap["id"])
        if all(r["file_index"] in out for r in rows):
            continue
        chunks: dict[int, list] = {}
        for c in records.snapshot_chunks(store.catalog, snap["id"]):
            chunks.setdefault(c["file_index"], []).append(c)
        for r in rows:
            out.setdefault(r["file_index"], (r, chunks.get(r["file_index"], [])))
    return out


def held_content(store, sha256: str | None, size: int, stale: dict) -> list[tuple[int, int, str]] | None:
    """The content chunks of a file content the store holds whole (every chunk indexed, none
    known bad), else None."""
    if not sha256:
        return None
    rows = [(r["offset"], r["length"], r["chunk_id"]) for r in content_rows.chunks_of(store.catalog, sha256)]
    if [(o, n) for o, n, _c in rows] != content.ranges(size):
        return None
    if any(cid not in store.index or cid in stale for _o, _n, cid in rows):
        return None
    return rows


def unchanged(store, save_path: Path, entry: FileEntry, prev: tuple, stale: dict) -> bool:
    row, _chunks = prev
    try:
        st = os.stat(resolve_payload_path(save_path, entry))
    except OSError:
        return False
    same = (st.st_size == entry.size == row["size"] and st.st_mtime_ns == row["mtime_ns"]
            and st.st_ino == row["inode"] and st.st_dev == row["device"])
    return same and (entry.size == 0 or held_content(store, row["sha256"], entry.size, stale) is not None)


def derived_ids(meta: TorrentMeta, t: Trusted) -> list[str] | None:
    """A trusted file's content chunk ids from the catalog's segment roots, when its pieces are
    file-aligned (content.derivable), else None."""
    if not content.derivable(t.entry.size, t.entry.offset, meta.piece_length):
        return None
    roots = [bytes.fromhex(cid) for _piece, _offset, _length, cid, _x in t.segments]
    return [r.hex() for r in content.derive(t.entry.size, meta.piece_length, roots)]
