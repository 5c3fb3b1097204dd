"""Taking a snapshot: reuse unchanged files, copy trusted ones, scan and store the rest, record it.

Write order (each step atomic: temp, fsync, rename): packs, then the index file naming them,
then the snapshot tree, then the catalog rows. A crash at any point leaves at most data
nothing refers to (prune removes it), never a snapshot that claims data the store lacks.
"""

import dataclasses
import hashlib
import itertools
import json
import logging
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path

from ..catalog import content as content_rows
from ..catalog import snapshots as records
from ..catalog.chunks import bad_chunks, forget_bad_copies
from ..errors import BadInput, disk_full_as
from ..scan import OK, check_save_path
from ..torrent import FileEntry, TorrentMeta
from . import content, fssnap
from .maintenance import clear_whole_suspects
from .clone import CloneSources, contiguous, pread_all
from .pack import PackWriter
from .results import REASONS, ChunkCollision, Snapshot, SnapshotRefused
from .reuse import derived_ids, held_content, previous_files, unchanged
from .trusted import Trusted, trusted_files

log = logging.getLogger(__name__)

VERSION = 2  # of the snapshot tree and the store's layout (store.py); 1: piece-aligned chunks, still read
COPY_THREADS = 2  # trusted files are kernel-copied on both cores
RUN_CHUNKS = 16  # chunks reserved (and cloned or copied) at once


def take(store, meta: TorrentMeta, save_path, reason: str, job_id: str | int | None = None,
         files: set[int] | list[int] | None = None, *, trust_catalog: bool | None = None,
         progress=None) -> Snapshot:
    """Snapshot the payload (or the given file indices). Files whose size, mtime and inode
    match the previous snapshot are taken from it without reading them; files the catalog
    verified and nobody changed since are copied under the catalog's chunk ids (trusted.py);
    the others are read once, verified against the torrent and their new chunks stored.
    Raises SnapshotRefused when the payload does not match its torrent: nothing is recorded
    then. files=None means the cataloged files (all, unless some are skipped in qBittorrent).
    progress(done, total): bytes of the wanted files handled (reused, copied or read)."""
    if reason not in REASONS:
        raise BadInput("reason", f"{reason!r} is not one of {', '.join(REASONS)}")
    save_path = check_save_path(Path(save_path))
    by_index = {e.index: e for e in meta.real_files}
    if files is None:
        cataloged = {r["file_index"] for r in store.catalog.get_files(meta.id)}
        if cataloged and not set(by_index) <= cataloged:
            files = cataloged & set(by_index)  # a partly downloaded torrent: what it seeds
    if files is not None:
        unknown = sorted(set(files) - set(by_index))
        if unknown:
            raise BadInput(meta.name, f"no file with index {unknown[0]} in the torrent")
    wanted = [e for e in meta.real_files if files is None or e.index in files]
    trust = store.trust_catalog if trust_catalog is None else trust_catalog
    with store.backend.lock(store.lock_timeout, exclusive=False):  # hosts add packs at once (random names)
        if fssnap.wanted(store, reason):  # a read-only btrfs snapshot where the payload is on btrfs
            taken = fssnap.take(store, meta, save_path, reason, job_id, wanted)
            if taken is not None:
                return taken
        store.index.reload()
        stale = stale_copies(store)
        previous = previous_files(store, meta.id)
        reused, changed = {}, []
        for entry in wanted:
            prev = previous.get(entry.index)
            if prev is not None and unchanged(store, save_path, entry, prev, stale):
                reused[entry.index] = prev
            else:
                changed.append(entry)
        stored = _Stored()
        meter = _Meter(progress, sum(e.size for e in wanted))
        meter.add(sum(e.size for e in wanted if e.index in reused))  # unchanged since the last: stat calls only
        # A full disk: one DiskFull naming the store and what this snapshot writes at most (its staged
        # packs are gone; nothing is recorded).
        with disk_full_as(store.backend.where, lambda: sum(e.size for e in changed)):
            if changed:
                stored = _store_files(store, meta, save_path, changed, trust, stale, meter)
            return _record(store, meta, save_path, reason, job_id, wanted, reused, stored)


def put_chunks(store, chunks) -> int:
    """Store verified chunks given as (chunk id, tree width, bytes) that the store lacks (the
    zones tier keeps parts of files this way). Returns the bytes added."""
    needed = (lambda: sum(len(c[2]) for c in chunks)) if isinstance(chunks, (list, tuple)) else None
    with disk_full_as(store.backend.where, needed), store.backend.lock(store.lock_timeout, exclusive=False):
        store.index.reload()
        stale = stale_copies(store)
        writer = PackWriter(store.backend, store.pack_size)
        added: dict[str, list] = {}
        new = 0
        try:
            for cid, width, data in chunks:
                with writer.lock:
                    room = _claim(store, writer, added, cid, len(data), width, stale)
                if room is not None:
                    writer.write(*room, data)
                    new += len(data)
            packs = writer.finish()
        except BaseException:
            writer.discard()
            raise
        replaced = {cid: stale[cid] for cid in added if cid in stale}
        store.index.write({p.pack_id: p.entries for p in packs}, replaces=replaced)
        if replaced:
            forget_bad_copies(store.catalog, list(replaced.items()))
        return new


def stale_copies(store) -> dict[str, str]:
    """chunk id -> pack, for the indexed copies a check or scrub found bad: never reused; a
    snapshot that needs one stores the chunk again from the verified payload."""
    out = {}
    for cid, packs in bad_chunks(store.catalog).items():
        entry = store.index.get(cid)
        if entry is not None and entry.pack in packs:
            out[cid] = entry.pack
    return out


def _claim(store, writer: PackWriter, added: dict, cid: str, length: int, width: int, stale: dict):
    """Room in a pack for a chunk not stored yet (or whose stored copy is bad), else None; the
    caller holds writer.lock."""
    known = None if cid in stale else store.index.get(cid)
    shape = (known.length, known.width) if known else (tuple(added[cid][2:]) if cid in added else None)
    if shape is not None:
        if shape != (length, width):
            raise ChunkCollision(cid, "same id as a stored chunk of another shape; not stored")
        return None
    pack, offset = writer.reserve(cid, width, length)
    added[cid] = [pack.pack_id, offset, length, width]
    return pack, offset


def _store_files(store, meta: TorrentMeta, save_path: Path, entries: list[FileEntry], trust: bool,
                 stale: dict, meter: "_Meter | None" = None) -> "_Stored":
    """Store each file as content chunks. A verified, unchanged file (trusted.py) whose content the
    store already holds costs nothing; its chunks' ids follow from the catalog's segment roots where
    its pieces are file-aligned (then its bytes are cloned or kernel-copied unhashed), else they are
    hashed from the bytes stored. Other files are scanned (verified against the torrent) and their
    chunks gathered from the scan's segments as they are read (one read)."""
    meter = meter or _Meter(None, 0)
    writer = PackWriter(store.backend, store.pack_size)
    added: dict[str, list] = {}
    out = _Stored()
    sources = CloneSources(save_path, {e.index: e for e in entries})
    out.identities = sources.before
    out.trusted = trusted_files(store.catalog, meta, save_path, entries, sources.before) if trust else {}
    to_scan = {e.index for e in entries if e.index not in out.trusted}
    for t in out.trusted.values():
        held = held_content(store, t.sha256, t.entry.size, stale)
        if held is not None or t.entry.size == 0:
            out.content[t.entry.index] = held or []

    def place(file_index: int, offset: int, cid: str, width: int, data) -> None:
        """A chunk whose bytes are in memory: clone or copy it from the payload where possible."""
        with writer.lock:
            room = _claim(store, writer, added, cid, len(data), width, stale)
            if room is None:
                return
            out.new_bytes += len(data)
        source = sources.fd(file_index) if store.copy_from_payload else None
        cloned, copied = writer.write(*room, data, (source, offset) if source is not None else None)
        if copied:
            sources.used(file_index, cloned, copied)

    assembler = content.Assembler(meta, [e for e in entries if e.index in to_scan], place)

    def sink(file_index, seg, data):
        assembler.add(file_index, seg.offset, data, seg.root)

    def copy_trusted(t: Trusted):
        if t.entry.index in out.content:
            meter.add(t.entry.size)
            return  # the store holds this content already
        fd = sources.fd(t.entry.index)
        if fd is None:
            raise SnapshotRefused(t.path, "changed or vanished as it was being snapshotted; no snapshot stored"
                                  " (try again)")
        size, w = t.entry.size, content.width(t.entry.size)
        spans = content.ranges(size)
        ids = derived_ids(meta, t)
        if ids is None:  # not file-aligned: hash each chunk from the bytes stored
            chunks = []
            for offset, length in spans:
                data = pread_all(fd, offset, length, t.path)
                cid = content.leaf_root(data, w).hex()
                chunks.append((offset, length, cid))
                place(t.entry.index, offset, cid, w, data)
            out.content[t.entry.index] = chunks
            out.hashed_bytes += size
            meter.add(size)
            return
        out.content[t.entry.index] = [(o, n, cid) for (o, n), cid in zip(spans, ids)]
        pending = iter(out.content[t.entry.index])
        while True:
            # Reserve a run of chunks at once: consecutive chunks then sit back to back in the
            # pack as in the file, and one clone or copy call moves the whole run.
            run = []
            with writer.lock:
                for offset, length, cid in itertools.islice(pending, RUN_CHUNKS):
                    room = _claim(store, writer, added, cid, length, w, stale)
                    if room is not None:
                        out.new_bytes += length
                        run.append((*room, offset, length))
            if not run:
                break
            for pack, at, offset, length, count in contiguous(run):
                cloned = writer.copy(pack, at, length, fd, offset, t.path, kernel=store.copy_from_payload,
                                     chunks=count)
                sources.used(t.entry.index, cloned, length)
        meter.add(t.entry.size)

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
            result = store.scanner.full_scan(scan_meta, save_path, chunk_roots=True, sink=sink, only_files=to_scan,
                                             progress=meter.scanned)
            result.meta = meta
            out.scan = result
            if not result.ok:
                bad = [f.entry.path for f in result.files if f.status != OK]
                raise SnapshotRefused(save_path, f"{meta.name}: payload does not match its torrent "
                                      f"({len(result.bad_pieces)} bad pieces; {', '.join(bad[:3]) or '-'});"
                                      " no snapshot stored")
            for fs in result.files:
                got = assembler.file_chunks(fs.entry.index)
                if [(o, n) for o, n, _c in got] != content.ranges(fs.entry.size):
                    raise SnapshotRefused(fs.path, "the scan did not hand over every byte of it; no snapshot stored")
                out.content[fs.entry.index] = got
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
    replaced = {cid: stale[cid] for cid in added if cid in stale}
    store.index.write({p.pack_id: p.entries for p in packs}, replaces=replaced)
    if replaced:
        forget_bad_copies(store.catalog, list(replaced.items()))
        log.info("%s: stored %d chunks again whose stored copies were bad", meta.name, len(replaced))
        clear_whole_suspects(store, replaced)
    out.cloned = sources.cloned
    return out


class _Meter:
    """progress(done, total) from the copy threads and the scan (thread-safe); None: silent."""

    def __init__(self, progress, total: int):
        self.progress, self.total, self.done, self.read = progress, total, 0, 0
        self.lock = threading.Lock()

    def add(self, n: int) -> None:
        with self.lock:
            self.done += n
            self._report()

    def scanned(self, done: int, _total: int) -> None:
        with self.lock:
            self.read = done
            self._report()

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(min(self.done + self.read, self.total), self.total)


def _record(store, meta, save_path, reason, job_id, wanted, reused, stored: "_Stored") -> Snapshot:
    scan = stored.scan
    scanned = {fs.entry.index: fs for fs in scan.files} if scan else {}
    file_rows, chunk_rows, files_content = [], [], {}
    for entry in wanted:
        if entry.index in reused:
            row, chunks = reused[entry.index]
            file_rows.append({k: row[k] for k in ("file_index", "path", "size", "mtime_ns", "inode", "device",
                                                   "sha256")})
            chunk_rows += [(c["file_index"], c["piece"], c["offset"], c["length"], c["chunk_id"], c["xxh3"])
                           for c in chunks]
            files_content[entry.index] = held_content(store, row["sha256"], entry.size, {}) or []
        elif entry.index in stored.trusted:
            t = stored.trusted[entry.index]
            dev, ino, _size, mtime, _ctime = stored.identities[entry.index]
            file_rows.append({"file_index": entry.index, "path": entry.path, "size": entry.size,
                              "mtime_ns": mtime, "inode": ino, "device": dev, "sha256": t.sha256})
            chunk_rows += [(entry.index, *seg) for seg in t.segments]
            files_content[entry.index] = stored.content.get(entry.index, [])
        else:
            fs = scanned[entry.index]
            file_rows.append({"file_index": entry.index, "path": entry.path, "size": entry.size,
                              "mtime_ns": fs.stat.mtime_ns, "inode": fs.stat.inode, "device": fs.stat.device,
                              "sha256": fs.sha256})
            chunk_rows += [(entry.index, s.piece, s.offset, s.length, s.root.hex(), s.xxh3) for s in fs.segments]
            files_content[entry.index] = stored.content.get(entry.index, [])
        # A BEP 47 link entry is recorded as its target (what readlink() must say), never as bytes.
        file_rows[-1]["link"] = entry.link_target
    per_file: dict[int, list] = {}
    for c in chunk_rows:
        per_file.setdefault(c[0], []).append(list(c[1:]))
    created = store.clock().astimezone(timezone.utc).isoformat(timespec="milliseconds")
    tree = {
        "version": VERSION, "torrent_id": meta.id, "name": meta.name, "created_at": created, "reason": reason,
        "job_id": job_id, "save_path": str(save_path), "nonce": secrets.token_hex(8),
        "files": [dict(f, chunks=per_file.get(f["file_index"], []),
                       content=[list(c) for c in files_content.get(f["file_index"], [])]) for f in file_rows],
    }
    body = json.dumps(tree, separators=(",", ":")).encode()
    sid = hashlib.sha256(body).hexdigest()
    tree_name = f"snapshots/{sid}.json"
    torrent_name = f"torrents/{meta.id}.torrent"
    if not store.backend.exists(torrent_name):
        store.backend.put_bytes(torrent_name, meta.raw)
    store.backend.put_bytes(tree_name, body)
    if scan is not None and len(scan.files) == len(meta.real_files):
        # A full pass over a good payload is also the catalog's baseline: one read, both records.
        store.catalog.record_scan(scan, reason=f"snapshot:{reason}", save_path=str(save_path))
    elif store.catalog.get_torrent(meta.id) is None:
        store.catalog.upsert_torrent(meta, save_path=str(save_path))
    # The content rows name only chunks the index (written above) holds; the snapshot row comes last.
    content_rows.add(store.catalog, [(f["sha256"], o, n, cid) for f in file_rows if f["sha256"]
                                     for o, n, cid in files_content.get(f["file_index"], [])])
    row = {"id": sid, "torrent_id": meta.id, "name": meta.name, "created_at": created, "reason": reason,
           "job_id": job_id, "bytes": sum(f["size"] for f in file_rows), "new_bytes": stored.new_bytes,
           "files": len(file_rows), "save_path": str(save_path), "tree": tree_name,
           "cloned_bytes": stored.cloned, "trusted_bytes": stored.trusted_bytes, "layout": content_rows.CONTENT}
    records.add_snapshot(store.catalog, row, file_rows, chunk_rows)
    log.info("%s: snapshot %s (%d bytes, %d new, %d trusted)", meta.name, sid[:12], row["bytes"],
             stored.new_bytes, stored.trusted_bytes)
    return Snapshot.from_row(row)


@dataclass
class _Stored:
    """What _store_files did: the scan (files read), trusted files (copied unhashed), bytes."""

    scan: object = None
    trusted: dict = field(default_factory=dict)
    identities: dict = field(default_factory=dict)  # file index -> identity before any copy
    new_bytes: int = 0
    cloned: int = 0
    trusted_bytes: int = 0
    hashed_bytes: int = 0  # of trusted_bytes, hashed by the store (not file-aligned: no ids to derive)
    content: dict = field(default_factory=dict)  # file index -> [(offset, length, content chunk id)]
