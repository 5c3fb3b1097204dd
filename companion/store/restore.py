"""Restoring a snapshot's files under a folder, laid out as the torrent does, each one verified."""

import hashlib
import itertools
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..catalog.content import CONTENT, chunks_of
from ..catalog.content import layout as snap_layout
from ..errors import DiskFull, StoreCorrupt, UnsafePath, is_disk_full
from ..scan import resolve_payload_path
from ..torrent import FileEntry
from . import fssnap, reflink
from .backend import fsync_dir
from .pack import pack_name, pwrite_all, start_writeback, write_behind
from .results import RestoreResult

RESTORE_FILES = 2  # files restored at once
FS_BLOCK = 8 * 1024 * 1024  # read (and cloned) at once from a read-only filesystem snapshot


def restore(store, snapshot_id: str, dest_dir, files=None, paths: dict[int, str] | None = None,
            keep_cache: bool = False, progress=None) -> RestoreResult:
    """Write the snapshot's files under dest_dir, laid out as the torrent does. Each file is
    written to a temp file, checked (chunk ids and the file's SHA-256), fsynced and renamed.
    paths: file index -> path to use instead of the snapshot's (e.g. the .torrent's own names
    for a torrent whose files qBittorrent renamed). keep_cache: leave the restored bytes in
    the page cache (a drill reads them right back); by default they are dropped once on disk.
    progress(n): n more bytes written, called from the writing threads."""
    began = time.monotonic()
    snap = store.get(snapshot_id)
    dest_dir = Path(dest_dir)
    rows = store.select_files(snap.id, files)
    created = _missing_folders(dest_dir, rows, paths)
    dest_dir.mkdir(parents=True, exist_ok=True)
    by_file: dict[int, list] = {}
    layout = snap_layout(store.catalog, snap.id)
    if layout == fssnap.LAYOUT:  # each file copied out of the read-only filesystem snapshot
        by_file = {row["file_index"]: fssnap.file_path(store, snap.id, row) for row in rows}
    elif layout == CONTENT:  # each file as its content chunks
        for row in rows:
            held = chunks_of(store.catalog, row["sha256"]) if row["sha256"] else []
            by_file[row["file_index"]] = [(seq, r["offset"], r["length"], r["chunk_id"]) for seq, r in enumerate(held)]
    else:  # an older snapshot of piece-aligned chunks
        for (fi, piece), v in store.chunk_map(snap.id).items():
            by_file.setdefault(fi, []).append((piece, *v))
    links = _links(store, snap, rows)
    by_index = {r["file_index"]: r for r in rows}
    placed = []  # (path as in the torrent, (link path, target)): every target checked before anything is written
    for index, target in sorted(links.items()):
        where = (paths or {}).get(index, by_index[index]["path"])
        placed.append((where, _link_target(dest_dir, where, target)))
    jobs = []
    for row in rows:
        if row["file_index"] in links:
            continue
        where = (paths or {}).get(row["file_index"], row["path"])
        entry = FileEntry(row["file_index"], where, row["size"], 0, False, None)
        held = by_file.get(row["file_index"])
        jobs.append((where, resolve_payload_path(dest_dir, entry), row, held if isinstance(held, Path) else
                     sorted(held or [])))
    # Two files at once (each file's SHA-256 is one sequential stream). Every file goes to a
    # temp name first; they are renamed into place only once all are written and checked, so
    # a bad chunk anywhere leaves nothing restored.
    done: list[tuple[Path, Path, int, str]] = []
    with ThreadPoolExecutor(RESTORE_FILES, thread_name_prefix="restore-file") as pool:
        futures = [pool.submit(_restore_fs_file if layout == fssnap.LAYOUT else _restore_file, store, *job[1:],
                               keep_cache, progress) for job in jobs]
        error = None
        for fut in futures:
            try:
                done.append(fut.result())
            except BaseException as exc:  # noqa: BLE001 - re-raised below, once all have ended
                error = error or exc
    if error is not None:
        for tmp, *_rest in done:
            tmp.unlink(missing_ok=True)
        for folder in created:  # deepest first; only the empty folders this restore made
            try:
                folder.rmdir()
            except OSError:
                pass
        if is_disk_full(error):
            raise DiskFull(dest_dir, sum(r["size"] for r in rows)) from error
        raise error
    for tmp, path, _cloned, _sha in done:
        os.replace(tmp, path)
    for _where, (path, target) in placed:
        _place_link(path, target)
    for folder in {path.parent for _tmp, path, _cloned, _sha in done} | {p.parent for _w, (p, _t) in placed}:
        fsync_dir(folder)
    return RestoreResult(snap.id, dest_dir, [job[0] for job in jobs] + [w for w, _p in placed],
                         sum(r["size"] for r in rows),
                         time.monotonic() - began, sum(d[2] for d in done),
                         {job[0]: d[3] for job, d in zip(jobs, done)})


def _links(store, snap, rows) -> dict[int, str]:
    """file index -> link target (what readlink() must say) of the BEP 47 link entries among rows.
    A snapshot taken before snapshots recorded links (link NULL) has them from its torrent."""
    out = {r["file_index"]: r["link"] for r in rows if r["link"] is not None}
    if any(r["link"] is None and not r["size"] for r in rows):  # an empty file, or an unrecorded link
        entries = {e.index: e for e in store.torrent_meta(snap).real_files}
        out.update({r["file_index"]: entries[r["file_index"]].link_target for r in rows if r["link"] is None
                    and not r["size"] and r["file_index"] in entries and entries[r["file_index"]].symlink})
    return out


def _link_target(dest_dir: Path, where: str, target: str) -> tuple[Path, str]:
    """(path of the link, its target), refused (UnsafePath) when the target, read from the link's
    folder, leaves dest_dir (the engine's traversal rule: a payload never points out of its save path)."""
    path = resolve_payload_path(dest_dir, FileEntry(0, where, 0, 0, False, None, symlink=target))
    folder = os.path.dirname(where)
    inside = os.path.normpath(os.path.join(folder, target)) if target else "."
    if os.path.isabs(target) or inside == ".." or inside.startswith("../"):
        raise UnsafePath(path, f"link target {target!r} leaves the restore folder (traversal rule)")
    return path, target


def _place_link(path: Path, target: str) -> None:
    """The link made under a temp name beside `path`, then renamed over whatever is there (a file
    or an older link, never followed): a link, never bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.seedward-restore")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    try:
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def _missing_folders(dest_dir: Path, rows, paths) -> list[Path]:
    """The folders a restore of these rows would create under (and including) dest_dir, deepest first."""
    missing, present = set(), set()
    for row in rows:
        folder = (dest_dir / (paths or {}).get(row["file_index"], row["path"])).parent
        while folder not in missing and folder not in present:
            if folder.exists():
                present.add(folder)
                break
            missing.add(folder)
            if folder == dest_dir:
                break
            folder = folder.parent
    if not dest_dir.exists():
        missing.add(dest_dir)
    return sorted(missing, key=lambda f: -len(f.parts))


def _restore_file(store, path: Path, row, segs, keep_cache: bool = False, progress=None) -> tuple[Path, Path, int, str]:
    """Write one file to a temp name beside `path`, checked and fsynced: (temp, path, bytes
    cloned, SHA-256 of what was written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.seedward-restore")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    digest = hashlib.sha256()
    cloned = 0
    behind = None  # the previous chunk's range: on disk and out of the cache before the next
    try:
        for (_piece, offset, length, cid), data in _read_ahead(store, segs):
            digest.update(data)
            took_clone, took = _copy_chunk(store, cid, fd, offset, length) if store.reflinks else (0, 0)
            cloned += took_clone
            if took < length:
                pwrite_all(fd, memoryview(data)[took:], offset + took)
            start_writeback(fd, offset, length)
            if behind is not None:
                write_behind(fd, *behind, drop=not keep_cache)
            behind = (offset, length)
            if progress is not None:
                progress(length)
        os.ftruncate(fd, row["size"])
        if row["sha256"] and digest.hexdigest() != row["sha256"]:
            raise StoreCorrupt(store.backend.where, f"restored {row['path']} does not match the snapshot's SHA-256")
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp, path, cloned, digest.hexdigest()


def _restore_fs_file(store, path: Path, row, source: Path, keep_cache: bool = False,
                     progress=None) -> tuple[Path, Path, int, str]:
    """A file of a filesystem-snapshot snapshot: cloned out of the read-only snapshot where the
    destination is on its filesystem (else copied), hashed as it is read: (temp, path, bytes
    cloned, SHA-256 of what was written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.seedward-restore")
    digest = hashlib.sha256()
    cloned, offset = 0, 0
    try:
        src = os.open(source, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as exc:
        raise StoreCorrupt(source, f"the read-only snapshot's copy is gone ({exc.strerror})") from exc
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        while True:
            data = os.pread(src, FS_BLOCK, offset)
            if not data:
                break
            digest.update(data)
            head = len(data) - len(data) % reflink.ALIGN
            if store.reflinks and head and reflink.clone_fd(src, offset, fd, offset, head):
                cloned += head
            else:
                head = 0
            pwrite_all(fd, memoryview(data)[head:], offset + head)
            offset += len(data)
            if progress is not None:
                progress(len(data))
        os.ftruncate(fd, offset)
        if row["sha256"] and digest.hexdigest() != row["sha256"]:
            raise StoreCorrupt(source, f"does not match the snapshot's SHA-256 of {row['path']}")
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    finally:
        os.close(src)
    os.close(fd)
    return tmp, path, cloned, digest.hexdigest()


def _read_ahead(store, segs, window: int = 4):
    """(seg, verified bytes) in order; a few chunks read and verified ahead on other threads
    (hashlib releases the GIL), at most `window` in memory."""
    segs = iter(segs)
    with ThreadPoolExecutor(2, thread_name_prefix="restore") as pool:
        pending = deque((seg, pool.submit(store.read_chunk, seg[3])) for seg in itertools.islice(segs, window))
        while pending:
            seg, fut = pending.popleft()
            nxt = next(segs, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(store.read_chunk, nxt[3])))
            try:
                data = fut.result()
            except BaseException:
                for _seg, other in pending:
                    other.cancel()
                raise
            yield seg, data


def _copy_chunk(store, cid: str, dst_fd: int, dst_offset: int, length: int) -> tuple[int, int]:
    """Put a chunk just read and verified into dst from its (immutable) pack by cloning it
    (reflinks). Returns (bytes cloned, bytes placed); the caller writes the rest from memory,
    which beats an in-kernel copy that would read the pack a second time."""
    entry = store.index.get(cid)
    src = store.backend.local_path(pack_name(entry.pack)) if entry else None
    if src is None:
        return 0, 0
    try:
        src_fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return 0, 0
    try:
        head = length - length % reflink.ALIGN  # a chunk's unaligned tail is written from memory
        if head and reflink.clone_fd(src_fd, entry.offset, dst_fd, dst_offset, head):
            return head, head
        return 0, 0
    finally:
        os.close(src_fd)
