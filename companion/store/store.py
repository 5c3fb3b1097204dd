"""The snapshot store (restic's vocabulary): deduplicated content chunks in packs (file-relative,
independent of any torrent's pieces: content.py), snapshot records in the catalog. `Store` is the facade every caller uses; each verb lives in its own
module over the pack/index/backend layer:

  snapshot.py     take a snapshot (reuse, trusted copy, scan and store, record)
  restore.py      write a snapshot's files under a folder, verified
  repair.py       the store side of heal: find damaged segments, write back only those
  maintenance.py  forget, prune, scrub_packs, check
  content.py      content chunks (cutting, ids), segments.py: a torrent's segments read out of them
  results.py      what they return, and their errors
Reading (get, snapshots, latest, chunk_map, read_chunk, select_files, torrent_meta) is here.
"""

import json
from datetime import datetime, timezone
from pathlib import Path

from ..catalog import content as content_rows
from ..catalog import snapshots as records
from ..errors import BadInput, ConfigError, NotFound, StoreCorrupt
from ..scan import Scanner
from ..torrent import TorrentMeta, load_torrent
from . import maintenance, repair, restore, snapshot
from .backend import Backend, LocalBackend
from .chunk import chunk_root
from .index import Index
from .pack import pack_name
from .segments import SegmentReader
from .results import (REASONS, CheckResult, ForgetResult, HealResult, PruneResult, RestoreResult, Snapshot,
                      SnapshotRefused)
from .snapshot import VERSION

LAYOUTS = {1: "piece-aligned segments, id = SHA-256 merkle root of 16 KiB blocks",
           2: "file-relative content chunks (16 MiB), id = SHA-256 merkle root of 16 KiB blocks;"
              " version-1 snapshots keep piece-aligned chunks"}

__all__ = ["REASONS", "CheckResult", "ForgetResult", "HealResult", "PruneResult", "RestoreResult", "Snapshot",
           "SnapshotRefused", "Store"]


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Store:
    """Open with `Store.open(path, catalog)`. Thread-safe; writers take the store lock."""

    def __init__(self, backend: Backend, catalog, *, pack_size: int = 64 * 1024 * 1024, clock=_utc_now,
                 scanner: Scanner | None = None, lock_timeout: float = 600.0, reflinks: bool = True,
                 copy_from_payload: bool = True, trust_catalog: bool = True, fs_snapshots: str = "off"):
        self.backend = backend
        self.catalog = catalog
        self.pack_size = pack_size
        self.clock = clock
        self.scanner = scanner or Scanner()
        self.lock_timeout = lock_timeout
        self.reflinks = reflinks  # restores clone chunks out of packs
        self.copy_from_payload = copy_from_payload  # snapshots clone or kernel-copy from the payload
        self.trust_catalog = trust_catalog  # verified, unchanged files are stored unhashed (trusted.py)
        self.fs_snapshots = fs_snapshots  # off | preflight | always: read-only btrfs snapshots (fssnap.py)
        self.index = Index(backend)
        self.segments = SegmentReader(self)

    @classmethod
    def open(cls, path, catalog, *, backend: Backend | None = None, **kwargs) -> "Store":
        """Open (creating it when absent) the store in folder `path`, or on `backend`."""
        backend = backend or LocalBackend(Path(path))
        store = cls(backend, catalog, **kwargs)
        try:
            try:
                store._init_layout()
            except OSError as exc:  # a local folder (a remote's failures are StoreUnreachable)
                raise ConfigError(path or backend.where, f"cannot use it as the store: {exc.strerror or exc}") from exc
            store.index.reload()
        except BaseException:
            store.close()  # a remote's rclone rcd ends with it
            raise
        return store

    @classmethod
    def for_home(cls, home, settings, catalog, **kwargs) -> "Store":
        """The store the settings name: [store] remote (object storage, shared by hosts), else the folder."""
        backend = None
        if settings.store.remote:
            from .remote import remote_backend

            backend = remote_backend(home, settings)
        path = Path(settings.store.path).expanduser() if settings.store.path else home.store
        kwargs.setdefault("fs_snapshots", settings.store.fs_snapshots if backend is None else "off")
        return cls.open(None if backend else path, catalog, backend=backend,
                        pack_size=settings.store.pack_size_mb * 1024 * 1024,
                        trust_catalog=settings.store.trust_catalog, **kwargs)

    def close(self) -> None:
        self.backend.close()

    def _init_layout(self) -> None:
        if not self.backend.exists("config.json"):
            doc = {"version": VERSION, "chunks": LAYOUTS[VERSION], "created_at": self.clock().isoformat()}
            self.backend.put_bytes("config.json", json.dumps(doc, indent=2).encode())
        try:
            doc = json.loads(self.backend.get_bytes("config.json"))
        except ValueError as exc:
            raise StoreCorrupt(self.backend.where, "config.json is unreadable") from exc
        if doc.get("version") not in LAYOUTS:
            raise StoreCorrupt(self.backend.where, f"unsupported store version {doc.get('version')!r}")
        if doc["version"] < VERSION:
            # A store of piece-aligned chunks: its snapshots are read as they are; new ones use content chunks.
            doc.update(version=VERSION, chunks=LAYOUTS[VERSION], upgraded_at=self.clock().isoformat())
            self.backend.put_bytes("config.json", json.dumps(doc, indent=2).encode())

    # -- the verbs (each in its own module) -----------------------------------------------

    def snapshot(self, meta: TorrentMeta, save_path, reason: str, job_id: str | int | None = None,
                 files: set[int] | list[int] | None = None, *, trust_catalog: bool | None = None,
                 progress=None) -> Snapshot:
        """Snapshot the payload (or the given file indices); see snapshot.take. progress(done, total):
        bytes of the wanted files handled (reused, copied or read)."""
        return snapshot.take(self, meta, save_path, reason, job_id, files, trust_catalog=trust_catalog,
                             progress=progress)

    def put_chunks(self, chunks) -> int:
        """Store (chunk id, width, bytes) the store lacks, under the lock; see snapshot.put_chunks."""
        return snapshot.put_chunks(self, chunks)

    def restore(self, snapshot_id: str, dest_dir, files=None, paths: dict[int, str] | None = None,
                keep_cache: bool = False, progress=None) -> RestoreResult:
        """Write the snapshot's files under dest_dir, verified; see restore.restore. progress(n): n
        more bytes written (from the writing threads)."""
        return restore.restore(self, snapshot_id, dest_dir, files, paths, keep_cache, progress)

    def heal(self, snapshot_id: str, save_path, bad_segments) -> HealResult:
        """Write back only the given (file_index, piece) segments, verified; see repair.write_segments."""
        return repair.write_segments(self, snapshot_id, save_path, bad_segments)

    def forget(self, keep_last: int = 0, keep_hourly: int = 0, keep_daily: int = 0, keep_weekly: int = 0,
               keep_monthly: int = 0, keep_yearly: int = 0, *, dry_run: bool = False,
               torrent_id: str | None = None, snapshot_ids: list[str] | None = None,
               prune: bool = False) -> ForgetResult:
        """Remove snapshot records per a keep policy or by id; see maintenance.forget."""
        return maintenance.forget(self, keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly,
                                  dry_run=dry_run, torrent_id=torrent_id, snapshot_ids=snapshot_ids, prune=prune)

    def prune(self, *, dry_run: bool = False, max_unused: float = 0.05) -> PruneResult:
        """Delete (and repack) chunks no snapshot uses; see maintenance.prune."""
        return maintenance.prune(self, dry_run=dry_run, max_unused=max_unused)

    def scrub_packs(self, share_percent: float = 0.0, rate: float = 0.0, progress=None) -> CheckResult:
        """Read back new, then least recently checked packs; see maintenance.scrub_packs."""
        return maintenance.scrub_packs(self, share_percent, rate, progress)

    def check(self, read_data: bool = True, rate: float = 0.0, progress=None) -> CheckResult:
        """Verify packs, index, snapshot records (and chunk data, at most `rate` bytes/s); see
        maintenance.check."""
        return maintenance.check(self, read_data, rate, progress)

    def repair_packs(self, *, dry_run: bool = False):
        """Rewrite damaged packs, bad chunks from payloads that still verify; see repair_packs.py."""
        from .repair_packs import repair_packs

        return repair_packs(self, dry_run=dry_run)

    # -- reading -------------------------------------------------------------------------------

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
        """The chunk's bytes, verified against its id: a stored chunk, or a snapshot's segment (by its
        id, cut out of the content chunks holding it: segments.py). Raises StoreCorrupt naming the
        chunk (and pack)."""
        entry = self.index.get(chunk_id)
        if entry is None:
            self.index.reload()
            entry = self.index.get(chunk_id)
        if entry is None:
            data = self.segments.read(chunk_id)
            if data is not None:
                return data
            raise StoreCorrupt(self.backend.where, f"chunk {chunk_id} is not in the index")
        return self.read_indexed(chunk_id)

    def read_indexed(self, chunk_id: str, verify: bool = True) -> bytes:
        """A stored chunk's bytes, verified against its id (verify=False: as stored, for a caller that
        proves what it cuts out of them another way)."""
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
            return self.read_indexed(chunk_id, verify)
        if verify and chunk_root(data, entry.width).hex() != chunk_id:
            raise StoreCorrupt(self.backend.where,
                               f"chunk {chunk_id} in pack {entry.pack} does not match its id (corrupt data)")
        return data

    def locate(self, chunk_id: str) -> list[tuple[str, int, int]]:
        """Where a stored chunk's bytes, or a content snapshot's segment's, are: [(pack id, offset in
        the pack, length)] in order ([] when nowhere); for tests and tools that inspect packs."""
        entry = self.index.get(chunk_id)
        if entry is not None:
            return [(entry.pack, entry.offset, entry.length)]
        for sha256, offset, length, _w in self.segments._where(chunk_id):
            out, end = [], offset + length
            for r in content_rows.chunks_in(self.catalog, sha256, offset, length):
                e = self.index.get(r["chunk_id"])
                if e is None:
                    break
                lo, hi = max(offset, r["offset"]), min(end, r["offset"] + r["length"])
                out.append((e.pack, e.offset + lo - r["offset"], hi - lo))
            if sum(n for _p, _o, n in out) == length:
                return out
        return []

    def file_content(self, snapshot_id: str, file_index: int) -> list[tuple[int, int, str]] | None:
        """(offset, length, content chunk id) of a content snapshot's file, None for a snapshot of
        piece-aligned chunks."""
        row = records.get_snapshot(self.catalog, snapshot_id)
        if row is None or row["layout"] != content_rows.CONTENT:
            return None
        sha256 = content_rows.file_sha256(self.catalog, snapshot_id, file_index)
        if not sha256:
            return []
        return [(r["offset"], r["length"], r["chunk_id"]) for r in content_rows.chunks_of(self.catalog, sha256)]

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
