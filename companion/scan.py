"""The catalog engine: one read pass per file computes every hash seedward keeps.

Per pass: v1 SHA-1 per piece (pieces span files, pad files are zeros), v2 SHA-256 per
16 KiB block merkled per piece and per file, xxh3 per piece-aligned segment, and the
SHA-256 of each whole file. Buffers come from a fixed pool, so memory stays bounded; reads
are cache-sized (pieces bigger than a read are hashed in slices, hash states carried over),
so every hash of a byte finds it in the CPU's cache. The reading thread does the in-order
hashing (file SHA-256, pieces spanning files) and xxh3; helper threads do the 16 KiB leaves;
SHA-1 of whole pieces goes to whichever side has spent less CPU (hashlib and xxhash release
the GIL on large buffers, so both cores work).
"""

import hashlib
import os
import queue
import stat as stat_mod
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import xxhash

from .errors import Error, PayloadError, UnsafePath
from .merkle import file_root, merkle_root
from .piece_plan import Segment, file_segments
from .torrent import BLOCK, FileEntry, TorrentMeta

BUFFER_BYTES = 2 * 1024 * 1024  # a read; pieces bigger are hashed in slices (2 MiB measured best here)
POOL_BUFFERS = 4
WORKERS = max(2, os.cpu_count() or 2)

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
    ctime_ns: int = 0
    seen_ns: int = 0  # wall clock just before the stat: a later write gets a later ctime

    @classmethod
    def of(cls, st: os.stat_result, seen_ns: int = 0) -> "FileStat":
        return cls(st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, st.st_nlink, st.st_ctime_ns, seen_ns)


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
    seen = time.time_ns()
    st = os.fstat(fd)
    if stat_mod.S_ISDIR(st.st_mode):
        os.close(fd)
        raise PayloadError(path, "is a directory where a file should be")
    if not stat_mod.S_ISREG(st.st_mode):
        os.close(fd)
        raise PayloadError(path, "is not a regular file")
    return fd, FileStat.of(st, seen)


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
        self.lock = threading.Lock()

    def spend(self, n: int) -> None:
        if self.rate <= 0:
            return
        with self.lock:
            self.total += n
            ahead = self.total / self.rate - (time.monotonic() - self.start)
        if ahead > 0:
            time.sleep(ahead)


class BufferPool:
    """A fixed set of buffers: what bounds a scan's memory, whatever the payload size."""

    def __init__(self, size: int, count: int):
        self.size = size
        self.free: queue.Queue = queue.Queue()
        for _ in range(count):
            self.free.put(bytearray(size))

    def get(self) -> bytearray:
        return self.free.get()

    def put(self, buf: bytearray) -> None:
        self.free.put(buf)


def _fadvise_sequential(fd: int) -> None:
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    except (AttributeError, OSError):
        pass  # advice only


@lru_cache(maxsize=4)
def _zeros(n: int) -> memoryview:
    return memoryview(bytes(n))


class _SegState:
    """A segment being hashed, possibly over several reads (a piece bigger than a read)."""

    __slots__ = ("seg", "h", "xxh3", "sha1", "sha1_by_reader", "leaves", "broken")

    def __init__(self, seg: Segment, h: SegmentHash, sha1_by_reader: bool | None):
        self.seg, self.h = seg, h
        self.xxh3 = xxhash.xxh3_64()
        self.sha1 = hashlib.sha1() if sha1_by_reader is not None else None
        self.sha1_by_reader = sha1_by_reader
        self.leaves: list[bytes] = []
        self.broken = False  # the file ended inside it


def _helper_part(parts: list, view: memoryview, want_root: bool, bpp: int, single: bool, file_index: int,
                 sink) -> float:
    """The helper's work on one read: 16 KiB SHA-256 leaves, the SHA-1 of whole pieces the
    reader left, and, at a segment's end, its merkle root and the sink. Returns the CPU
    seconds it took (the reader balances the SHA-1 work with it)."""
    began = time.thread_time()
    sha256 = hashlib.sha256
    for state, lo, length, last in parts:
        if state.broken:
            continue
        data = view[lo : lo + length]
        if want_root:
            state.leaves += [sha256(data[i : i + BLOCK]).digest() for i in range(0, length, BLOCK)]
        if state.sha1 is not None and not state.sha1_by_reader:
            state.sha1.update(data)
        if last:
            h = state.h
            if want_root:
                h.root = merkle_root(state.leaves) if single else merkle_root(state.leaves, bpp)
            if state.sha1 is not None and not state.sha1_by_reader:
                h.sha1 = state.sha1.digest()
            if sink is not None:
                sink(file_index, h, data)
    return time.thread_time() - began


class _Run:
    """One full scan. The caller's thread reads each file in order and does the hashing that
    must see bytes in order (file SHA-256, SHA-1 of pieces spanning files) plus xxh3; helper
    threads do the 16 KiB SHA-256 leaves. The SHA-1 of whole pieces goes to whichever side has
    spent less CPU so far, so both cores stay equally busy. Reads are small enough (1 MiB, a
    few in flight) that the helper finds the bytes still in cache."""

    def __init__(self, scanner: "Scanner", meta: TorrentMeta, want_sha1: bool, want_root: bool, bpp: int,
                 limiter: RateLimiter, cancel, progress, sink, total: int):
        self.meta, self.want_sha1, self.want_root, self.bpp = meta, want_sha1, want_root, bpp
        self.limiter, self.cancel, self.progress, self.sink, self.total = limiter, cancel, progress, sink, total
        # A sink needs each segment whole in memory; otherwise reads are cache-sized slices.
        if sink is not None:
            self.unit = max(scanner.buffer_bytes, meta.piece_length)
        else:
            self.unit = max(BLOCK, scanner.buffer_bytes // BLOCK * BLOCK)
        self.helpers = max(1, scanner.workers - 1)
        self.pool = BufferPool(self.unit, max(2, scanner.buffers))
        self.backlog = 0  # reads handed to helpers and not done yet
        self.helper_cpu = 0.0  # CPU seconds all helpers spent
        self.helper_jobs = 0
        self.lock = threading.Lock()
        self.error: BaseException | None = None
        self.assembler: dict[int, object] = {}  # piece -> running SHA-1 of a piece spanning files
        self.done_bytes = 0
        self.bytes_read = 0

    def scan(self, save_path: Path, only_files: set[int] | None) -> list[FileScan]:
        results: list[FileScan] = []
        self.reader_began = time.thread_time()
        pools = [ThreadPoolExecutor(1, thread_name_prefix="scan") for _ in range(self.helpers)]
        try:
            try:
                for entry in self.meta.files:
                    self.check(save_path)
                    if entry.pad:
                        if self.want_sha1:
                            self.feed_pad(entry)
                        continue
                    path = resolve_payload_path(save_path, entry)
                    segments = file_segments(self.meta, entry)
                    if only_files is not None and entry.index not in only_files:
                        self.mark(segments, SKIP)
                        continue
                    fs = FileScan(entry, path)
                    results.append(fs)
                    fd, st = open_payload_file(path)
                    if fd is None:
                        fs.status = MISSING
                        fs.segments = [SegmentHash(s.piece, s.offset, s.length, None, whole_piece=s.whole_piece)
                                       for s in segments]
                        self.mark(segments, None)
                        continue
                    fs.stat = st
                    try:
                        _fadvise_sequential(fd)
                        self.scan_file(pools, fs, fd, st, segments)
                    finally:
                        os.close(fd)  # helpers never touch the fd, only buffers already read
                    self.done_bytes += entry.size
                    if self.progress:
                        self.progress(self.done_bytes, self.total)
            except BaseException:
                self.fail(None)
                raise
        finally:
            for ex in pools:
                ex.shutdown(wait=True)
        if self.error is not None:
            raise self.error
        return results

    def check(self, where) -> None:
        if self.error is not None:
            raise self.error
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled(where)

    def fail(self, exc: BaseException | None) -> None:
        with self.lock:
            if self.error is None and exc is not None:
                self.error = exc

    def reads(self, segments: list[Segment]):
        """Plan a file's reads: (start, length, [(segment, offset in segment, length)]).
        Segments up to a read's size are batched whole; bigger ones are read in slices of
        16 KiB multiples, so a read stays in the CPU's cache between the hashes that use it."""
        unit, batch, size = self.unit, [], 0
        for seg in segments:
            if seg.length <= unit:
                if batch and size + seg.length > unit:
                    yield batch[0][0].offset, size, batch
                    batch, size = [], 0
                batch.append((seg, 0, seg.length))
                size += seg.length
                continue
            if batch:
                yield batch[0][0].offset, size, batch
                batch, size = [], 0
            for lo in range(0, seg.length, unit):
                n = min(unit, seg.length - lo)
                yield seg.offset + lo, n, [(seg, lo, n)]
        if batch:
            yield batch[0][0].offset, size, batch

    def scan_file(self, pools, fs: FileScan, fd: int, st: FileStat, segments: list[Segment]) -> None:
        entry, path, pool = fs.entry, fs.path, self.pool
        file_hash = hashlib.sha256()
        readable = min(st.size, entry.size)
        single = len(segments) == 1
        state = None
        for start, length, parts in self.reads(segments):
            helper_work = self.want_root or self.sink is not None
            self.check(path)
            buf = pool.get()  # blocks while every buffer is with the helpers: memory stays bounded
            view = memoryview(buf)[:length]
            try:
                got = read_at(fd, view, start, path) if start < readable else 0
            except BaseException:
                pool.put(buf)
                raise
            got = min(got, max(0, readable - start))
            self.bytes_read += got
            self.limiter.spend(got)
            if got:
                file_hash.update(view[:got])
            todo = []
            for seg, lo, n in parts:
                if lo == 0:
                    h = SegmentHash(seg.piece, seg.offset, seg.length, None, whole_piece=seg.whole_piece)
                    fs.segments.append(h)
                    by_reader = (self.reader_is_ahead() if seg.whole_piece else None) if self.want_sha1 else None
                    state = _SegState(seg, h, by_reader)
                at = seg.offset + lo - start  # in this read
                complete = at + n <= got
                if self.want_sha1 and not seg.whole_piece:
                    self.feed_piece(seg.piece, view[:got], at, n)
                if not complete:
                    state.broken = True
                last = lo + n == seg.length
                if not state.broken:
                    data = view[at : at + n]
                    state.xxh3.update(data)
                    if state.sha1_by_reader:
                        state.sha1.update(data)
                    if last:
                        state.h.xxh3 = state.xxh3.hexdigest()
                        if state.sha1_by_reader:
                            state.h.sha1 = state.sha1.digest()
                    todo.append((state, at, n, last))
                    helper_work = helper_work or (state.sha1 is not None and not state.sha1_by_reader)
            if todo and helper_work:
                with self.lock:
                    self.backlog += 1
                # Slices of one segment go to one helper, in order (streamed SHA-1 and leaves).
                ex = pools[parts[0][0].piece % len(pools)]
                fut = ex.submit(_helper_part, todo, view, self.want_root, self.bpp, single, entry.index, self.sink)
                fut.add_done_callback(lambda f, b=buf: self.helper_done(f, b))
            else:
                pool.put(buf)
        # Bytes past the torrent's size (an extended file) count for the file's SHA-256 only.
        pos = entry.size
        while pos < st.size:
            buf = pool.get()
            try:
                got = read_at(fd, memoryview(buf), pos, path)
                if got == 0:
                    break
                self.bytes_read += got
                self.limiter.spend(got)
                file_hash.update(memoryview(buf)[:got])
                pos += got
            finally:
                pool.put(buf)
        fs.sha256 = file_hash.hexdigest()

    def reader_is_ahead(self) -> bool:
        """Has this thread spent less CPU than each helper, counting the helpers' queued work?"""
        with self.lock:
            pending = self.backlog * self.helper_cpu / self.helper_jobs if self.helper_jobs else 0.0
            helper = (self.helper_cpu + pending) / self.helpers
        return time.thread_time() - self.reader_began < helper

    def helper_done(self, fut, buf: bytearray) -> None:
        exc = fut.exception()
        with self.lock:
            self.backlog -= 1
            if exc is None:
                self.helper_cpu += fut.result()
                self.helper_jobs += 1
        if exc is not None:
            self.fail(exc)
        self.pool.put(buf)

    def feed_piece(self, piece: int, data: memoryview, lo: int, length: int) -> None:
        """Add a file's part of a piece that spans files (in torrent order) to its SHA-1."""
        h = self.assembler.setdefault(piece, hashlib.sha1())
        if h is None or h is SKIP:
            return
        if lo + length <= len(data):
            h.update(data[lo : lo + length])
        else:
            self.assembler[piece] = None  # the file ended before this piece did

    def feed_pad(self, entry: FileEntry) -> None:
        """BEP 47 pad files count as zeros in v1 piece hashes."""
        zeros = _zeros(self.pool.size)
        for seg in file_segments(self.meta, entry):
            h = self.assembler.setdefault(seg.piece, hashlib.sha1())
            if h is None or h is SKIP:
                continue
            for at in range(0, seg.length, len(zeros)):
                h.update(zeros[: min(len(zeros), seg.length - at)])

    def mark(self, segments: list[Segment], value) -> None:
        """Pieces of a skipped (SKIP) or missing (None) file; SKIP wins."""
        for seg in segments:
            if value is SKIP or self.assembler.get(seg.piece) is not SKIP:
                self.assembler[seg.piece] = value


class Scanner:
    """Runs full scans (settings only: each scan starts its own helper threads)."""

    def __init__(self, workers: int | None = None, buffer_bytes: int = BUFFER_BYTES, buffers: int = POOL_BUFFERS):
        self.workers = workers or WORKERS  # the reading thread plus workers - 1 helpers (one at least)
        self.buffer_bytes = buffer_bytes  # one read (a whole piece when a sink needs whole segments)
        self.buffers = buffers  # how many reads may be in memory at once: the scan's memory

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
        sink(file_index, SegmentHash, data): called on a helper thread for every complete
        segment while its bytes are in memory (the store writes chunks here: one read pass).
        progress(done_bytes, total_bytes): called on the caller's thread after each file.
        """
        save_path = check_save_path(save_path)
        began = time.monotonic()
        bpp = max(1, meta.piece_length // BLOCK)
        total = sum(f.size for f in meta.files if not f.pad and (only_files is None or f.index in only_files))
        run = _Run(self, meta, meta.has_v1, meta.has_v2 or chunk_roots or sink is not None, bpp,
                   RateLimiter(rate), cancel, progress, sink, total)
        results = run.scan(save_path, only_files)
        piece_sha1: dict[int, bytes | None] = {}
        for piece, h in run.assembler.items():
            if h is not SKIP:
                piece_sha1[piece] = h.digest() if h is not None else None
        for fs in results:
            for seg in fs.segments:
                if seg.sha1 is not None:
                    piece_sha1[seg.piece] = seg.sha1
                elif seg.xxh3 is None:
                    piece_sha1[seg.piece] = None
        for piece in [p for p, h in run.assembler.items() if h is SKIP]:
            piece_sha1.pop(piece, None)
        bad = _compare(meta, results, piece_sha1, bpp)
        return ScanResult(meta, save_path, results, sorted(bad), run.bytes_read, time.monotonic() - began)


class _Stop(Exception):
    """The reader stops because a worker failed (the worker's error is raised instead)."""


def _drain(q: queue.Queue) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


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
    sharing: dict[int, list[FileScan]] = {}  # bad piece -> scanned files with bytes in it
    partial: set[int] = set()  # bad pieces that no single segment fills
    for fs in results:
        for seg in fs.segments:
            if seg.piece in bad:
                sharing.setdefault(seg.piece, []).append(fs)
                if not seg.whole_piece:
                    partial.add(seg.piece)
    for piece in sorted(partial):
        files = sharing[piece]
        if any(f.status != OK for f in files):
            continue
        for f in files:
            f.status = DAMAGED


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




class _QuickRun:
    """Quick verify: workers read and xxh3 their own units; no ordered work at all."""

    def __init__(self, meta: TorrentMeta, size: int, threads: int, limiter: RateLimiter, cancel):
        self.meta, self.size, self.limiter, self.cancel = meta, size, limiter, cancel
        self.threads = threads
        self.queue: queue.Queue = queue.Queue(maxsize=threads * 2)
        self.failed = threading.Event()
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.open: dict[int, list] = {}  # file index -> [fd, units left]
        self.bytes_read = 0

    def work(self) -> None:
        view = memoryview(bytearray(self.size))
        try:
            while True:
                item = self.queue.get()
                if item is None or self.failed.is_set():
                    return
                index, path, batch, start, length, readable, digests = item
                if self.cancel is not None and self.cancel.is_set():
                    raise Cancelled(path)
                fd = self.open[index][0]
                data = view[:length]
                got = read_at(fd, data, start, path) if start < readable else 0
                got = min(got, max(0, readable - start))
                self.limiter.spend(got)
                digests.extend(_xxh3_batch(batch, data, start, got))
                with self.lock:
                    self.bytes_read += got
                    state = self.open[index]
                    state[1] -= 1
                    if state[1] == 0:
                        os.close(state[0])
                        state[0] = None
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, which raises it
            with self.lock:
                if self.error is None:
                    self.error = exc
            self.failed.set()

    def put(self, item) -> None:
        while not self.failed.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
        raise _Stop


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
    Each worker reads and hashes its own buffer (both cores read, nothing is copied twice).
    """
    began = time.monotonic()
    save_path = check_save_path(save_path)
    run = _QuickRun(meta, max(buffer_bytes, meta.piece_length), workers or WORKERS, RateLimiter(rate), cancel)
    plan = []  # (entry, path, stat, [(batch, digests)])
    threads = [threading.Thread(target=run.work, name=f"quick-{i}", daemon=True) for i in range(run.threads)]
    for t in threads:
        t.start()
    try:
        for entry in meta.real_files:
            if files is not None and entry.index not in files:
                continue
            if cancel is not None and cancel.is_set():
                raise Cancelled(save_path)
            path = resolve_payload_path(save_path, entry)
            segs = [s for s in file_segments(meta, entry) if pieces is None or s.piece in pieces]
            fd, st = open_payload_file(path)
            if fd is None:
                plan.append((entry, path, None, [(segs, [None] * len(segs))]))
                continue
            _fadvise_sequential(fd)
            jobs = [(batch, []) for batch in batches(segs, run.size)]
            plan.append((entry, path, st, jobs))
            if not jobs:
                os.close(fd)
                continue
            with run.lock:
                run.open[entry.index] = [fd, len(jobs)]
            readable = min(st.size, entry.size)
            for batch, digests in jobs:
                start = batch[0].offset
                length = batch[-1].offset + batch[-1].length - start
                run.put((entry.index, path, batch, start, length, readable, digests))
    except _Stop:
        pass
    except BaseException as exc:
        with run.lock:
            if run.error is None:
                run.error = exc
        run.failed.set()
    finally:
        if run.failed.is_set():
            _drain(run.queue)
        for _ in threads:
            run.queue.put(None)
        for t in threads:
            t.join()
        for state in run.open.values():
            if state[0] is not None:
                os.close(state[0])
    if run.error is not None:
        raise run.error
    out: list[QuickFile] = []
    for entry, path, st, jobs in plan:
        want = baseline.get(entry.index, {})
        bad = [(seg.piece, seg.offset, seg.length)
               for batch, digests in jobs for seg, digest in zip(batch, digests)
               if digest is None or digest != want.get(seg.piece)]
        if st is None:
            status = MISSING
        else:
            status = SIZE_MISMATCH if st.size != entry.size else (DAMAGED if bad else OK)
        out.append(QuickFile(entry.index, path, status, bad, st))
    return QuickResult(out, run.bytes_read, time.monotonic() - began)
