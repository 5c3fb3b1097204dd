"""First snapshots of verified, unchanged files without a second hash pass (borg's files cache).

The catalog's full scan verified each file against the torrent and kept its chunk ids (the
segments' SHA-256 merkle roots), its stat with ctime, and when the read began. A file whose
device, inode, size, mtime and ctime are still those is the file that was verified: its chunks go
into packs under those ids by clone or kernel copy, unhashed. ctime cannot be set from user
space, so any write since the scan moves it. A file changed less than RACY_NS before that scan
began is "racily clean" (git's term: a write in the same clock tick need not move ctime) and is
read and hashed again. Chunks are verified against their ids whenever they are read back
(restore, heal, drill, `store check`), so a chunk is never trusted twice.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from ..piece_plan import file_segments
from ..scan import OK, resolve_payload_path

RACY_NS = 2_000_000_000


@dataclass
class Trusted:
    entry: object  # FileEntry
    path: Path
    sha256: str
    segments: list  # (piece, offset, length, chunk_id, xxh3), in file order


def identity(path: Path) -> tuple | None:
    """What a write, rename-over or truncate changes: (device, inode, size, mtime, ctime)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def trusted_files(catalog, meta, save_path: Path, entries, identities: dict) -> dict[int, Trusted]:
    """The entries whose current identity (from `identities`, taken before any copy) is the one
    the catalog verified. Others, and every file of an uncataloged torrent, must be scanned."""
    if catalog.get_torrent(meta.id) is None:
        return {}
    rows = {r["file_index"]: r for r in catalog.get_files(meta.id)}
    segments: dict[int, list] = {}
    for s in catalog.get_segments(meta.id):
        segments.setdefault(s["file_index"], []).append(s)
    out = {}
    for entry in entries:
        row = rows.get(entry.index)
        if row is None or row["status"] != OK or not row["sha256"] or row["size"] != entry.size:
            continue
        keys = row.keys()
        ctime, seen = (row["ctime_ns"], row["verified_ns"]) if "ctime_ns" in keys else (None, None)
        if ctime is None or seen is None or max(ctime, row["mtime_ns"]) > seen - RACY_NS:
            continue
        if identities.get(entry.index) != (row["device"], row["inode"], entry.size, row["mtime_ns"], ctime):
            continue
        planned = file_segments(meta, entry)
        known = segments.get(entry.index, [])
        if len(known) != len(planned) or any(
            not k["chunk_id"] or (k["piece"], k["offset"], k["length"]) != (p.piece, p.offset, p.length)
            for k, p in zip(known, planned)
        ):
            continue
        out[entry.index] = Trusted(entry, resolve_payload_path(save_path, entry), row["sha256"],
                                   [(k["piece"], k["offset"], k["length"], k["chunk_id"], k["xxh3"]) for k in known])
    return out
