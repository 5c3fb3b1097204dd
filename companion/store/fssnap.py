"""Read-only filesystem snapshots as store snapshots (store layout 3): where the payload lives on
btrfs, `btrfs subvolume snapshot -r` of its subvolume holds every file as it is now, at no extra
disk until files change (the filesystem shares their extents), in O(1) whatever their size.

[store] fs_snapshots says when a store snapshot is taken this way: "preflight" (default: an AI
job's preflight), "always", or "off". The read-only snapshot goes in `.seedward-snapshots/` at the
subvolume's root; a newer store snapshot reuses the newest one whose copies are still the files
the catalog verified. A file's copy in it is proven as the store's first snapshots are (trusted.py:
same inode, size, mtime and ctime as the verifying scan saw, not racily clean, segment ids known),
else the copy is scanned against the torrent (it cannot change: the snapshot is read-only). The
record keeps the torrent's segment ids, so heals, drills, restores and archives read it like any
snapshot, every segment verified against its id. Prune deletes the read-only snapshots no store
snapshot uses. Its space is the filesystem's: `btrfs filesystem du` shows what a snapshot pins
(files changed or deleted since). ZFS (`zfs snapshot`, files under .zfs/snapshot/) works the same
way but is not wired: it cannot be tested here (see the README).
"""

import hashlib
import json
import logging
import os
import secrets
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from ..catalog import fssnap as rows
from ..catalog import snapshots as records
from ..childenv import child_env
from ..errors import Error
from ..scan import OK, resolve_payload_path
from .results import Snapshot, SnapshotRefused
from .trusted import filesystem_type, identity, trusted_files

log = logging.getLogger(__name__)

LAYOUT = 3
FOLDER = ".seedward-snapshots"
MODES = ("off", "preflight", "always")
BTRFS_ROOT_INODE = 256  # every btrfs subvolume's root directory


class FsSnapshotError(Error):
    """filesystem snapshot of {}: {}"""


def wanted(store, reason: str) -> bool:
    mode = getattr(store, "fs_snapshots", "off")
    return mode == "always" or (mode == "preflight" and reason == "preflight")


def subvolume(path) -> Path | None:
    """The btrfs subvolume holding `path` (its root folder), None elsewhere."""
    path = Path(path).resolve()
    if filesystem_type(path) != "btrfs":
        return None
    try:
        dev = os.stat(path).st_dev
        while True:
            st = os.stat(path)
            if st.st_dev != dev:
                return None
            if st.st_ino == BTRFS_ROOT_INODE:
                return path
            if path.parent == path:
                return None
            path = path.parent
    except OSError:
        return None


def _btrfs(*args: str) -> None:
    try:
        result = subprocess.run(["btrfs", *args], capture_output=True, text=True, env=child_env("btrfs"), timeout=300)
    except (OSError, subprocess.SubprocessError) as exc:
        raise FsSnapshotError(args[-1], f"btrfs {args[0]} {args[1]}: {exc}") from exc
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or [f"exit {result.returncode}"]
        raise FsSnapshotError(args[-1], f"btrfs {args[0]} {args[1]}: {tail[0]}")


def _new_snapshot(subvol: Path) -> Path:
    folder = subvol / FOLDER
    folder.mkdir(mode=0o700, exist_ok=True)
    name = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ") + "-" + secrets.token_hex(4)
    dest = folder / name
    _btrfs("subvolume", "snapshot", "-r", str(subvol), str(dest))
    return dest


def delete(path) -> None:
    _btrfs("subvolume", "delete", str(path))


def _prove(store, meta, root: Path, entries, scan: bool) -> dict | None:
    """file index -> (sha256, [(piece, offset, length, id, xxh3)]) for the copies under `root`, or
    None when a copy is not proven and scan=False. With scan=True unproven copies are scanned
    against the torrent (SnapshotRefused when they do not match)."""
    cat = store.catalog
    cataloged = {r["file_index"]: r for r in cat.get_files(meta.id)}
    ids = {}
    for e in entries:
        got = identity(resolve_payload_path(root, e))
        row = cataloged.get(e.index)
        if got is not None and row is not None:  # another device (the snapshot), the same inode and times
            ids[e.index] = (row["device"], *got[1:])
    trusted = trusted_files(cat, meta, root, entries, ids)
    out = {i: (t.sha256, t.segments) for i, t in trusted.items()}
    rest = {e.index for e in entries if e.index not in out}
    if not rest:
        return out
    if not scan:
        return None
    result = store.scanner.full_scan(meta, root, chunk_roots=True, only_files=rest)
    bad = [fs.entry.path for fs in result.files if fs.status != OK]
    if bad:
        raise SnapshotRefused(root, f"{meta.name}: {bad[0]} does not match its torrent in the read-only snapshot;"
                              " no snapshot stored")
    for fs in result.files:
        out[fs.entry.index] = (fs.sha256, [(s.piece, s.offset, s.length, s.root.hex(), s.xxh3) for s in fs.segments])
    return out


def take(store, meta, save_path: Path, reason: str, job_id, entries) -> Snapshot | None:
    """A store snapshot of these files held by a read-only snapshot of the payload's subvolume
    (taken now, or the newest one when its copies are still the verified files). None when the
    payload is not on btrfs or the snapshot cannot be made (the caller stores packs instead)."""
    subvol = subvolume(save_path)
    if subvol is None:
        return None
    rel = Path(save_path).resolve().relative_to(subvol)
    cat = store.catalog
    newest = rows.newest_taken(cat, str(subvol))
    proof, path = None, None
    if newest is not None and Path(newest["path"]).is_dir():
        proof = _prove(store, meta, Path(newest["path"]) / rel, entries, scan=False)
        path = Path(newest["path"]) if proof is not None else None
    if proof is None:
        try:
            path = _new_snapshot(subvol)
        except (FsSnapshotError, OSError) as exc:
            log.warning("%s: no read-only filesystem snapshot (%s); storing packs instead", meta.name, exc)
            return None
        rows.add_taken(cat, str(path), "btrfs", str(subvol))
        proof = _prove(store, meta, path / rel, entries, scan=True)  # SnapshotRefused: prune deletes it
    return _record(store, meta, save_path, reason, job_id, path, path / rel, entries, proof)


def _record(store, meta, save_path, reason, job_id, path: Path, root: Path, entries, proof: dict) -> Snapshot:
    file_rows, chunk_rows = [], []
    for e in entries:
        sha256, segments = proof[e.index]
        st = os.stat(resolve_payload_path(root, e))
        file_rows.append({"file_index": e.index, "path": e.path, "size": e.size, "mtime_ns": st.st_mtime_ns,
                          "inode": st.st_ino, "device": st.st_dev, "sha256": sha256, "link": e.link_target})
        chunk_rows += [(e.index, *seg) for seg in segments]
    created = store.clock().astimezone(timezone.utc).isoformat(timespec="milliseconds")
    per_file: dict[int, list] = {}
    for c in chunk_rows:
        per_file.setdefault(c[0], []).append(list(c[1:]))
    tree = {"version": LAYOUT, "torrent_id": meta.id, "name": meta.name, "created_at": created, "reason": reason,
            "job_id": job_id, "save_path": str(save_path), "nonce": secrets.token_hex(8),
            "fs": {"kind": "btrfs", "path": str(path), "root": str(root)},
            "files": [dict(f, chunks=per_file.get(f["file_index"], [])) for f in file_rows]}
    body = json.dumps(tree, separators=(",", ":")).encode()
    sid = hashlib.sha256(body).hexdigest()
    torrent_name = f"torrents/{meta.id}.torrent"
    if not store.backend.exists(torrent_name):
        store.backend.put_bytes(torrent_name, meta.raw)
    store.backend.put_bytes(f"snapshots/{sid}.json", body)
    if store.catalog.get_torrent(meta.id) is None:
        store.catalog.upsert_torrent(meta, save_path=str(save_path))
    row = {"id": sid, "torrent_id": meta.id, "name": meta.name, "created_at": created, "reason": reason,
           "job_id": job_id, "bytes": sum(f["size"] for f in file_rows), "new_bytes": 0, "files": len(file_rows),
           "save_path": str(save_path), "tree": f"snapshots/{sid}.json", "cloned_bytes": 0, "trusted_bytes": 0,
           "layout": LAYOUT}
    records.add_snapshot(store.catalog, row, file_rows, chunk_rows)
    rows.link(store.catalog, sid, str(path), str(root))
    log.info("%s: snapshot %s in the read-only filesystem snapshot %s", meta.name, sid[:12], path)
    return Snapshot.from_row(row)


def file_path(store, snapshot_id: str, row) -> Path | None:
    """Where a layout-3 snapshot's file is (None: not such a snapshot)."""
    link = rows.of_snapshot(store.catalog, snapshot_id)
    if link is None:
        return None
    from ..torrent import FileEntry

    return resolve_payload_path(Path(link["root"]), FileEntry(row["file_index"], row["path"], row["size"], 0, False,
                                                               None))


def prune(store, dry_run: bool = False) -> int:
    """Delete the read-only snapshots no store snapshot uses; returns how many."""
    n = 0
    for r in rows.unused(store.catalog):
        if dry_run:
            n += 1
            continue
        try:
            if Path(r["path"]).exists():
                delete(r["path"])
        except FsSnapshotError as exc:
            log.warning("cannot delete the read-only snapshot %s (kept): %s", r["path"], exc)
            continue
        rows.drop_taken(store.catalog, r["path"])
        n += 1
    return n
