"""The sibling tier: the same file in another cataloged torrent (same size and SHA-256, or the
same v2 pieces root), on another inode. Its bytes are read at the same offsets and proven against
the damaged torrent's own hashes before they are used, so a sibling that drifted too is never a
source. Files sharing one inode (hard-linked cross-seeds) are one file: `holders` names every
torrent holding it, so they are stopped, healed once and resumed together."""

import os
from pathlib import Path

from ..catalog import ladder as rows
from ..errors import Error
from ..locate import catalog_meta
from ..scan import resolve_payload_path


def _inode(path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def siblings(catalog, torrent_id: str, file_index: int, damaged_path: Path) -> list[Path]:
    """Paths of files with this file's content in other torrents, on other inodes than the
    damaged file (now and as cataloged)."""
    row = next((r for r in catalog.get_files(torrent_id) if r["file_index"] == file_index), None)
    if row is None:
        return []
    avoid = {(row["device"], row["inode"]), _inode(damaged_path)}
    out, seen = [], set()
    for other in rows.same_files(catalog, torrent_id, row["size"], row["sha256"], row["v2_root"]):
        try:
            meta, save_path = catalog_meta(catalog, other["torrent_id"])
            entry = next(e for e in meta.real_files if e.index == other["file_index"])
            path = resolve_payload_path(save_path, entry)
        except (Error, StopIteration):
            continue
        ino = _inode(path)
        if ino is None or ino in avoid or ino in seen:
            continue
        seen.add(ino)
        out.append(path)
    return out


def holders(catalog, torrent_id: str, file_index: int) -> list[tuple[str, int]]:
    """(torrent id, file index) of every cataloged file on the same inode as this one (itself included)."""
    row = next((r for r in catalog.get_files(torrent_id) if r["file_index"] == file_index), None)
    if row is None or row["inode"] is None:
        return [(torrent_id, file_index)]
    found = [(r["torrent_id"], r["file_index"]) for r in rows.holders(catalog, row["device"], row["inode"])]
    return found or [(torrent_id, file_index)]


def links_all_seeded(catalog, torrent_id: str, file_index: int, path) -> bool:
    """Every hard link of this file is a file of a cataloged torrent (cross-seeds on one inode, no
    library copy): healing the inode in place heals them all at once, and nobody's edit is lost."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    found = [h for h in holders(catalog, torrent_id, file_index)]
    return st.st_nlink > 1 and st.st_nlink == len(found)
