"""The catalog engine: one read pass per file computes every hash seedward keeps.

Per pass: v1 SHA-1 per piece (pieces span files, pad files are zeros), v2 SHA-256 per
16 KiB block merkled per piece and per file, xxh3 per piece-aligned segment, and the
SHA-256 of each whole file. Buffers come from a fixed pool, so memory stays bounded; the
file SHA-256 runs on its own thread while segment work runs on a pool (hashlib and
xxhash release the GIL on large buffers, so both cores work).
"""

import hashlib
import os
import queue
import stat as stat_mod
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import xxhash

from .errors import Error, PayloadError, UnsafePath
from .merkle import file_root, merkle_root
from .piece_plan import Segment, file_segments
from .torrent import BLOCK, FileEntry, TorrentMeta

BUFFER_BYTES = 8 * 1024 * 1024
POOL_BUFFERS = 6

OK, DAMAGED, MISSING, SIZE_MISMATCH = "ok", "damaged", "missing", "size_mismatch"
SKIP = object()  # a shared piece left out of a partial scan


class Cancelled(Error):
    """scan of {} cancelled"""


@dataclass(frozen=True)
class FileStat:
    size: int
    mtime_ns: int
    inode: int
    device: int
    nlink: int

    @classmethod
    def of(cls, st: os.stat_result) -> "FileStat":
        return cls(st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, st.st_nlink)


@dataclass
class SegmentHash:
    piece: int
    offset: int  # inside the file
    length: int
    xxh3: str | None  # None: the file ended before this segment did
    root: bytes | None = None  # SHA-256 merkle root of the segment's 16 KiB blocks
    sha1: bytes | None = None  # v1 piece hash, when this segment is the whole piece
    whole_piece: bool = True


@dataclass
class FileScan:
    entry: FileEntry
    path: Path
    status: str = OK
    sha256: str | None = None
    stat: FileStat | None = None
    segments: list[SegmentHash] = field(default_factory=list)
    v2_root: bytes | None = None

    def to_json(self) -> dict:
        return {
            "path": self.entry.path,
            "size": self.entry.size,
            "sha256": self.sha256,
            "status": self.status,
        }


@dataclass
class ScanResult:
    meta: TorrentMeta
    save_path: Path
    files: list[FileScan]
    bad_pieces: list[int]
    bytes_read: int
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.bad_pieces and all(f.status == OK for f in self.files)

    def to_json(self) -> dict:
        return {
            "ok": self.ok,
            "info_hash_v1": self.meta.info_hash_v1,
            "info_hash_v2": self.meta.info_hash_v2,
            "piece_size": self.meta.piece_length,
            "pieces": self.meta.num_pieces,
            "bad_pieces": self.bad_pieces,
            "files": [f.to_json() for f in self.files],
        }


def resolve_payload_path(save_path: Path, entry: FileEntry) -> Path:
    """The file's path under save_path; refuses anything that resolves outside it."""
    base = os.path.realpath(save_path)
    path = Path(save_path) / entry.path
    real = os.path.realpath(path)
    if real != base and not real.startswith(base.rstrip(os.sep) + os.sep):
        raise UnsafePath(path, f"resolves outside the save path to {real}")
    return path


def check_save_path(save_path: Path) -> Path:
    save_path = Path(save_path)
    if not save_path.exists():
        raise PayloadError(save_path, "save path does not exist")
    if not save_path.is_dir():
        raise PayloadError(save_path, "save path is not a directory")
    return save_path


def open_payload_file(path: Path) -> tuple[int | None, FileStat | None]:
    """Open for reading: (fd, stat), or (None, None) when missing. Raises PayloadError."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None, None
    except IsADirectoryError as exc:
        raise PayloadError(path, "is a directory where a file should be") from exc
    except PermissionError as exc:
        raise PayloadError(path, "permission denied") from exc
    except OSError as exc:
        raise PayloadError(path, exc.strerror or str(exc)) from exc
    st = os.fstat(fd)
    if stat_mod.S_ISDIR(st.st_mode):
        os.close(fd)
        raise PayloadError(path, "is a directory where a file should be")
    if not stat_mod.S_ISREG(st.st_mode):
        os.close(fd)
        raise PayloadError(path, "is not a regular file")
    return fd, FileStat.of(st)


def read_at(fd: int, view: memoryview, offset: int, path: Path) -> int:
    """Fill `view` from `offset`; returns bytes read (less at end of file)."""
    done = 0
    while done < len(view):
        try:
            n = os.preadv(fd, [view[done:]], offset + done)
        except OSError as exc:
            raise PayloadError(path, f"read error at offset {offset + done}: {exc.strerror}") from exc
        if n == 0:
            break
        done += n
    return done


def batches(segments: list[Segment], limit: int) -> list[list[Segment]]:
    """Group consecutive segments into reads of at most `limit` bytes (one segment at least)."""
    out, cur, size = [], [], 0
    for seg in segments:
        if cur and size + seg.length > limit:
            out.append(cur)
            cur, size = [], 0
        cur.append(seg)
        size += seg.length
    if cur:
        out.append(cur)
    return out


class RateLimiter:
    """Keeps the average read rate under `rate` bytes per second."""

    def __init__(self, rate: float = 0.0):
        self.rate = rate
        self.start = time.monotonic()
        self.total = 0

    def spend(self, n: int) -> None:
        if self.rate <= 0:
            return
        self.total += n
        ahead = self.total / self.rate - (time.monotonic() - self.start)
        if ahead > 0:
            time.sleep(ahead)


class BufferPool:
    def __init__(self, size: int, count: int):
        self.size = size
        self.free: queue.Queue = queue.Queue()
        for _ in range(count):
            self.free.put(bytearray(size))

    def get(self) -> bytearray:
        return self.free.get()

    def put(self, buf: bytearray) -> None:
        self.free.put(buf)


class _Shared:
    """A buffer used by several tasks; back to the pool when the last one is done."""

    def __init__(self, pool: BufferPool, buf: bytearray, users: int):
        self.pool, self.buf, self.users = pool, buf, users
        self.lock = threading.Lock()

    def done(self, _future=None) -> None:
        with self.lock:
            self.users -= 1
            last = self.users == 0
        if last:
            self.pool.put(self.buf)


def _hash_segments(
    batch: list[Segment], view: memoryview, start: int, got: int, want_sha1: bool, want_root: bool, bpp: int,
    single: bool, sink=None,
) -> list[SegmentHash]:
    out = []
    sha256 = hashlib.sha256
    for seg in batch:
        lo = seg.offset - start
        if lo + seg.length > got:
            out.append(SegmentHash(seg.piece, seg.offset, seg.length, None, whole_piece=seg.whole_piece))
            continue
        data = view[lo : lo + seg.length]
        h = SegmentHash(seg.piece, seg.offset, seg.length, xxhash.xxh3_64_hexdigest(data), whole_piece=seg.whole_piece)
        if want_root:
            leaves = [sha256(data[i : i + BLOCK]).digest() for i in range(0, seg.length, BLOCK)]
            h.root = merkle_root(leaves) if single else merkle_root(leaves, bpp)
        if want_sha1 and seg.whole_piece:
            h.sha1 = hashlib.sha1(data).digest()
        if sink is not None:
            sink(seg.file_index, h, data)
        out.append(h)
    return out


class Scanner:
    """Runs full scans; one instance may serve many scans (it owns the thread pools)."""

    def __init__(self, workers: int | None = None, buffer_bytes: int = BUFFER_BYTES, buffers: int = POOL_BUFFERS):
        self.workers = workers or max(2, os.cpu_count() or 2)
        self.buffer_bytes = buffer_bytes
        self.buffers = buffers

    def full_scan(
        self,
        meta: TorrentMeta,
        save_path: Path,
        *,
        chunk_roots: bool = False,
        rate: float = 0.0,
        cancel: threading.Event | None = None,
        progress=None,
        only_files: set[int] | None = None,
        sink=None,
    ) -> ScanResult:
        """Hash the payload and compare it with the torrent's own hashes.

        chunk_roots: compute the SHA-256 merkle root of every segment even for v1-only
        torrents (the snapshot store's chunk ids). only_files: scan just these file indices
        (pieces they share with other files are then reported from these files alone).
        sink(file_index, SegmentHash, data): called on a worker thread for every complete
        segment while its bytes are in memory (the store writes chunks here: one read pass).
        """
        save_path = check_save_path(save_path)
        began = time.monotonic()
        want_sha1 = meta.has_v1
        want_root = meta.has_v2 or chunk_roots
        bpp = max(1, meta.piece_length // BLOCK)
        size = max(self.buffer_bytes, meta.piece_length)
        pool = BufferPool(size, self.buffers)
        limiter = RateLimiter(rate)
        assembler: dict[int, "hashlib._Hash | None"] = {}
        piece_sha1: dict[int, bytes | None] = {}
        results: list[FileScan] = []
        pending = []  # (FileScan, [futures], sha_future)
        total = sum(f.size for f in meta.files if not f.pad)
        try:
            self._run(meta, save_path, results, pending, assembler, pool, limiter, cancel, progress,
                      only_files, want_sha1, want_root or sink is not None, bpp, total, sink)
        finally:
            for item in pending:
                os.close(item[3])
        bytes_read = sum(item[4] for item in pending)
        for piece, h in assembler.items():
            if h is not SKIP:
                piece_sha1[piece] = h.digest() if h is not None else None
        for fs in results:
            for seg in fs.segments:
                if seg.sha1 is not None:
                    piece_sha1[seg.piece] = seg.sha1
                elif seg.xxh3 is None:
                    piece_sha1[seg.piece] = None
        for piece in [p for p, h in assembler.items() if h is SKIP]:
            piece_sha1.pop(piece, None)
        bad = _compare(meta, results, piece_sha1, bpp)
        return ScanResult(meta, save_path, results, sorted(bad), bytes_read, time.monotonic() - began)

    def _run(self, meta, save_path, results, pending, assembler, pool, limiter, cancel, progress,
             only_files, want_sha1, want_root, bpp, total, sink):
        done_bytes = 0
        with ThreadPoolExecutor(self.workers, thread_name_prefix="seg") as seg_pool, ThreadPoolExecutor(
            1, thread_name_prefix="sha256"
        ) as file_pool:
            for entry in meta.files:
                if cancel is not None and cancel.is_set():
                    raise Cancelled(save_path)
                if entry.pad:
                    self._feed_pad(meta, entry, assembler)
                    continue
                path = resolve_payload_path(save_path, entry)
                if only_files is not None and entry.index not in only_files:
                    for seg in file_segments(meta, entry):
                        assembler[seg.piece] = SKIP
                    continue
                fs = FileScan(entry, path)
                results.append(fs)
                fd, st = open_payload_file(path)
                if fd is None:
                    fs.status = MISSING
                    for seg in file_segments(meta, entry):
                        fs.segments.append(SegmentHash(seg.piece, seg.offset, seg.length, None, whole_piece=seg.whole_piece))
                        if assembler.get(seg.piece) is not SKIP:
                            assembler[seg.piece] = None
                    continue
                fs.stat = st
                pending.append([fs, [], None, fd, 0])
                futures, sha_future = self._scan_file(
                    meta, entry, fd, path, st, pool, seg_pool, file_pool, assembler,
                    want_sha1, want_root, bpp, limiter, cancel, sink,
                )
                pending[-1][1:3] = futures, sha_future
                done_bytes += entry.size
                if progress:
                    progress(done_bytes, total)
            for item in pending:
                fs, futures, sha_future = item[0], item[1], item[2]
                for fut in futures:
                    fs.segments.extend(fut.result())
                fs.sha256, item[4] = sha_future.result()

    def _feed_pad(self, meta, entry, assembler):
        for seg in file_segments(meta, entry):
            h = assembler.setdefault(seg.piece, hashlib.sha1())
            if h is not None and h is not SKIP:
                h.update(bytes(seg.length))

    def _scan_file(self, meta, entry, fd, path, st, pool, seg_pool, file_pool, assembler,
                   want_sha1, want_root, bpp, limiter, cancel, sink):
        segments = file_segments(meta, entry)
        single = len(segments) == 1
        file_hash = hashlib.sha256()
        futures = []
        sha_futures = []
        readable = min(st.size, entry.size)
        pos = 0
        for batch in batches(segments, pool.size):
            if cancel is not None and cancel.is_set():
                raise Cancelled(path)
            start = batch[0].offset
            length = batch[-1].offset + batch[-1].length - start
            buf = pool.get()
            view = memoryview(buf)[:length]
            got = read_at(fd, view, start, path) if start < readable else 0
            got = min(got, max(0, readable - start))
            limiter.spend(got)
            for seg in batch:
                if not seg.whole_piece and want_sha1:
                    lo = seg.offset - start
                    h = assembler.setdefault(seg.piece, hashlib.sha1())
                    if h is not None and h is not SKIP:
                        if lo + seg.length <= got:
                            h.update(view[lo : lo + seg.length])
                        else:
                            assembler[seg.piece] = None
            shared = _Shared(pool, buf, 2)
            fut = seg_pool.submit(_hash_segments, batch, view, start, got, want_sha1, want_root, bpp, single, sink)
            fut.add_done_callback(shared.done)
            futures.append(fut)
            sfut = file_pool.submit(file_hash.update, view[:got])
            sfut.add_done_callback(shared.done)
            sha_futures.append(sfut)
            pos = start + got
        # Bytes past the torrent's size (an extended file) count for the file's SHA-256 only.
        while pos < st.size:
            buf = pool.get()
            view = memoryview(buf)
            got = read_at(fd, view, pos, path)
            if got == 0:
                break
            limiter.spend(got)
            shared = _Shared(pool, buf, 1)
            sfut = file_pool.submit(file_hash.update, view[:got])
            sfut.add_done_callback(shared.done)
            pos += got

        def finish():
            return file_hash.hexdigest(), pos

        return futures, file_pool.submit(finish)


def _compare(meta: TorrentMeta, results: list[FileScan], piece_sha1: dict, bpp: int) -> set[int]:
    """Mark bad pieces against the torrent's own hashes, then set each file's status."""
    bad: set[int] = set()
    scanned = {fs.entry.index for fs in results}
    if meta.has_v1:
        for piece, digest in piece_sha1.items():
            if digest is None or digest != meta.v1_hashes[piece]:
                bad.add(piece)
    if meta.has_v2:
        for fs in results:
            entry = fs.entry
            if entry.size == 0:
                continue
            roots = [s.root for s in fs.segments]
            if any(r is None for r in roots):
                bad.update(s.piece for s in fs.segments if s.root is None)
            expected = meta.v2_piece_hashes(entry)
            if expected is None:
                if roots[0] is None or roots[0] != entry.root:
                    bad.update(s.piece for s in fs.segments)
                fs.v2_root = roots[0]
            else:
                for seg, want in zip(fs.segments, expected):
                    if seg.root != want:
                        bad.add(seg.piece)
                if all(r is not None for r in roots):
                    fs.v2_root = file_root(roots, bpp, [])
    elif any(s.root is not None for fs in results for s in fs.segments):
        for fs in results:
            roots = [s.root for s in fs.segments]
            if roots and all(r is not None for r in roots):
                fs.v2_root = roots[0] if len(roots) == 1 else file_root(roots, bpp, [])
    _set_statuses(meta, results, bad, scanned)
    return bad


def _set_statuses(meta: TorrentMeta, results: list[FileScan], bad: set[int], scanned: set[int]) -> None:
    by_index = {fs.entry.index: fs for fs in results}
    for fs in results:
        if fs.status == MISSING:
            fs.sha256 = None
            continue
        if fs.stat.size != fs.entry.size:
            fs.status = SIZE_MISMATCH
    # A bad piece inside one file blames that file; a bad piece shared by several files
    # blames those already known bad, or all of them when none is.
    for fs in results:
        if fs.status != OK:
            continue
        for seg in fs.segments:
            if seg.piece in bad and seg.whole_piece:
                fs.status = DAMAGED
                break
    for piece in sorted(bad):
        sharing = [by_index[s.file_index] for s in _segments_of(meta, piece) if s.file_index in by_index]
        if len(sharing) < 2 and all(s.whole_piece for s in _segments_of(meta, piece)):
            continue
        if any(f.status != OK for f in sharing):
            continue
        for f in sharing:
            f.status = DAMAGED


def _segments_of(meta: TorrentMeta, piece: int) -> list[Segment]:
    from .piece_plan import piece_plan

    out = []
    pl = meta.piece_length
    for entry, off, length in piece_plan(meta, piece):
        if entry.pad:
            continue
        whole = length == meta.piece_size(piece)
        out.append(Segment(entry.index, piece, off, length, whole))
    return out


@dataclass
class QuickFile:
    file_index: int
    path: Path
    status: str  # ok | damaged | missing | size_mismatch
    bad_segments: list[tuple[int, int, int]]  # (piece, offset in file, length)
    stat: FileStat | None


@dataclass
class QuickResult:
    files: list[QuickFile]
    bytes_read: int
    seconds: float

    @property
    def ok(self) -> bool:
        return all(f.status == OK for f in self.files)

    @property
    def bad_pieces(self) -> list[int]:
        return sorted({p for f in self.files for p, _, _ in f.bad_segments})


def _xxh3_batch(batch: list[Segment], view: memoryview, start: int, got: int) -> list[str | None]:
    out = []
    for seg in batch:
        lo = seg.offset - start
        out.append(xxhash.xxh3_64_hexdigest(view[lo : lo + seg.length]) if lo + seg.length <= got else None)
    return out


def quick_scan(meta: TorrentMeta, save_path: Path, baseline: dict[int, dict[int, str]], *,
               files: set[int] | None = None, pieces: set[int] | None = None, rate: float = 0.0,
               cancel: threading.Event | None = None, workers: int | None = None,
               buffer_bytes: int = BUFFER_BYTES) -> QuickResult:
    """Quick verify: xxh3 of piece-aligned segments against the catalog's baseline.

    baseline: file_index -> {piece: xxh3 hex}. files / pieces narrow what is read.
    """
    began = time.monotonic()
    save_path = check_save_path(save_path)
    pool = BufferPool(max(buffer_bytes, meta.piece_length), POOL_BUFFERS)
    limiter = RateLimiter(rate)
    out: list[QuickFile] = []
    total = 0
    with ThreadPoolExecutor(workers or max(2, os.cpu_count() or 2), thread_name_prefix="xxh3") as ex:
        for entry in meta.real_files:
            if files is not None and entry.index not in files:
                continue
            if cancel is not None and cancel.is_set():
                raise Cancelled(save_path)
            path = resolve_payload_path(save_path, entry)
            segs = [s for s in file_segments(meta, entry) if pieces is None or s.piece in pieces]
            fd, st = open_payload_file(path)
            if fd is None:
                out.append(QuickFile(entry.index, path, MISSING, [(s.piece, s.offset, s.length) for s in segs], None))
                continue
            try:
                readable = min(st.size, entry.size)
                jobs = []
                for batch in batches(segs, pool.size):
                    start = batch[0].offset
                    length = batch[-1].offset + batch[-1].length - start
                    buf = pool.get()
                    view = memoryview(buf)[:length]
                    got = read_at(fd, view, start, path) if start < readable else 0
                    got = min(got, max(0, readable - start))
                    total += got
                    limiter.spend(got)
                    shared = _Shared(pool, buf, 1)
                    fut = ex.submit(_xxh3_batch, batch, view, start, got)
                    fut.add_done_callback(shared.done)
                    jobs.append((batch, fut))
                bad = []
                want = baseline.get(entry.index, {})
                for batch, fut in jobs:
                    for seg, digest in zip(batch, fut.result()):
                        if digest is None or digest != want.get(seg.piece):
                            bad.append((seg.piece, seg.offset, seg.length))
            finally:
                os.close(fd)
            status = SIZE_MISMATCH if st.size != entry.size else (DAMAGED if bad else OK)
            out.append(QuickFile(entry.index, path, status, bad, st))
    return QuickResult(out, total, time.monotonic() - began)
