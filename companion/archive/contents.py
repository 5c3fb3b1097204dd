"""What goes into a set, read from the store (a consistent point in time, never live files).

Full sets (weekly, monthly, yearly) hold every torrent's latest snapshot and all manifests; a daily
holds what changed since the previous set of any tier: torrents whose manifest changed in the
manifests repo's history since that set's commit (GitPython), or whose latest snapshot is newer. Every
set also carries the catalog (an online SQLite backup), each archived torrent's .torrent and, among the
manifests, qBittorrent's state (`qbittorrent/`, written by `seedward qbt backup`).
"""

import hashlib
import itertools
import logging
import os
import shutil
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import git

from ..catalog.archives import backup_catalog
from ..catalog.snapshots import snapshot_files
from ..errors import BadTorrent, NotFound, StoreCorrupt, UnsafePath
from ..job import sha256_file
from ..quickscan import quick_scan
from ..scan import OK
from ..store.trusted import identity, trusted_files
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
    members: list[dict]  # path, size, torrent_id, snapshot_id (sha256 filled once read)
    skipped: list[dict]
    bytes: int


def stage(sel: Selection, catalog, repo: git.Repo, store, home, staging: Path, dry_run: bool = False) -> Staged:
    """The members of a set. Payload files stream from the store's verified chunks (no copy: the 7z
    command reads them once `materialize` has written them out); each torrent's .torrent (from the
    store's copy of the snapshotted torrent), the manifests and the catalog backup are staged as
    files. dry_run: the same members, counted, nothing written."""
    if not dry_run:
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
    skipped, payload, small = [], [], []  # small: (arcname, bytes | None, path | None)
    for tid in sel.torrents:
        snap = store.latest(tid) if store is not None else None
        if snap is None:
            skipped.append({"torrent_id": tid, "reason": "no snapshot in the store"})
            continue
        payload += _snapshot_entries(store, catalog, tid, snap.id)
        raw = _torrent_bytes(store, snap, home)
        if raw is not None:
            small.append((f"torrents/{tid}.torrent", raw))
    if sel.head:
        tree = repo.commit(sel.head).tree
        for path in sel.manifest_paths:
            try:
                blob = tree / path
            except KeyError:
                continue
            small.append((f"manifests/{path}", blob.data_stream.read()))
    entries, members = [], []
    for e, tid, sid in payload:
        entries.append(e)
        members.append({"path": e.arcname, "size": e.size, "torrent_id": tid, "snapshot_id": sid})
    for rel, data in small:
        if not dry_run:
            write_staged(staging / rel, data)
        path = staging / rel
        entries.append(Entry(path, rel, len(data), is_compressible(path, data[:256 * 1024])))
        members.append({"path": rel, "size": len(data), "torrent_id": None, "snapshot_id": None})
    rel = "catalog/catalog.sqlite"
    if dry_run:
        size = Path(catalog.path).stat().st_size if getattr(catalog, "path", None) else 0
    else:
        backup_catalog(catalog, staging / rel)
        size = (staging / rel).stat().st_size
    entries.append(Entry(staging / rel, rel, size, True))
    members.append({"path": rel, "size": size, "torrent_id": None, "snapshot_id": None})
    return Staged(entries, members, skipped, sum(e.size for e in entries))


def write_staged(path: Path, data: bytes) -> None:
    """A file of the staging folder: private, not synced (it lives for one run; a crash removes it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _torrent_bytes(store, snap, home) -> bytes | None:
    """The snapshotted .torrent (the store keeps a copy), else the one kept in the state home."""
    try:
        return store.torrent_meta(snap).raw
    except (OSError, StoreCorrupt, BadTorrent, NotFound) as exc:
        log.warning("torrent %s: no .torrent in the store (%s); using the state home's", snap.torrent_id[:12], exc)
    kept = home.torrents / f"{snap.torrent_id}.torrent"
    return kept.read_bytes() if kept.is_file() else None


def materialize(entries: list[Entry], root: Path, workers: int = 2) -> None:
    """Write every entry that streams from the store as a file under root (for the 7z command),
    checking each file's SHA-256 against its snapshot; entries already on disk get their SHA-256."""
    def one(e: Entry) -> None:
        if e.blocks is None:
            e.sha256 = sha256_file(e.source)
            return
        path = root / e.arcname
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        written = 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            for block in e.blocks():
                digest.update(block)
                view = memoryview(block)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                written += len(block)
        finally:
            os.close(fd)
        if written != e.size:
            raise ArchiveError(e.arcname, f"read {written} bytes from the store, expected {e.size}")
        e.sha256 = digest.hexdigest()
        if e.expect_sha256 and e.sha256 != e.expect_sha256:
            raise StoreCorrupt(e.arcname, "the bytes read from the store do not match the snapshot's SHA-256")
        e.source, e.blocks = path, None

    # biggest first, so the two writers end together
    ordered = sorted(entries, key=lambda e: e.size, reverse=True)
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="archive-stage") as pool:
        for fut in [pool.submit(one, e) for e in ordered]:
            fut.result()


@dataclass
class Live:
    """A torrent whose seeding files still are its snapshot, byte for byte on the catalog's word
    (store/trusted.py: the identity its verifying scan recorded): 7z reads them in place, through a
    link staging/payload/<id> -> its save path, while their SHA-256 is taken again and their
    identity is checked once more after 7z has read them."""

    torrent_id: str
    save_path: Path
    files: list[tuple[Entry, Path, tuple]]  # entry, the seeding file, its identity before
    meta: object = None  # TorrentMeta
    baseline: dict = field(default_factory=dict)  # file index -> {piece: xxh3}: the quick verify's

    def check(self) -> list[str]:
        """The files whose bytes (xxh3 of every piece-aligned segment, against the verifying scan's)
        are no longer the snapshot's (a quick verify, while 7z reads them)."""
        quick = quick_scan(self.meta, self.save_path, self.baseline, files=set(self.baseline), workers=1)
        return sorted(str(f.path) for f in quick.files if f.status != OK)

    def moved(self) -> list[str]:
        """The files whose identity changed (once 7z has read them: any write since moves ctime)."""
        return [str(p) for _e, p, before in self.files if identity(p) != before]


MAX_IN_PLACE = 50_000  # torrents read in place per set: one mount each, and the kernel allows 100,000


def live_torrents(catalog, store, staged: Staged) -> dict[str, Live]:
    """The staged torrents 7z may read in place (every file trusted, where the snapshot puts it);
    past MAX_IN_PLACE torrents, the rest come from the store."""
    by_torrent: dict[str, list[tuple[Entry, dict]]] = {}
    for e, m in zip(staged.entries, staged.members):
        if e.blocks is not None and m["torrent_id"]:
            by_torrent.setdefault(m["torrent_id"], []).append((e, m))
    out = {}
    for tid, items in by_torrent.items():
        if len(out) >= MAX_IN_PLACE:
            log.info("archive: more than %d torrents; the rest are written out of the store", MAX_IN_PLACE)
            break
        row = catalog.get_torrent(tid)
        if row is None or not row["save_path"]:
            continue
        save_path = Path(row["save_path"])
        try:
            snap = store.get(items[0][1]["snapshot_id"])
            meta = store.torrent_meta(snap)
        except (OSError, StoreCorrupt, BadTorrent, NotFound):
            continue
        rows = {r["path"]: r for r in snapshot_files(catalog, snap.id)}
        by_index = {f.index: f for f in meta.files}
        wanted = [by_index.get(rows[m["path"].split("/", 2)[2]]["file_index"]) for _e, m in items]
        if any(w is None for w in wanted):
            continue
        identities = {w.index: identity(save_path / w.path) for w in wanted}
        trusted = trusted_files(catalog, meta, save_path, wanted, identities)
        files, baseline = [], {}
        for (e, m), w in zip(items, wanted):
            t = trusted.get(w.index)
            rel = m["path"].split("/", 2)[2]
            if t is None or t.sha256 != e.expect_sha256 or t.path != save_path / rel:
                break
            files.append((e, t.path, identities[w.index]))
            baseline[w.index] = {piece: xxh3 for piece, _off, _len, _cid, xxh3 in t.segments}
        else:
            out[tid] = Live(tid, save_path, files, meta, baseline)
    return out


def _snapshot_entries(store, catalog, tid: str, snapshot_id: str) -> list[tuple[Entry, str, str]]:
    chunks = store.chunk_map(snapshot_id)
    by_file: dict[int, list] = {}
    for (fi, piece), (off, length, cid) in chunks.items():
        by_file.setdefault(fi, []).append((piece, off, length, cid))
    row_t = catalog.get_torrent(tid)
    save_path = Path(row_t["save_path"]) if row_t is not None and row_t["save_path"] else None
    out = []
    for row in snapshot_files(catalog, snapshot_id):
        rel = Path(row["path"])
        if rel.is_absolute() or ".." in rel.parts:
            raise UnsafePath(row["path"], f"in snapshot {snapshot_id[:12]}")
        segs = sorted(by_file.get(row["file_index"], []))
        entry = Entry(None, f"payload/{tid}/{rel.as_posix()}", row["size"],
                      is_compressible(rel, lambda segs=segs, rel=rel: _head(store, segs, save_path, rel)),
                      blocks=_chunk_reader(store, segs, row["path"]), expect_sha256=row["sha256"])
        out.append((entry, tid, str(snapshot_id)))
    return out


def _head(store, segs, save_path: Path | None, rel: Path, size: int = 256 * 1024) -> bytes:
    """A sample of the file's first bytes, to guess whether it compresses: from the seeding file when
    it is there (a guess needs no proof), else from its first chunk in the store."""
    if save_path is not None:
        try:
            with open(save_path / rel, "rb") as fh:
                return fh.read(size)
        except OSError:
            pass
    return store.read_chunk(segs[0][3])[:size] if segs else b""


def _chunk_reader(store, segs, path: str, ahead: int = 4):
    """The file's bytes chunk by chunk, each verified by the store; a few chunks are read and
    verified ahead on two threads (the verification's SHA-256 releases the GIL)."""
    def blocks():
        pos = 0
        with ThreadPoolExecutor(2, thread_name_prefix="archive-read") as pool:
            pending = deque()
            it = iter(segs)
            for seg in itertools.islice(it, ahead):
                pending.append((seg, pool.submit(store.read_chunk, seg[3])))
            while pending:
                (_piece, offset, length, cid), fut = pending.popleft()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append((nxt, pool.submit(store.read_chunk, nxt[3])))
                if offset != pos:
                    raise StoreCorrupt(path, f"snapshot chunk map has a gap at offset {pos}")
                data = fut.result()
                if len(data) != length:
                    raise StoreCorrupt(path, f"chunk {cid[:12]} holds {len(data)} bytes, expected {length}")
                pos += length
                yield data
    return blocks
