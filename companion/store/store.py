"""The snapshot store: deduplicated, piece-aligned chunks in packs, snapshot records in the catalog.

Write order (each step atomic: temp, fsync, rename): packs, then the index file naming them,
then the snapshot tree, then the catalog rows. A crash at any point leaves at most data
nothing refers to (prune removes it), never a snapshot that claims data the store lacks.
"""

import dataclasses
import hashlib
import itertools
import json
import logging
import os
import secrets
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..catalog import snapshots as records
from ..errors import EXIT_DAMAGE, BadInput, ConfigError, NotFound, PayloadError, StoreCorrupt
from ..catalog.drills import mark_suspect
from ..scan import OK, RateLimiter, Scanner, check_save_path, resolve_payload_path
from ..torrent import FileEntry, TorrentMeta, load_torrent
from .backend import Backend, LocalBackend, fsync_dir
from .chunk import chunk_root, chunk_width
from .index import Index
from .pack import PackWriter, pack_name, pwrite_all, read_trailer, start_writeback, write_behind
from .policy import Decision, KeepPolicy, apply_policy
from .trusted import Trusted, identity, trusted_files
from . import reflink

log = logging.getLogger(__name__)

REASONS = ("auto", "preflight", "manual")
VERSION = 1
HEAL_BATCH_BYTES = 256 * 1024 * 1024  # chunks verified before any of the batch is written
COPY_THREADS = 2  # trusted files are kernel-copied on both cores
RUN_CHUNKS = 16  # chunks reserved (and cloned or copied) at once
RESTORE_FILES = 2  # files restored at once


class SnapshotRefused(PayloadError):
    """{}: {}"""

    exit_code = EXIT_DAMAGE


class ChunkCollision(BadInput):
    """chunk {}: {}"""


@dataclass
class Snapshot:
    id: str
    torrent_id: str
    created_at: str
    reason: str
    job_id: str | None  # the queue job's or the AI job's id
    bytes: int
    new_bytes: int
    name: str = ""
    files: int = 0
    save_path: str | None = None
    cloned_bytes: int = 0  # of new_bytes, cloned from the payload (reflinks) rather than written
    trusted_bytes: int = 0  # bytes taken unhashed on the catalog's verification (store/trusted.py)

    @classmethod
    def from_row(cls, row) -> "Snapshot":
        job = row["job_ref"] if "job_ref" in row.keys() and row["job_ref"] is not None else row["job_id"]
        return cls(row["id"], row["torrent_id"], row["created_at"], row["reason"],
                   None if job is None else str(job), row["bytes"],
                   row["new_bytes"], row["name"], row["files"], row["save_path"], row["cloned_bytes"],
                   row["trusted_bytes"] if "trusted_bytes" in row.keys() else 0)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class RestoreResult:
    snapshot_id: str
    dest_dir: Path
    files: list[str]
    bytes: int
    seconds: float
    cloned_bytes: int = 0
    sha256: dict[str, str] = field(default_factory=dict)  # written path -> SHA-256 of the bytes written

    def to_json(self) -> dict:
        return {**asdict(self), "dest_dir": str(self.dest_dir)}


@dataclass
class HealResult:
    snapshot_id: str
    segments: list[tuple[int, int]]  # (file_index, piece) written back
    bytes: int
    files: list[str]
    seconds: float

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class CheckResult:
    packs: int = 0
    chunks: int = 0
    bytes_read: int = 0
    errors: list[str] = field(default_factory=list)
    unreferenced_packs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict:
        return {**asdict(self), "ok": self.ok}


@dataclass
class PruneResult:
    packs_deleted: int = 0
    packs_repacked: int = 0
    chunks_removed: int = 0
    bytes_freed: int = 0
    trees_deleted: int = 0
    dry_run: bool = False

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class ForgetResult:
    decisions: dict[str, Decision]  # torrent id -> decision
    removed: list[str]
    dry_run: bool

    def to_json(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "removed": self.removed,
            "torrents": {tid: {"keep": [{"id": sid, "reasons": r} for sid, r in d.keep], "remove": d.remove}
                         for tid, d in self.decisions.items()},
        }


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Store:
    """Open with `Store.open(path, catalog)`. Thread-safe; writers take the store lock."""

    def __init__(self, backend: Backend, catalog, *, pack_size: int = 64 * 1024 * 1024, clock=_utc_now,
                 scanner: Scanner | None = None, lock_timeout: float = 600.0, reflinks: bool = True,
                 copy_from_payload: bool = True, trust_catalog: bool = True):
        self.backend = backend
        self.catalog = catalog
        self.pack_size = pack_size
        self.clock = clock
        self.scanner = scanner or Scanner()
        self.lock_timeout = lock_timeout
        self.reflinks = reflinks  # restores clone chunks out of packs
        self.copy_from_payload = copy_from_payload  # snapshots clone or kernel-copy from the payload
        self.trust_catalog = trust_catalog  # verified, unchanged files are stored unhashed (trusted.py)
        self.index = Index(backend)

    @classmethod
    def open(cls, path, catalog, **kwargs) -> "Store":
        """Open (creating it when absent) the store in folder `path`."""
        backend = LocalBackend(Path(path))
        store = cls(backend, catalog, **kwargs)
        try:
            store._init_layout()
        except OSError as exc:
            raise ConfigError(path, f"cannot use it as the store: {exc.strerror or exc}") from exc
        store.index.reload()
        return store

    @classmethod
    def for_home(cls, home, settings, catalog, **kwargs) -> "Store":
        path = Path(settings.store.path).expanduser() if settings.store.path else home.store
        return cls.open(path, catalog, pack_size=settings.store.pack_size_mb * 1024 * 1024,
                        trust_catalog=settings.store.trust_catalog, **kwargs)

    def _init_layout(self) -> None:
        if not self.backend.exists("config.json"):
            doc = {"version": VERSION, "chunks": "piece-aligned segments, id = SHA-256 merkle root of 16 KiB blocks",
                   "created_at": self.clock().isoformat()}
            self.backend.put_bytes("config.json", json.dumps(doc, indent=2).encode())
        try:
            doc = json.loads(self.backend.get_bytes("config.json"))
        except ValueError as exc:
            raise StoreCorrupt(self.backend.where, "config.json is unreadable") from exc
        if doc.get("version") != VERSION:
            raise StoreCorrupt(self.backend.where, f"unsupported store version {doc.get('version')!r}")

    # -- snapshot -------------------------------------------------------------------------

    def snapshot(self, meta: TorrentMeta, save_path, reason: str, job_id: str | int | None = None,
                 files: set[int] | list[int] | None = None, *, trust_catalog: bool | None = None) -> Snapshot:
        """Snapshot the payload (or the given file indices). Files whose size, mtime and inode
        match the previous snapshot are taken from it without reading them; files the catalog
        verified and nobody changed since are copied under the catalog's chunk ids (trusted.py);
        the others are read once, verified against the torrent and their new chunks stored.
        Raises SnapshotRefused when the payload does not match its torrent: nothing is recorded
        then. files=None means the cataloged files (all, unless some are skipped in qBittorrent)."""
        if reason not in REASONS:
            raise BadInput("reason", f"{reason!r} is not one of {', '.join(REASONS)}")
        save_path = check_save_path(Path(save_path))
        by_index = {e.index: e for e in meta.real_files}
        if files is None:
            cataloged = {r["file_index"] for r in self.catalog.get_files(meta.id)}
            if cataloged and not set(by_index) <= cataloged:
                files = cataloged & set(by_index)  # a partly downloaded torrent: what it seeds
        if files is not None:
            unknown = sorted(set(files) - set(by_index))
            if unknown:
                raise BadInput(meta.name, f"no file with index {unknown[0]} in the torrent")
        wanted = [e for e in meta.real_files if files is None or e.index in files]
        trust = self.trust_catalog if trust_catalog is None else trust_catalog
        with self.backend.lock(self.lock_timeout):
            self.index.reload()
            previous = self._previous_files(meta.id)
            reused, changed = {}, []
            for entry in wanted:
                prev = previous.get(entry.index)
                if prev is not None and self._unchanged(save_path, entry, prev):
                    reused[entry.index] = prev
                else:
                    changed.append(entry)
            stored = _Stored()
            if changed:
                stored = self._store_files(meta, save_path, changed, trust)
            return self._record(meta, save_path, reason, job_id, wanted, reused, stored)

    def _previous_files(self, torrent_id: str) -> dict[int, tuple]:
        """file_index -> (file row, chunk rows) from the newest snapshot holding that file."""
        out: dict[int, tuple] = {}
        for snap in reversed(records.list_snapshots(self.catalog, torrent_id)):
            rows = records.snapshot_files(self.catalog, snap["id"])
            if all(r["file_index"] in out for r in rows):
                continue
            chunks: dict[int, list] = {}
            for c in records.snapshot_chunks(self.catalog, snap["id"]):
                chunks.setdefault(c["file_index"], []).append(c)
            for r in rows:
                out.setdefault(r["file_index"], (r, chunks.get(r["file_index"], [])))
        return out

    def _unchanged(self, save_path: Path, entry: FileEntry, prev: tuple) -> bool:
        row, chunks = prev
        try:
            st = os.stat(resolve_payload_path(save_path, entry))
        except OSError:
            return False
        same = (st.st_size == entry.size == row["size"] and st.st_mtime_ns == row["mtime_ns"]
                and st.st_ino == row["inode"] and st.st_dev == row["device"])
        return same and all(c["chunk_id"] in self.index for c in chunks)

    def _claim(self, writer: PackWriter, added: dict, cid: str, length: int, width: int):
        """Room in a pack for a chunk not stored yet, else None; the caller holds writer.lock."""
        known = self.index.get(cid)
        shape = (known.length, known.width) if known else (tuple(added[cid][2:]) if cid in added else None)
        if shape is not None:
            if shape != (length, width):
                raise ChunkCollision(cid, "same id as a stored chunk of another shape; not stored")
            return None
        pack, offset = writer.reserve(cid, width, length)
        added[cid] = [pack.pack_id, offset, length, width]
        return pack, offset

    def _store_files(self, meta: TorrentMeta, save_path: Path, entries: list[FileEntry], trust: bool) -> "_Stored":
        writer = PackWriter(self.backend, self.pack_size)
        single = {e.index for e in entries if len(meta.file_pieces(e)) == 1}
        added: dict[str, list] = {}
        out = _Stored()
        sources = CloneSources(save_path, {e.index: e for e in entries})
        out.identities = sources.before
        out.trusted = trusted_files(self.catalog, meta, save_path, entries, sources.before) if trust else {}
        to_scan = {e.index for e in entries if e.index not in out.trusted}

        def sink(file_index, seg, data):
            cid = seg.root.hex()
            with writer.lock:
                room = self._claim(writer, added, cid, seg.length, chunk_width(meta, seg.length, file_index in single))
                if room is None:
                    return
                out.new_bytes += seg.length
            source = sources.fd(file_index) if self.copy_from_payload else None
            cloned, copied = writer.write(*room, data, (source, seg.offset) if source is not None else None)
            if copied:
                sources.used(file_index, cloned, copied)

        def copy_trusted(t: Trusted):
            fd = sources.fd(t.entry.index)
            if fd is None:
                raise SnapshotRefused(t.path, "changed or vanished as it was being snapshotted; no snapshot stored"
                                      " (try again)")
            is_single = t.entry.index in single
            segs = iter(t.segments)
            while True:
                # Reserve a run of chunks at once: consecutive chunks then sit back to back in the
                # pack as in the file, and one clone or copy call moves the whole run.
                run = []
                with writer.lock:
                    for _piece, offset, length, cid, _xxh3 in itertools.islice(segs, RUN_CHUNKS):
                        room = self._claim(writer, added, cid, length, chunk_width(meta, length, is_single))
                        if room is not None:
                            out.new_bytes += length
                            run.append((*room, offset, length))
                if not run:
                    break
                for pack, at, offset, length, count in _contiguous(run):
                    cloned = writer.copy(pack, at, length, fd, offset, t.path, kernel=self.copy_from_payload,
                                         chunks=count)
                    sources.used(t.entry.index, cloned, length)

        # A hybrid torrent's v2 hashes (SHA-256, every byte of every file) are the chunk ids'
        # own tree: verifying them is enough, and skipping the v1 SHA-1 saves a third of the CPU.
        scan_meta = dataclasses.replace(meta, info_hash_v1=None, v1_hashes=None) if meta.has_v2 else meta
        try:
            if out.trusted:
                biggest_first = sorted(out.trusted.values(), key=lambda t: -t.entry.size)
                with ThreadPoolExecutor(COPY_THREADS, thread_name_prefix="snapshot-copy") as pool:
                    list(pool.map(copy_trusted, biggest_first))
                out.trusted_bytes = sum(t.entry.size for t in out.trusted.values())
            if to_scan:
                result = self.scanner.full_scan(scan_meta, save_path, chunk_roots=True, sink=sink, only_files=to_scan)
                result.meta = meta
                out.scan = result
                if not result.ok:
                    bad = [f.entry.path for f in result.files if f.status != OK]
                    raise SnapshotRefused(save_path, f"{meta.name}: payload does not match its torrent "
                                          f"({len(result.bad_pieces)} bad pieces; {', '.join(bad[:3]) or '-'});"
                                          " no snapshot stored")
            changed = sources.changed()
            if changed:
                raise SnapshotRefused(save_path, f"{changed} changed while it was being snapshotted;"
                                      " no snapshot stored (try again)")
            packs = writer.finish()
        except BaseException:
            writer.discard()
            raise
        finally:
            sources.close()
        self.index.write({p.pack_id: p.entries for p in packs})
        out.cloned = sources.cloned
        return out

    def _record(self, meta, save_path, reason, job_id, wanted, reused, stored: "_Stored") -> Snapshot:
        scan = stored.scan
        scanned = {fs.entry.index: fs for fs in scan.files} if scan else {}
        file_rows, chunk_rows = [], []
        for entry in wanted:
            if entry.index in reused:
                row, chunks = reused[entry.index]
                file_rows.append({k: row[k] for k in ("file_index", "path", "size", "mtime_ns", "inode", "device",
                                                       "sha256")})
                chunk_rows += [(c["file_index"], c["piece"], c["offset"], c["length"], c["chunk_id"], c["xxh3"])
                               for c in chunks]
            elif entry.index in stored.trusted:
                t = stored.trusted[entry.index]
                dev, ino, _size, mtime, _ctime = stored.identities[entry.index]
                file_rows.append({"file_index": entry.index, "path": entry.path, "size": entry.size,
                                  "mtime_ns": mtime, "inode": ino, "device": dev, "sha256": t.sha256})
                chunk_rows += [(entry.index, *seg) for seg in t.segments]
            else:
                fs = scanned[entry.index]
                file_rows.append({"file_index": entry.index, "path": entry.path, "size": entry.size,
                                  "mtime_ns": fs.stat.mtime_ns, "inode": fs.stat.inode, "device": fs.stat.device,
                                  "sha256": fs.sha256})
                chunk_rows += [(entry.index, s.piece, s.offset, s.length, s.root.hex(), s.xxh3) for s in fs.segments]
        per_file: dict[int, list] = {}
        for c in chunk_rows:
            per_file.setdefault(c[0], []).append(list(c[1:]))
        created = self.clock().astimezone(timezone.utc).isoformat(timespec="milliseconds")
        tree = {
            "version": VERSION, "torrent_id": meta.id, "name": meta.name, "created_at": created, "reason": reason,
            "job_id": job_id, "save_path": str(save_path), "nonce": secrets.token_hex(8),
            "files": [dict(f, chunks=per_file.get(f["file_index"], [])) for f in file_rows],
        }
        body = json.dumps(tree, separators=(",", ":")).encode()
        sid = hashlib.sha256(body).hexdigest()
        tree_name = f"snapshots/{sid}.json"
        torrent_name = f"torrents/{meta.id}.torrent"
        if not self.backend.exists(torrent_name):
            self.backend.put_bytes(torrent_name, meta.raw)
        self.backend.put_bytes(tree_name, body)
        if scan is not None and len(scan.files) == len(meta.real_files):
            # A full pass over a good payload is also the catalog's baseline: one read, both records.
            self.catalog.record_scan(scan, reason=f"snapshot:{reason}", save_path=str(save_path))
        elif self.catalog.get_torrent(meta.id) is None:
            self.catalog.upsert_torrent(meta, save_path=str(save_path))
        row = {"id": sid, "torrent_id": meta.id, "name": meta.name, "created_at": created, "reason": reason,
               "job_id": job_id, "bytes": sum(f["size"] for f in file_rows), "new_bytes": stored.new_bytes,
               "files": len(file_rows), "save_path": str(save_path), "tree": tree_name,
               "cloned_bytes": stored.cloned, "trusted_bytes": stored.trusted_bytes}
        records.add_snapshot(self.catalog, row, file_rows, chunk_rows)
        log.info("%s: snapshot %s (%d bytes, %d new, %d trusted)", meta.name, sid[:12], row["bytes"],
                 stored.new_bytes, stored.trusted_bytes)
        return Snapshot.from_row(row)

    # -- reading ---------------------------------------------------------------------------

    def snapshots(self, torrent_id: str | None = None) -> list[Snapshot]:
        """Oldest first."""
        return [Snapshot.from_row(r) for r in records.list_snapshots(self.catalog, torrent_id)]

    def latest(self, torrent_id: str) -> Snapshot | None:
        snaps = self.snapshots(torrent_id)
        return snaps[-1] if snaps else None

    def get(self, snapshot_id: str) -> Snapshot:
        """A snapshot by id or unique id prefix."""
        ids = records.resolve_snapshot(self.catalog, snapshot_id) if snapshot_id else []
        if not ids:
            raise NotFound(f"no snapshot matches {snapshot_id!r}")
        if len(ids) > 1:
            raise BadInput(snapshot_id, f"matches {len(ids)} snapshots; give more digits")
        return Snapshot.from_row(records.get_snapshot(self.catalog, ids[0]))

    def torrent_meta(self, snapshot: Snapshot) -> TorrentMeta:
        """The snapshotted torrent, from the copy kept in the store."""
        name = f"torrents/{snapshot.torrent_id}.torrent"
        return load_torrent(self.backend.get_bytes(name), source=f"{self.backend.where}/{name}")

    def chunk_map(self, snapshot_id: str) -> dict[tuple[int, int], tuple[int, int, str]]:
        """(file_index, piece) -> (offset in file, length, chunk id)."""
        return {(c["file_index"], c["piece"]): (c["offset"], c["length"], c["chunk_id"])
                for c in records.snapshot_chunks(self.catalog, snapshot_id)}

    def read_chunk(self, chunk_id: str) -> bytes:
        """The chunk's bytes, verified against its id. Raises StoreCorrupt naming chunk and pack."""
        entry = self.index.get(chunk_id)
        if entry is None:
            self.index.reload()
            entry = self.index.get(chunk_id)
        if entry is None:
            raise StoreCorrupt(self.backend.where, f"chunk {chunk_id} is not in the index")
        try:
            data = self.backend.read_range(pack_name(entry.pack), entry.offset, entry.length)
        except StoreCorrupt as exc:
            self.index.reload()  # another Store may have repacked it meanwhile (prune)
            moved = self.index.get(chunk_id)
            if moved is None or moved == entry:
                raise StoreCorrupt(self.backend.where, f"chunk {chunk_id} in pack {entry.pack}: {exc.args[-1]}") from exc
            return self.read_chunk(chunk_id)
        if chunk_root(data, entry.width).hex() != chunk_id:
            raise StoreCorrupt(self.backend.where,
                               f"chunk {chunk_id} in pack {entry.pack} does not match its id (corrupt data)")
        return data

    def select_files(self, snapshot_id: str, files) -> list:
        rows = records.snapshot_files(self.catalog, snapshot_id)
        if not files:
            return rows
        out = []
        for want in files:
            if isinstance(want, int):
                hits = [r for r in rows if r["file_index"] == want]
            else:
                want = str(want).strip("/")
                hits = [r for r in rows if r["path"] == want or r["path"].split("/", 1)[-1] == want
                        or r["path"].startswith(want + "/") or r["path"].split("/", 1)[-1].startswith(want + "/")]
            if not hits:
                raise NotFound(f"snapshot {snapshot_id[:12]} has no file {want!r}")
            out += [r for r in hits if r not in out]
        return sorted(out, key=lambda r: r["file_index"])

    # -- restore and heal ------------------------------------------------------------------

    def restore(self, snapshot_id: str, dest_dir, files=None, paths: dict[int, str] | None = None,
                keep_cache: bool = False) -> RestoreResult:
        """Write the snapshot's files under dest_dir, laid out as the torrent does. Each file is
        written to a temp file, checked (chunk ids and the file's SHA-256), fsynced and renamed.
        paths: file index -> path to use instead of the snapshot's (e.g. the .torrent's own names
        for a torrent whose files qBittorrent renamed). keep_cache: leave the restored bytes in
        the page cache (a drill reads them right back); by default they are dropped once on disk."""
        began = time.monotonic()
        snap = self.get(snapshot_id)
        dest_dir = Path(dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True)
        rows = self.select_files(snap.id, files)
        chunks = self.chunk_map(snap.id)
        by_file: dict[int, list] = {}
        for (fi, piece), v in chunks.items():
            by_file.setdefault(fi, []).append((piece, *v))
        jobs = []
        for row in rows:
            where = (paths or {}).get(row["file_index"], row["path"])
            entry = FileEntry(row["file_index"], where, row["size"], 0, False, None)
            jobs.append((where, resolve_payload_path(dest_dir, entry), row, sorted(by_file.get(row["file_index"], []))))
        # Two files at once (each file's SHA-256 is one sequential stream). Every file goes to a
        # temp name first; they are renamed into place only once all are written and checked, so
        # a bad chunk anywhere leaves nothing restored.
        done: list[tuple[Path, Path, int, str]] = []
        with ThreadPoolExecutor(RESTORE_FILES, thread_name_prefix="restore-file") as pool:
            futures = [pool.submit(self._restore_file, *job[1:], keep_cache) for job in jobs]
            error = None
            for fut in futures:
                try:
                    done.append(fut.result())
                except BaseException as exc:  # noqa: BLE001 - re-raised below, once all have ended
                    error = error or exc
        if error is not None:
            for tmp, *_rest in done:
                tmp.unlink(missing_ok=True)
            raise error
        for tmp, path, _cloned, _sha in done:
            os.replace(tmp, path)
        for folder in {path.parent for _tmp, path, _cloned, _sha in done}:
            fsync_dir(folder)
        return RestoreResult(snap.id, dest_dir, [job[0] for job in jobs], sum(r["size"] for r in rows),
                             time.monotonic() - began, sum(d[2] for d in done),
                             {job[0]: d[3] for job, d in zip(jobs, done)})

    def _restore_file(self, path: Path, row, segs, keep_cache: bool = False) -> tuple[Path, Path, int, str]:
        """Write one file to a temp name beside `path`, checked and fsynced: (temp, path, bytes
        cloned, SHA-256 of what was written)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.seedward-restore")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        digest = hashlib.sha256()
        cloned = 0
        behind = None  # the previous chunk's range: on disk and out of the cache before the next
        try:
            for (_piece, offset, length, cid), data in self._read_ahead(segs):
                digest.update(data)
                took_clone, took = self._copy_chunk(cid, fd, offset, length) if self.reflinks else (0, 0)
                cloned += took_clone
                if took < length:
                    pwrite_all(fd, memoryview(data)[took:], offset + took)
                start_writeback(fd, offset, length)
                if behind is not None:
                    write_behind(fd, *behind, drop=not keep_cache)
                behind = (offset, length)
            os.ftruncate(fd, row["size"])
            if row["sha256"] and digest.hexdigest() != row["sha256"]:
                raise StoreCorrupt(self.backend.where, f"restored {row['path']} does not match the snapshot's SHA-256")
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        return tmp, path, cloned, digest.hexdigest()

    def _read_ahead(self, segs, window: int = 4):
        """(seg, verified bytes) in order; a few chunks read and verified ahead on other threads
        (hashlib releases the GIL), at most `window` in memory."""
        segs = iter(segs)
        with ThreadPoolExecutor(2, thread_name_prefix="restore") as pool:
            pending = deque((seg, pool.submit(self.read_chunk, seg[3])) for seg in itertools.islice(segs, window))
            while pending:
                seg, fut = pending.popleft()
                nxt = next(segs, None)
                if nxt is not None:
                    pending.append((nxt, pool.submit(self.read_chunk, nxt[3])))
                try:
                    data = fut.result()
                except BaseException:
                    for _seg, other in pending:
                        other.cancel()
                    raise
                yield seg, data

    def _copy_chunk(self, cid: str, dst_fd: int, dst_offset: int, length: int) -> tuple[int, int]:
        """Put a chunk just read and verified into dst from its (immutable) pack by cloning it
        (reflinks). Returns (bytes cloned, bytes placed); the caller writes the rest from memory,
        which beats an in-kernel copy that would read the pack a second time."""
        entry = self.index.get(cid)
        src = self.backend.local_path(pack_name(entry.pack)) if entry else None
        if src is None:
            return 0, 0
        try:
            src_fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return 0, 0
        try:
            if reflink.clone_fd(src_fd, entry.offset, dst_fd, dst_offset, length):
                return length, length
            return 0, 0
        finally:
            os.close(src_fd)

    def heal(self, snapshot_id: str, save_path, bad_segments) -> HealResult:
        """Write back only the given (file_index, piece) segments from the snapshot, in place
        (pwrite, fsync). Every chunk is verified before it is written; a missing file is
        created and a file longer than the torrent says is cut to size."""
        began = time.monotonic()
        snap = self.get(snapshot_id)
        save_path = Path(save_path)
        chunks = self.chunk_map(snap.id)
        rows = {r["file_index"]: r for r in records.snapshot_files(self.catalog, snap.id)}
        wanted = sorted(set((int(f), int(p)) for f, p in bad_segments))
        for key in wanted:
            if key not in chunks:
                raise NotFound(f"snapshot {snap.id[:12]} has no segment for file {key[0]} piece {key[1]}")
        by_file: dict[int, list] = {}
        for fi, piece in wanted:
            by_file.setdefault(fi, []).append(piece)
        total, names = 0, []
        for fi, pieces in by_file.items():
            row = rows[fi]
            entry = FileEntry(fi, row["path"], row["size"], 0, False, None)
            path = resolve_payload_path(save_path, entry)
            total += self._heal_file(path, row, [(p, *chunks[(fi, p)]) for p in pieces])
            names.append(row["path"])
        return HealResult(snap.id, wanted, total, names, time.monotonic() - began)

    def _heal_file(self, path: Path, row, segs) -> int:
        batches, cur, size = [], [], 0
        for seg in segs:
            if cur and size + seg[2] > HEAL_BATCH_BYTES:
                batches.append(cur)
                cur, size = [], 0
            cur.append(seg)
            size += seg[2]
        if cur:
            batches.append(cur)
        written = 0
        fd = None
        try:
            for batch in batches:
                verified = [(offset, self.read_chunk(cid)) for _p, offset, _l, cid in batch]
                if fd is None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
                for offset, data in verified:
                    pwrite_all(fd, data, offset)
                    written += len(data)
            if fd is not None:
                if os.fstat(fd).st_size > row["size"]:
                    os.ftruncate(fd, row["size"])
                os.fsync(fd)
        finally:
            if fd is not None:
                os.close(fd)
        return written

    # -- maintenance -----------------------------------------------------------------------

    def forget(self, keep_last: int = 0, keep_hourly: int = 0, keep_daily: int = 0, keep_weekly: int = 0,
               keep_monthly: int = 0, keep_yearly: int = 0, *, dry_run: bool = False,
               torrent_id: str | None = None, snapshot_ids: list[str] | None = None,
               prune: bool = False) -> ForgetResult:
        """Remove snapshot records per restic's policy (see policy.py), per torrent, or exactly the
        given snapshots (ids or unique prefixes). Chunks stay until `prune`. All snapshots of one
        torrent hold the same bytes (each was verified against the torrent), so data is freed only
        when a torrent's last snapshot goes."""
        policy = KeepPolicy(keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly)
        if snapshot_ids:
            if not policy.empty():
                raise BadInput("forget", "give snapshot ids or a policy, not both")
            snaps = [self.get(sid) for sid in snapshot_ids]
            decisions: dict[str, Decision] = {}
            for snap in snaps:
                decisions.setdefault(snap.torrent_id, Decision()).remove.append(snap.id)
        else:
            if policy.empty():
                raise BadInput("forget", "no policy given (--keep-last/--keep-daily/...); refusing to remove"
                               " everything")
            groups: dict[str, list] = {}
            for snap in self.snapshots(torrent_id):
                groups.setdefault(snap.torrent_id, []).append((snap.id, datetime.fromisoformat(snap.created_at)))
            decisions = {tid: apply_policy(snaps, policy) for tid, snaps in groups.items()}
        removed = [sid for d in decisions.values() for sid in d.remove]
        if not dry_run and removed:
            with self.backend.lock(self.lock_timeout):
                # Catalog rows first: a crash then leaves orphan trees, which prune removes.
                records.delete_snapshots(self.catalog, removed)
                for sid in removed:
                    self.backend.delete(f"snapshots/{sid}.json")
        if prune and not dry_run:
            self.prune()
        return ForgetResult(decisions, removed, dry_run)

    def prune(self, *, dry_run: bool = False, max_unused: float = 0.05) -> PruneResult:
        """Delete chunks no snapshot uses: whole packs when all their chunks are unused, repacking
        packs with more than `max_unused` of their bytes unused. Also removes leftovers of crashed
        writes (staged packs, packs no index names, trees without a catalog record)."""
        out = PruneResult(dry_run=dry_run)
        with self.backend.lock(self.lock_timeout):
            self.index.reload()
            used = records.referenced_chunks(self.catalog)
            known = {r["id"] for r in records.list_snapshots(self.catalog)}
            for name in self.backend.list("snapshots"):
                if Path(name).stem not in known:
                    out.trees_deleted += 1
                    if not dry_run:
                        self.backend.delete(name)
            by_pack = self.index.packs()
            keep_entries: dict[str, list] = {}
            drop, repack = [], []
            for pack_id, entries in by_pack.items():
                live = [(cid, e) for cid, e in entries if cid in used]
                dead = sum(e.length for cid, e in entries if cid not in used)
                total = sum(e.length for _cid, e in entries)
                if not live:
                    drop.append(pack_id)
                elif dead and dead > max_unused * total:
                    repack.append((pack_id, live))
                else:
                    keep_entries[pack_id] = [[cid, e.offset, e.length, e.width] for cid, e in entries]
                out.chunks_removed += len(entries) - len(live)
                if dead and (not live or dead > max_unused * total):
                    out.bytes_freed += dead
            orphans = [n for n in self.backend.list("data") if Path(n).name not in by_pack]
            out.packs_deleted = len(drop) + len(orphans)
            out.packs_repacked = len(repack)
            if dry_run:
                return out
            if repack:
                writer = PackWriter(self.backend, self.pack_size)
                try:
                    for _pack_id, live in repack:
                        for cid, e in live:
                            writer.append(cid, e.width, self.read_chunk(cid))
                    for p in writer.finish():
                        keep_entries[p.pack_id] = p.entries
                except BaseException:
                    writer.discard()
                    raise
            old_files = list(self.index.files)
            if drop or repack:
                # The new full index is durable before anything it no longer names is deleted.
                self.index.write(keep_entries)
                for name in old_files:
                    self.backend.delete(name)
            for pack_id in drop + [p for p, _ in repack]:
                self.backend.delete(pack_name(pack_id))
            for name in orphans:
                self.backend.delete(name)
            for staged in self.backend.staging().iterdir():
                staged.unlink(missing_ok=True)
            self.index.reload()
        return out

    def scrub_packs(self, share_percent: float = 0.0, rate: float = 0.0) -> CheckResult:
        """Read back and verify every chunk of the packs no check has read yet, then of the least
        recently checked ones until `share_percent` of the store's bytes were read, under a read
        rate (bytes/s, 0: none). A first snapshot stores a verified file's bytes under the
        catalog's ids without hashing them again (trusted.py): this re-hashes them off the
        critical path, from the disk, and later finds rot in old packs (SnapRAID's scrub). A bad
        chunk marks every snapshot using it suspect (as a failed drill does) and is reported."""
        out = CheckResult()
        self.index.reload()
        packs = self.index.packs()
        checked = records.checked_packs(self.catalog)
        size = {p: sum(e.length for _cid, e in entries) for p, entries in packs.items()}
        todo = sorted(p for p in packs if p not in checked)
        budget = sum(size.values()) * share_percent / 100 - sum(size[p] for p in todo)
        for p in sorted((p for p in packs if p in checked), key=lambda p: (checked[p], p)):
            if budget <= 0:
                break
            todo.append(p)
            budget -= size[p]
        limiter = RateLimiter(rate)
        for pack_id in todo:
            out.packs += 1
            out.chunks += len(packs[pack_id])
            self._read_back(pack_id, packs[pack_id], out, limiter)
        return out

    def _read_back(self, pack_id: str, entries: list, out: CheckResult, limiter: RateLimiter | None = None) -> None:
        """Read and verify these chunks of one pack; record the pack as checked, and mark the
        snapshots using a bad chunk suspect (until a drill proves them)."""
        bad = []
        for cid, e in entries:
            try:
                self.read_chunk(cid)
                out.bytes_read += e.length
            except StoreCorrupt as exc:
                out.errors.append(str(exc))
                bad.append(cid)
            if limiter is not None:
                limiter.spend(e.length)
        records.record_pack_checks(self.catalog, {pack_id: not bad})
        if bad:
            self._mark_suspects(bad)

    def _mark_suspects(self, bad_chunks: list[str]) -> None:
        for snap in records.snapshots_using(self.catalog, bad_chunks):
            mark_suspect(self.catalog, snap["id"], snap["torrent_id"], "store-check",
                         f"{len(bad_chunks)} stored chunks do not match their ids (e.g. {bad_chunks[0]})")

    def check(self, read_data: bool = True) -> CheckResult:
        """Verify the store: every pack the index names exists and its trailer agrees, every chunk
        a snapshot uses is indexed, and (read_data) every chunk's bytes match its id."""
        out = CheckResult()
        self.index.reload()
        by_pack = self.index.packs()
        present = {Path(n).name: n for n in self.backend.list("data")}
        out.unreferenced_packs = sorted(set(present) - set(by_pack))
        for pack_id, entries in sorted(by_pack.items()):
            out.packs += 1
            if pack_id not in present:
                out.errors.append(f"pack {pack_id} is missing ({len(entries)} chunks, e.g. {entries[0][0]})")
                continue
            try:
                trailer = {c[0]: c[1:] for c in read_trailer(self.backend, present[pack_id],
                                                             self.backend.size(present[pack_id]))}
            except StoreCorrupt as exc:
                out.errors.append(str(exc))
                trailer = None
            out.chunks += len(entries)
            misplaced = {cid for cid, e in entries
                         if trailer is not None and trailer.get(cid) != [e.offset, e.length, e.width]}
            out.errors += [f"chunk {cid}: pack {pack_id} does not hold it where the index says"
                           for cid in sorted(misplaced)]
            if read_data:
                self._read_back(pack_id, [(cid, e) for cid, e in entries if cid not in misplaced], out)
        for snap in records.list_snapshots(self.catalog):
            missing = [c["chunk_id"] for c in records.snapshot_chunks(self.catalog, snap["id"])
                       if c["chunk_id"] not in self.index]
            if missing:
                out.errors.append(f"snapshot {snap['id'][:12]} uses {len(missing)} chunks the store lacks"
                                  f" (e.g. {missing[0]})")
        return out


def _contiguous(run: list) -> list:
    """(pack, pack offset, file offset, length) reservations -> (pack, pack offset, file offset,
    length, chunks) runs that are back to back in both the pack and the file."""
    out: list = []
    for pack, at, offset, length in run:
        if out:
            p, a, o, n, c = out[-1]
            if p is pack and a + n == at and o + n == offset:
                out[-1] = (p, a, o, n + length, c + 1)
                continue
        out.append((pack, at, offset, length, 1))
    return out


@dataclass
class _Stored:
    """What _store_files did: the scan (files read), trusted files (copied unhashed), bytes."""

    scan: object = None
    trusted: dict = field(default_factory=dict)
    identities: dict = field(default_factory=dict)  # file index -> identity before any copy
    new_bytes: int = 0
    cloned: int = 0
    trusted_bytes: int = 0


class CloneSources:
    """Payload files opened to clone (reflinks) or kernel-copy chunks into packs. Both take what
    the file holds now, not the bytes the scan hashed, so each file's identity and ctime are
    taken before the scan and compared after it: any write in between refuses the snapshot."""

    def __init__(self, save_path: Path, entries: dict[int, FileEntry]):
        self.paths = {i: resolve_payload_path(save_path, e) for i, e in entries.items()}
        self.before = {i: identity(p) for i, p in self.paths.items()}
        self.fds: dict[int, int | None] = {}
        self.copied: dict[int, int] = {}  # file index -> bytes cloned or copied from it
        self.cloned = 0
        self.lock = threading.Lock()

    def fd(self, file_index: int) -> int | None:
        with self.lock:
            if file_index not in self.fds:
                try:
                    fd = os.open(self.paths[file_index], os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    fd = None
                if fd is not None and self.before.get(file_index) != identity(self.paths[file_index]):
                    os.close(fd)
                    fd = None
                self.fds[file_index] = fd
            return self.fds[file_index]

    def used(self, file_index: int, cloned: int, copied: int) -> None:
        with self.lock:
            self.cloned += cloned
            self.copied[file_index] = self.copied.get(file_index, 0) + copied

    def changed(self) -> str | None:
        for i in self.copied:
            if identity(self.paths[i]) != self.before[i]:
                return str(self.paths[i])
        return None

    def close(self) -> None:
        for fd in self.fds.values():
            if fd is not None:
                os.close(fd)
        self.fds.clear()
