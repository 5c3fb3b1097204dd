"""What the catalog knows of a torrent's tiers, as coverage facts (reads only)."""

import os

from ..catalog import ladder as rows
from ..catalog import parity as parity_rows
from ..errors import Error
from ..locate import catalog_meta
from ..scan import resolve_payload_path
from ..store.fssnap import LAYOUT as FS_LAYOUT
from .coverage import FileFacts, TorrentFacts


def torrent_facts(catalog, torrent_id: str) -> TorrentFacts:
    row = catalog.get_torrent(torrent_id)
    files = catalog.get_files(torrent_id)
    zoned = rows.zone_files(catalog, torrent_id)
    snap = rows.latest_full_snapshot(catalog, torrent_id)
    whole = bool(snap) and snap["files"] >= len(files) and snap["suspect_reason"] is None
    in_fs = whole and snap["layout"] == FS_LAYOUT  # a read-only filesystem snapshot (store/fssnap.py)
    facts = TorrentFacts(torrent_id, row["name"] if row else torrent_id, [], full=whole and not in_fs,
                         fs_snapshot=in_fs, full_suspect=bool(snap) and snap["suspect_reason"] is not None)
    parity = {}
    for ps in parity_rows.parity_sets(catalog, torrent_id):
        for i, _path, _size, made_from in ps["files"]:
            parity[i] = (made_from, ps)
    for f in files:
        z = zoned.get(f["file_index"])
        same = z is not None and z["size"] == f["size"] and (z["sha256"] is None or z["sha256"] == f["sha256"])
        made_from, ps = parity.get(f["file_index"], (None, None))
        par = ps is not None and made_from == f["sha256"]
        facts.files.append(FileFacts(
            f["path"], f["size"], zoned=same, head_covered=same and z["head_bytes"] >= min(z["head_extent"], f["size"]),
            tail_kept=same and (z["tail_bytes"] > 0 or z["head_bytes"] >= f["size"]),
            sibling=_has_sibling(catalog, torrent_id, f),
            parity_percent=ps["percent"] if par else 0.0,
            parity_bytes=max(0, ps["recovery_blocks"] - 1) * ps["block_size"] if par else 0,
            parity_blocks=ps["recovery_blocks"] if par else 0,
            head_extent=z["head_extent"] if same else None, tail_extent=z["tail_extent"] if same else None))
    return facts


def _has_sibling(catalog, torrent_id: str, f) -> bool:
    for other in rows.same_files(catalog, torrent_id, f["size"], f["sha256"], f["v2_root"]):
        if (other["device"], other["inode"]) != (f["device"], f["inode"]):
            return _present(catalog, other)
    return False


def _present(catalog, other) -> bool:
    try:
        meta, save_path = catalog_meta(catalog, other["torrent_id"])
        entry = next(e for e in meta.real_files if e.index == other["file_index"])
        return os.path.isfile(resolve_payload_path(save_path, entry))
    except (Error, StopIteration):
        return False
