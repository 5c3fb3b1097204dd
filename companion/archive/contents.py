"""What goes into a set, read from the store (a consistent point in time, never live files).

Full sets (weekly, monthly, yearly) hold every torrent's latest snapshot and all manifests; a daily
holds what changed since the previous set of any tier: torrents whose manifest changed in the
manifests repo's history since that set's commit (GitPython), or whose latest snapshot is newer. Every
set also carries the catalog (an online SQLite backup) and the kept .torrent files.
"""

import logging
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import git

from ..catalog.archives import backup_catalog
from ..catalog.snapshots import snapshot_files
from ..errors import StoreCorrupt, UnsafePath
from ..manifests import atomic_write
from .errors import ArchiveError
from .sevenzip import Entry, is_compressible

log = logging.getLogger(__name__)


@dataclass
class Selection:
    full: bool
    head: str | None  # manifests repo HEAD the set covers
    torrents: list[str] = field(default_factory=list)
    manifest_paths: list[str] = field(default_factory=list)
    deleted_manifests: list[str] = field(default_factory=list)
    why: str = ""


def _parse_time(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def select(catalog, repo: git.Repo, store, full: bool, previous: dict | None) -> Selection:
    head = repo.head.commit.hexsha if repo.head.is_valid() else None
    all_ids = [t["id"] for t in catalog.list_torrents()] if hasattr(catalog, "list_torrents") else []
    if full or previous is None:
        paths = [b.path for b in repo.head.commit.tree.traverse() if b.type == "blob"] if head else []
        why = "full" if full else "first set: nothing to be incremental to"
        return Selection(True, head, sorted(all_ids), sorted(paths), [], why)
    base = previous.get("manifests_commit")
    changed, deleted = set(), set()
    try:
        if base and head and base != head:
            for d in repo.commit(base).diff(head):
                if d.deleted_file:
                    deleted.add(d.a_path)
                else:
                    changed.add(d.b_path)
                    if d.renamed_file:
                        deleted.add(d.a_path)
    except (git.BadName, ValueError) as exc:
        log.warning("manifests commit %s of set %s is gone (%s): making a full set", base, previous["set_id"], exc)
        return select(catalog, repo, store, True, None)
    ids = {p.split("/", 1)[1][:-5] for p in changed if p.startswith("torrents/") and p.endswith(".json")}
    since = _parse_time(previous["created_at"])
    for tid in all_ids:
        snap = store.latest(tid) if store is not None else None
        if snap is not None and since is not None and _parse_time(snap.created_at) > since:
            ids.add(tid)
    return Selection(False, head, sorted(ids), sorted(changed), sorted(deleted),
                     f"incremental since {previous['set_id']}")


@dataclass
class Staged:
    entries: list[Entry]
    members: list[dict]  # path, size, torrent_id, snapshot_id (sha256 filled after archiving)
    skipped: list[dict]
    bytes: int


def stage(sel: Selection, catalog, repo: git.Repo, store, home, staging: Path) -> Staged:
    """The members of a set. Payload files stream from the store's verified chunks straight into the
    archive (no staging copy); manifests, the catalog backup and .torrent files are staged as files."""
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    skipped, payload = [], []
    for tid in sel.torrents:
        snap = store.latest(tid) if store is not None else None
        if snap is None:
            skipped.append({"torrent_id": tid, "reason": "no snapshot in the store"})
            continue
        payload += _snapshot_entries(store, catalog, tid, snap.id)
        torrent_file = home.torrents / f"{tid}.torrent"
        if torrent_file.is_file():
            (staging / "torrents").mkdir(exist_ok=True)
            shutil.copyfile(torrent_file, staging / "torrents" / torrent_file.name)
    if sel.head:
        tree = repo.commit(sel.head).tree
        for path in sel.manifest_paths:
            try:
                blob = tree / path
            except KeyError:
                continue
            atomic_write(staging / "manifests" / path, blob.data_stream.read(), 0o600)
    backup_catalog(catalog, staging / "catalog" / "catalog.sqlite")

    entries, members = [], []
    for e, tid, sid in payload:
        entries.append(e)
        members.append({"path": e.arcname, "size": e.size, "torrent_id": tid, "snapshot_id": sid})
    for path in sorted(p for p in staging.rglob("*") if p.is_file()):
        rel = path.relative_to(staging).as_posix()
        size = path.stat().st_size
        entries.append(Entry(path, rel, size, is_compressible(path)))
        members.append({"path": rel, "size": size, "torrent_id": None, "snapshot_id": None})
    if not entries:
        raise ArchiveError(staging, "nothing to archive")
    return Staged(entries, members, skipped, sum(e.size for e in entries))


def _snapshot_entries(store, catalog, tid: str, snapshot_id: str) -> list[tuple[Entry, str, str]]:
    chunks = store.chunk_map(snapshot_id)
    out = []
    for row in snapshot_files(catalog, snapshot_id):
        rel = Path(row["path"])
        if rel.is_absolute() or ".." in rel.parts:
            raise UnsafePath(row["path"], f"in snapshot {snapshot_id[:12]}")
        segs = sorted((piece, off, length, cid) for (fi, piece), (off, length, cid) in chunks.items()
                      if fi == row["file_index"])
        head = store.read_chunk(segs[0][3])[:256 * 1024] if segs else b""
        entry = Entry(None, f"payload/{tid}/{rel.as_posix()}", row["size"], is_compressible(rel, head),
                      blocks=_chunk_reader(store, segs, row["path"]), expect_sha256=row["sha256"])
        out.append((entry, tid, str(snapshot_id)))
    return out


def _chunk_reader(store, segs, path: str):
    def blocks():
        pos = 0
        for _piece, offset, length, cid in segs:
            if offset != pos:
                raise StoreCorrupt(path, f"snapshot chunk map has a gap at offset {pos}")
            data = store.read_chunk(cid)  # verified against its id by the store
            if len(data) != length:
                raise StoreCorrupt(path, f"chunk {cid[:12]} holds {len(data)} bytes, expected {length}")
            pos += length
            yield data
    return blocks
