"""Store maintenance: forget (restic's keep policy), prune (drop and repack unused chunks), and the
read-backs (scrub_packs: new and least recently checked packs; check: everything)."""

import os
import shutil
import time
from datetime import datetime
from pathlib import Path

from ..catalog import content as content_rows
from ..catalog.parity import objects as parity_objects
from ..catalog import snapshots as records
from ..catalog.chunks import add_bad_chunks, bad_chunks
from ..catalog.drills import clear_suspect, mark_suspect, suspect_snapshots
from ..errors import BadInput, StoreCorrupt
from ..scan import RateLimiter
from . import fssnap
from .pack import PackWriter, pack_name, read_trailer
from .policy import Decision, KeepPolicy, apply_policy
from .results import CheckResult, ForgetResult, PruneResult


def forget(store, keep_last: int = 0, keep_hourly: int = 0, keep_daily: int = 0, keep_weekly: int = 0,
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
        snaps = [store.get(sid) for sid in snapshot_ids]
        decisions: dict[str, Decision] = {}
        for snap in snaps:
            decisions.setdefault(snap.torrent_id, Decision()).remove.append(snap.id)
    else:
        if policy.empty():
            raise BadInput("forget", "no policy given (--keep-last/--keep-daily/...); refusing to remove"
                           " everything")
        groups: dict[str, list] = {}
        for snap in store.snapshots(torrent_id):
            groups.setdefault(snap.torrent_id, []).append((snap.id, datetime.fromisoformat(snap.created_at)))
        decisions = {tid: apply_policy(snaps, policy) for tid, snaps in groups.items()}
    removed = [sid for d in decisions.values() for sid in d.remove]
    if not dry_run and removed:
        with store.backend.lock(store.lock_timeout):
            # Catalog rows first: a crash then leaves orphan trees, which prune removes.
            records.delete_snapshots(store.catalog, removed)
            for sid in removed:
                store.backend.delete(f"snapshots/{sid}.json")
    if prune and not dry_run:
        store.prune()
    return ForgetResult(decisions, removed, dry_run)


def prune(store, *, dry_run: bool = False, max_unused: float = 0.05) -> PruneResult:
    """Delete chunks no snapshot uses: whole packs when all their chunks are unused, repacking
    packs with more than `max_unused` of their bytes unused. Also removes leftovers of crashed
    writes (staged packs, packs no index names, trees without a catalog record)."""
    out = PruneResult(dry_run=dry_run)
    with store.backend.lock(store.lock_timeout):
        store.index.reload()
        if not dry_run:
            content_rows.drop_unreferenced(store.catalog)  # contents no kept snapshot holds
        used = records.referenced_chunks(store.catalog)
        known = {r["id"] for r in records.list_snapshots(store.catalog)}
        for name in store.backend.list("snapshots"):
            if Path(name).stem not in known:
                out.trees_deleted += 1
                if not dry_run:
                    store.backend.delete(name)
        by_pack = store.index.packs()
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
        orphans = [n for n in store.backend.list("data") if Path(n).name not in by_pack]
        kept_parity = parity_objects(store.catalog)  # the ladder's PAR2 files: leftovers of a crashed write go
        stray = [n for n in store.backend.list("parity") if n not in kept_parity]
        out.packs_deleted = len(drop) + len(orphans)
        out.packs_repacked = len(repack)
        if dry_run:
            return out
        if repack:
            writer = PackWriter(store.backend, store.pack_size)
            try:
                for _pack_id, live in repack:
                    for cid, e in live:
                        writer.append(cid, e.width, store.read_chunk(cid))
                for p in writer.finish():
                    keep_entries[p.pack_id] = p.entries
            except BaseException:
                writer.discard()
                raise
        old_files = list(store.index.files)
        if drop or repack:
            # The new full index is durable before anything it no longer names is deleted.
            store.index.write(keep_entries)
            for name in old_files:
                store.backend.delete(name)
        for pack_id in drop + [p for p, _ in repack]:
            store.backend.delete(pack_name(pack_id))
        for name in orphans + stray:
            store.backend.delete(name)
        for staged in store.backend.staging().iterdir():
            if staged.is_dir():  # a parity job's folder (it stages without the lock): a day old, it crashed
                if time.time() - staged.stat().st_mtime > 86400:
                    shutil.rmtree(staged, ignore_errors=True)
            else:
                staged.unlink(missing_ok=True)
        fssnap.prune(store)  # read-only filesystem snapshots no snapshot uses any more
        store.index.reload()
    return out


def scrub_packs(store, share_percent: float = 0.0, rate: float = 0.0, progress=None) -> CheckResult:
    """Read back and verify every chunk of the packs no check has read yet, then of the least
    recently checked ones until `share_percent` of the store's bytes were read, under a read
    rate (bytes/s, 0: none). A first snapshot stores a verified file's bytes under the
    catalog's ids without hashing them again (trusted.py): this re-hashes them off the
    critical path, from the disk, and later finds rot in old packs (SnapRAID's scrub). A bad
    chunk marks every snapshot using it suspect (as a failed drill does) and is reported."""
    out = CheckResult()
    store.index.reload()
    packs = store.index.packs()
    checked = records.checked_packs(store.catalog)
    size = {p: sum(e.length for _cid, e in entries) for p, entries in packs.items()}
    todo = sorted(p for p in packs if p not in checked)
    budget = sum(size.values()) * share_percent / 100 - sum(size[p] for p in todo)
    for p in sorted((p for p in packs if p in checked), key=lambda p: (checked[p], p)):
        if budget <= 0:
            break
        todo.append(p)
        budget -= size[p]
    limiter = RateLimiter(rate)
    total = sum(size[p] for p in todo)
    for pack_id in todo:
        out.packs += 1
        out.chunks += len(packs[pack_id])
        _read_back(store, pack_id, packs[pack_id], out, limiter)
        if progress is not None:
            progress(out.bytes_read, total)
    return out


def _read_back(store, pack_id: str, entries: list, out: CheckResult, limiter: RateLimiter | None = None) -> None:
    """Read and verify these chunks of one pack; record the pack as checked, and mark the
    snapshots using a bad chunk suspect (until a drill proves them)."""
    bad = []
    for cid, e in entries:
        try:
            store.read_chunk(cid)
            out.bytes_read += e.length
        except StoreCorrupt as exc:
            out.errors.append(str(exc))
            out.bad_copies.append([pack_id, cid])
            bad.append(cid)
        if limiter is not None:
            limiter.spend(e.length)
    records.record_pack_checks(store.catalog, {pack_id: not bad})
    if bad:
        add_bad_chunks(store.catalog, [(cid, pack_id, "does not match its id") for cid in bad])
        mark_suspects(store, bad)


def snapshots_using(store, chunks) -> list:
    """The snapshots using any of these chunks: as segments (piece-aligned snapshots) or through
    their files' content chunks."""
    found = {s["id"]: s for s in records.snapshots_using(store.catalog, chunks)}
    found.update({s["id"]: s for s in content_rows.snapshots_using(store.catalog, chunks)})
    return list(found.values())


def snapshot_chunk_ids(store, snapshot_id: str) -> set[str]:
    """The stored chunks a snapshot needs: its files' content chunks, or its segments (older layout);
    none for a read-only filesystem snapshot's."""
    layout = content_rows.layout(store.catalog, snapshot_id)
    if layout == fssnap.LAYOUT:
        return set()
    if layout == content_rows.CONTENT:
        out = set()
        for f in records.snapshot_files(store.catalog, snapshot_id):
            if f["sha256"] and f["size"]:
                out.update(r["chunk_id"] for r in content_rows.chunks_of(store.catalog, f["sha256"]))
        return out
    return {c["chunk_id"] for c in records.snapshot_chunks(store.catalog, snapshot_id)}


def missing_content(store, snapshot_id: str) -> list[str]:
    """What a content snapshot's files lack: a file whose content chunks do not cover it whole."""
    from .content import ranges

    out = []
    for f in records.snapshot_files(store.catalog, snapshot_id):
        if not f["size"]:
            continue
        got = [(r["offset"], r["length"]) for r in content_rows.chunks_of(store.catalog, f["sha256"] or "")]
        if got != ranges(f["size"]):
            out.append(f["path"])
    return out


def mark_suspects(store, chunks: list[str], why: str = "stored chunks do not match their ids") -> None:
    for snap in snapshots_using(store, chunks):
        mark_suspect(store.catalog, snap["id"], snap["torrent_id"], "store-check",
                     f"{len(chunks)} {why} (e.g. {chunks[0]}); `seedward check-store --repair` rewrites them"
                     " from payloads that still verify")


def clear_whole_suspects(store, chunks) -> list[str]:
    """Clear the suspect mark of the snapshots using any of `chunks` (just stored again or
    repaired) that now have every chunk indexed and none known bad. Returns their ids."""
    store.index.reload()
    bad = bad_chunks(store.catalog)
    touched = {s["id"] for s in snapshots_using(store, list(chunks))}
    cleared = []
    for mark in suspect_snapshots(store.catalog):
        sid = mark["snapshot_id"]
        if sid not in touched and mark["drill_id"] != "store-check":
            continue  # a failed drill for another reason: only a passing drill clears it
        used = snapshot_chunk_ids(store, sid)
        whole = not missing_content(store, sid) and all(cid in store.index and store.index.get(cid).pack not in bad.get(cid, ()) for cid in used)
        if whole:
            clear_suspect(store.catalog, sid)
            cleared.append(sid)
    return cleared


def check(store, read_data: bool = True, rate: float = 0.0, progress=None) -> CheckResult:
    """Verify the store: every pack the index names exists and its trailer agrees, every chunk
    a snapshot uses is indexed, and (read_data) every chunk's bytes match its id, read at most
    `rate` bytes/s (0: no limit). progress(done, total): bytes read back so far."""
    out = CheckResult()
    store.index.reload()
    by_pack = store.index.packs()
    limiter = RateLimiter(rate) if rate else None
    total = sum(e.length for entries in by_pack.values() for _cid, e in entries) if read_data else 0
    present = {Path(n).name: n for n in store.backend.list("data")}
    out.unreferenced_packs = sorted(set(present) - set(by_pack))
    for pack_id, entries in sorted(by_pack.items()):
        out.packs += 1
        if pack_id not in present:
            out.errors.append(f"pack {pack_id} is missing ({len(entries)} chunks, e.g. {entries[0][0]})")
            out.bad_copies += [[pack_id, cid] for cid, _e in entries]
            continue
        try:
            trailer = {c[0]: c[1:] for c in read_trailer(store.backend, present[pack_id],
                                                         store.backend.size(present[pack_id]))}
        except StoreCorrupt as exc:
            out.errors.append(str(exc))
            trailer = None
        out.chunks += len(entries)
        misplaced = {cid for cid, e in entries
                     if trailer is not None and trailer.get(cid) != [e.offset, e.length, e.width]}
        out.errors += [f"chunk {cid}: pack {pack_id} does not hold it where the index says"
                       for cid in sorted(misplaced)]
        out.bad_copies += [[pack_id, cid] for cid in sorted(misplaced)]
        if read_data:
            _read_back(store, pack_id, [(cid, e) for cid, e in entries if cid not in misplaced], out, limiter)
            if progress is not None:
                progress(out.bytes_read, total)
    for snap in records.list_snapshots(store.catalog):
        if snap["layout"] == fssnap.LAYOUT:
            _check_fs_snapshot(store, snap, read_data, out)
            continue
        uncovered = missing_content(store, snap["id"]) if snap["layout"] == content_rows.CONTENT else []
        if uncovered:
            out.errors.append(f"snapshot {snap['id'][:12]}: no stored content chunks cover {len(uncovered)} files"
                              f" (e.g. {uncovered[0]})")
        missing = sorted(cid for cid in snapshot_chunk_ids(store, snap["id"]) if cid not in store.index)
        if missing:
            out.errors.append(f"snapshot {snap['id'][:12]} uses {len(missing)} chunks the store lacks"
                              f" (e.g. {missing[0]})")
    return out


def _says(path: Path, target: str) -> bool:
    try:
        return os.readlink(path) == target
    except OSError:  # missing, or not a link
        return False


def _check_fs_snapshot(store, snap, read_data: bool, out: CheckResult) -> None:
    """A read-only filesystem snapshot's copies are there, the size the snapshot says, and (read_data)
    have its SHA-256; a copy that does not marks the snapshot suspect."""
    import hashlib

    bad = []
    for row in records.snapshot_files(store.catalog, snap["id"]):
        path = fssnap.file_path(store, snap["id"], row)
        if row["link"] is not None:  # a BEP 47 link entry: the link saying its target, never followed
            if path is None or not _says(path, row["link"]):
                bad.append(f"{row['path']}: not the link {row['link']!r} in the read-only snapshot")
            continue
        try:
            size = path.stat().st_size if path is not None else -1
        except OSError:
            size = -1
        if size != row["size"]:
            bad.append(f"{row['path']}: missing or of another size in the read-only snapshot")
            continue
        if read_data and row["sha256"]:
            h = hashlib.sha256()
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(8 << 20), b""):
                    h.update(block)
            out.bytes_read += size
            if h.hexdigest() != row["sha256"]:
                bad.append(f"{row['path']}: does not match its SHA-256 in the read-only snapshot")
    if bad:
        out.errors += [f"snapshot {snap['id'][:12]}: {b}" for b in bad]
        mark_suspect(store.catalog, snap["id"], snap["torrent_id"], "store-check",
                     f"read-only filesystem snapshot: {bad[0]}")
