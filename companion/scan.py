"""The catalog engine: one read pass computes every hash seedward keeps.

Per pass: v1 SHA-1 per piece (pieces span files, pad files are zeros), v2 SHA-256 per 16 KiB
block merkled per piece and per file, xxh3 per piece-aligned segment, and the SHA-256 of each
whole file. The calling thread plans: it lays the torrent's byte space out in windows (whole
pieces, many small files per window) from a bounded pool of buffers, so memory stays bounded.
Small files it reads and hashes itself, in one tight path, while their bytes are in its cache;
the bytes of bigger files are queued per window for two reader threads (two reads in flight,
POSIX_FADV_SEQUENTIAL), and a window goes to the hashing once its reads are in, windows in order.
One hashing thread per core takes each window's work in ~1 MiB tasks (hashlib and xxhash release
the GIL); the SHA-256 of a file spanning windows runs as a chain of tasks in file order, ahead of
the rest. File paths are libtorrent's (companion.torrent); opening them is companion.payload_io;
verdicts are companion.blame.

Longer than 400 lines on purpose: the full pass's window, buffer pool, reader threads, hashing
tasks and per-file chains share one run's state (_Run); split, they would pass that state across
modules. The quick rescan is companion.quickscan.
"""

import hashlib
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import xxhash

from .blame import DAMAGED, MISSING, OK, SIZE_MISMATCH, STATUSES, SUSPECT, judge
from .errors import Error
from .merkle import merkle_root
from .payload_io import FileStat, Resolver, advise, check_save_path, read_at, resolve_payload_path
from .piece_plan import file_segments
from .torrent import BLOCK, FileEntry, TorrentMeta

__all__ = ["BUFFER_BYTES", "Cancelled", "DAMAGED", "FileScan", "FileStat", "MISSING", "OK", "RateLimiter",
           "SIZE_MISMATCH", "STATUSES", "SUSPECT", "ScanResult", "Scanner", "SegmentHash", "check_save_path",
           "resolve_payload_path"]

BUFFER_BYTES = 2 * 1024 * 1024  # one window (rounded to whole pieces; at least one piece)
POOL_BUFFERS = 8  # windows in memory at once: what the reader may run ahead of the hashing
MEMORY_BYTES = 32 * 1024 * 1024  # fewer windows when pieces are big (never fewer than 2)
READERS = 2  # reader threads: two reads in flight
MAX_QUEUED_FILES = 256  # open files with queued reads, at most (then the calling thread reads)
TASK_BYTES = 1024 * 1024  # hashing work per task
INLINE_BYTES = 64 * 1024  # smaller files are hashed by the reading thread (no hand-over)
WORKERS = os.cpu_count() or 2
SKIP = object()  # a piece shared with a file left out of a partial scan
EMPTY_SHA256 = hashlib.sha256(b"").digest()


class Cancelled(Error):
    """scan of {} cancelled"""


class SegmentHash:
    """One piece-aligned segment of a file: its hashes from one scan."""

    __slots__ = ("piece", "offset", "length", "digest", "root", "sha1", "whole_piece")

    def __init__(self, piece: int, offset: int, length: int, xxh3: str | int | None, root: bytes | None = None,
                 sha1: bytes | None = None, whole_piece: bool = True):
        self.piece, self.offset, self.length = piece, offset, length  # offset: inside the file
        self.digest = int(xxh3, 16) if isinstance(xxh3, str) else xxh3  # xxh3-64 as an int (small)
        self.root = root  # SHA-256 merkle root of the segment's 16 KiB blocks
        self.sha1 = sha1  # v1 piece hash, when this segment is the whole piece
        self.whole_piece = whole_piece

    @property
    def xxh3(self) -> str | None:
        """The segment's xxh3-64 in hex; None: the file ended before this segment did."""
        return None if self.digest is None else f"{self.digest:016x}"

    @xxh3.setter
    def xxh3(self, value: str | int | None) -> None:
        self.digest = int(value, 16) if isinstance(value, str) else value

    def __eq__(self, other) -> bool:
        return isinstance(other, SegmentHash) and all(getattr(self, a) == getattr(other, a) for a in self.__slots__)

    def __repr__(self) -> str:
        return f"SegmentHash(piece={self.piece}, offset={self.offset}, length={self.length}, xxh3={self.xxh3})"


class FileScan:
    """One file of a scan: its status (companion.blame.STATUSES), SHA-256, stat and segments."""

    __slots__ = ("entry", "save_path", "status", "digest", "stat", "_segs", "v2_root")

    def __init__(self, entry: FileEntry, save_path, status: str = OK, sha256: str | None = None,
                 stat: FileStat | None = None, segments: list | None = None, v2_root: bytes | None = None):
        self.entry, self.save_path, self.status = entry, save_path, status
        self.digest = bytes.fromhex(sha256) if sha256 else None  # the file's SHA-256 (32 bytes)
        self.stat, self._segs, self.v2_root = stat, segments if segments is not None else [], v2_root

    @property
    def segments(self):
        """The file's SegmentHash list in file order (a file of one segment keeps just it:
        100,000 small files hold no list or tuple each)."""
        segs = self._segs
        return (segs,) if type(segs) is SegmentHash else segs

    @segments.setter
    def segments(self, value) -> None:
        self._segs = value[0] if len(value) == 1 and type(value) is tuple else value

    @property
    def sha256(self) -> str | None:
        """The SHA-256 of the whole file as `sha256sum` prints it; None when it is missing."""
        return self.digest.hex() if self.digest is not None else None

    @sha256.setter
    def sha256(self, value: str | None) -> None:
        self.digest = bytes.fromhex(value) if value else None

    @property
    def path(self) -> Path:
        return Path(self.save_path) / self.entry.path

    def to_json(self) -> dict:
        return {"path": self.entry.path, "size": self.entry.size, "sha256": self.sha256, "status": self.status}

    def __repr__(self) -> str:
        return f"FileScan({self.entry.path!r}, {self.status})"


@dataclass
class ScanResult:
    meta: TorrentMeta
    save_path: Path
    files: list[FileScan]
    bad_pieces: list[int]
    bytes_read: int
    seconds: float
    # v1 pieces holding bytes of the scanned files and of files left out (only_files): not
    # verified (their other bytes are not read), so their scanned bytes are proven by nothing
    unverified_pieces: list[int] = field(default_factory=list)

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


@lru_cache(maxsize=4)
def _zeros(n: int) -> bytes:
    return bytes(n)


class _Window:
    """A run of the torrent's byte space [start, end) in one pool buffer (whole pieces)."""

    __slots__ = ("buf", "view", "start", "end", "pending", "items", "seq", "reads", "later")

    def __init__(self, buf: bytearray, start: int, end: int, seq: int = -1):
        self.buf, self.view, self.start, self.end = buf, memoryview(buf), start, end
        self.pending = 1  # the reader's hold, dropped once the window is handed over
        self.items: list = []  # (lo, hi, kind, a, b): free hashing work, in window offsets
        self.seq = seq  # windows are hashed in this order (a file's SHA-256 runs through them)
        self.reads: list = []  # (_Fd, lo, length, offset in file): queued for the reader threads
        self.later: list = []  # (args, key): a queued-read file's SHA-256 steps, after its reads


class _Fd:
    """A payload file open for the reads queued on it: the last one closes it."""

    __slots__ = ("fd", "path", "refs")

    def __init__(self, fd: int, path: str):
        self.fd, self.path, self.refs = fd, path, 1


class _Hashers:
    """One thread per core running hashing tasks. A task with a key runs after the previous
    task of that key (a file's SHA-256 in order); keyed tasks go first, as they are the
    pass's critical path."""

    def __init__(self, threads: int, release):
        self.release = release
        self.cond = threading.Condition()
        self.first: deque = deque()
        self.rest: deque = deque()
        self.chains: dict = {}  # key -> tasks waiting for the running one
        self.closed = False
        self.error: BaseException | None = None
        self.threads = [threading.Thread(target=self.work, name=f"scan-{i}", daemon=True) for i in range(threads)]
        for t in self.threads:
            t.start()

    def submit(self, win: _Window, fn, args, key=None) -> None:
        task = (fn, args, win, key)
        with self.cond:
            win.pending += 1
            if key is None:
                self.rest.append(task)
            elif key in self.chains:
                self.chains[key].append(task)
                return
            else:
                self.chains[key] = deque()
                self.first.append(task)
            self.cond.notify()

    def work(self) -> None:
        cond = self.cond
        while True:
            with cond:
                while not self.first and not self.rest:
                    if self.closed:
                        return
                    cond.wait()
                fn, args, win, key = self.first.popleft() if self.first else self.rest.popleft()
            if self.error is None:
                try:
                    fn(*args)
                except BaseException as exc:  # noqa: BLE001 - handed to the reader, which raises it
                    with cond:
                        if self.error is None:
                            self.error = exc
            with cond:
                if key is not None:
                    waiting = self.chains[key]
                    if waiting:
                        self.first.append(waiting.popleft())
                        cond.notify()
                    else:
                        del self.chains[key]
            self.release(win)

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        for t in self.threads:
            t.join()


def _hash_items(items: list, view: memoryview, run: "_Run") -> None:
    """A task: the free hashing work of part of a window."""
    sha1, sha256, xxh = hashlib.sha1, hashlib.sha256, xxhash.xxh3_64_intdigest
    want_root, bpp, sink, piece_sha1 = run.want_root, run.bpp, run.sink, run.piece_sha1
    for lo, hi, kind, a, b in items:
        data = view[lo:hi]
        if kind == 0:  # a whole v1 piece: a = piece
            piece_sha1[a] = sha1(data).digest()
        elif kind == 1:  # a segment: a = FileScan, b = (SegmentHash, single)
            h, single = b
            h.digest = xxh(data)
            if want_root:
                leaves = [sha256(data[i : i + BLOCK]).digest() for i in range(0, hi - lo, BLOCK)]
                h.root = merkle_root(leaves) if single else merkle_root(leaves, bpp)
            if sink is not None:
                sink(a.entry.index, h, data)
        else:  # a whole file: a = FileScan
            a.digest = sha256(data).digest()


def _chain_step(state: list, data: memoryview, fs: FileScan | None) -> None:
    """A task: the next bytes of a file spanning windows into its SHA-256; fs on the last."""
    state[0].update(data)
    if fs is not None:
        fs.digest = state[0].digest()


class _Buffers:
    """The pool of window buffers: what bounds a scan's memory. A buffer is made only when none
    is free (up to `count`): a scan the hashing keeps up with holds few of them."""

    def __init__(self, size: int, count: int):
        self.size, self.left = size, count
        self.free: queue.Queue = queue.Queue()

    def get(self, run: "_Run") -> bytearray:
        try:
            return self.free.get_nowait()
        except queue.Empty:
            pass
        if self.left > 0:
            self.left -= 1
            return bytearray(self.size)
        while True:
            try:
                return self.free.get(timeout=0.2)
            except queue.Empty:
                run.check("")

    def put(self, buf: bytearray) -> None:
        self.free.put(buf)


class _Run:
    """One full scan: the calling thread reads windows, _Hashers hash them."""

    def __init__(self, scanner: "Scanner", meta: TorrentMeta, save_path: Path, want_sha1: bool, want_root: bool,
                 limiter: RateLimiter, cancel, progress, sink, only_files, readers: int):
        self.meta, self.save_path, self.want_sha1, self.want_root = meta, save_path, want_sha1, want_root
        self.limiter, self.cancel, self.progress, self.sink, self.only = limiter, cancel, progress, sink, only_files
        pl = meta.piece_length
        self.pl, self.total = pl, meta.total_size
        self.bpp = max(1, pl // BLOCK)
        self.unit = max(pl, scanner.buffer_bytes // pl * pl)
        self.task_bytes = max(BLOCK, min(scanner.task_bytes, self.unit))
        self.inline_bytes = scanner.inline_bytes
        count = max(2, min(scanner.buffers, scanner.memory_bytes // self.unit))
        self.pool = _Buffers(self.unit, count)
        self.hashers = _Hashers(max(1, scanner.workers), self.release)
        # Reader threads: the bytes of files bigger than inline_bytes are read by them, a window
        # each, so two reads are in flight (a disk streams one file faster with two; from the
        # page cache the copies run on both cores); windows are hashed in order (ready()).
        self.readq: queue.Queue = queue.Queue()
        self.readers = [threading.Thread(target=self.read_windows, name=f"scan-read-{i}", daemon=True)
                        for i in range(readers)]
        self.fd_lock = threading.Lock()
        self.open_fds = 0
        self.seq_lock = threading.Lock()
        self.next_seq = self.next_ready = 0
        self.waiting: dict[int, _Window] = {}
        self.changed = False  # a queued read came back short: the file shrank while being read
        self.piece_sha1: dict[int, bytes | None] = {}
        self.piece_ints: dict[int, int] = {}
        self.flags: dict[int, object] = {}  # piece -> SKIP, or None when some of its bytes are not there
        self.results: list[FileScan] = []
        self.bytes_read = 0
        self.done_bytes = 0
        self.reported = 0
        self.seen = time.time_ns()  # a clock reading before the stats of the current window
        self.want = sum(f.size for f in meta.files if not f.pad and (only_files is None or f.index in only_files))

    # -- bookkeeping ---------------------------------------------------------------------------

    def check(self, where) -> None:
        if self.hashers.error is not None:
            raise self.hashers.error
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled(where or self.save_path)

    def release(self, win: _Window) -> None:
        with self.hashers.cond:  # the lock submit() counts under: one count, never lost
            win.pending -= 1
            if win.pending:
                return
        self.pool.put(win.buf)

    def flag(self, start: int, end: int, value) -> None:
        """Mark the pieces holding torrent bytes [start, end): SKIP, or None (not there)."""
        if end <= start:
            return
        flags = self.flags
        for p in range(start // self.pl, (end - 1) // self.pl + 1):
            if value is SKIP or flags.get(p) is not SKIP:
                flags[p] = value

    # -- reading -------------------------------------------------------------------------------

    def scan(self) -> list[FileScan]:
        res = Resolver(self.save_path)
        win = None
        files, i, n = self.meta.files, 0, len(self.meta.files)
        for t in self.readers:
            t.start()
        try:
            while i < n:
                entry = files[i]
                j = self.small_run(files, i) if 0 < entry.size <= self.inline_bytes else i
                if j > i:
                    win = self.small_files(res, win, files[i:j])
                    i = j
                    continue
                i += 1
                if entry.pad:
                    if self.want_sha1 and entry.size and self.flags.get(entry.offset // self.pl) is not SKIP:
                        win, _ = self.place(win, entry, None, None, 0)
                    continue
                if self.only is not None and entry.index not in self.only:
                    self.flag(entry.offset, entry.offset + entry.size, SKIP)
                    continue
                if self.cancel is not None and self.cancel.is_set():
                    raise Cancelled(self.save_path)
                win = self.scan_file(res, win, entry)
                if self.progress:
                    self.done_bytes += entry.size
                    if self.done_bytes - self.reported >= (1 << 20):
                        self.reported = self.done_bytes
                        self.progress(self.done_bytes, self.want)
            if win is not None:
                self.hand_over(win)
                win = None
        except BaseException:
            if win is not None:
                self.hand_over(win, submit=False)
            self.hashers.error = self.hashers.error or Cancelled(self.save_path)
            self.stop_readers()
            self.hashers.close()
            raise
        self.stop_readers()
        self.hashers.close()
        if self.hashers.error is not None:
            raise self.hashers.error
        if self.progress and self.reported != self.done_bytes:
            self.progress(self.done_bytes, self.want)
        return self.results

    def small_run(self, files, i: int) -> int:
        """The end of the run of small regular files from files[i] inside one window."""
        unit, only, inline, n = self.unit, self.only, self.inline_bytes, len(files)
        index = files[i].offset // unit
        j = i
        while j < n:
            e = files[j]
            if (e.pad or e.symlink is not None or not 0 < e.size <= inline or (e.offset + e.size - 1) // unit != index
                    or (only is not None and e.index not in only)):
                break
            j += 1
        return j

    def small_files(self, res: Resolver, win, entries) -> _Window:
        """A run of small files inside one window, read and hashed here in one tight loop (a
        100,000-file torrent is mostly system calls); a file that is not simply there at its
        size goes the careful way (scan_file)."""
        start = entries[0].offset
        if win is None or start >= win.end:
            win = self.new_window(win, start)
        view, base, seen, save = win.view, win.start, self.seen, self.save_path
        read, results, progress, limiter = res.read_small, self.results, self.progress, self.limiter
        for entry in entries:
            size = entry.size
            lo = entry.offset - base
            data = view[lo : lo + size]
            st = read(entry.path, size, data, seen)
            if st is None:
                win = self.scan_file(res, win, entry)
            else:
                fs = FileScan(entry, save, stat=st)
                results.append(fs)
                self.bytes_read += size
                if limiter.rate:
                    limiter.spend(size)
                self.hash_small(win, fs, data)
            if progress:
                self.done_bytes += size
                if self.done_bytes - self.reported >= (1 << 20):
                    self.reported = self.done_bytes
                    progress(self.done_bytes, self.want)
            if self.cancel is not None and self.cancel.is_set():
                raise Cancelled(self.save_path)
        return win

    def scan_file(self, res: Resolver, win, entry: FileEntry):
        fs = FileScan(entry, self.save_path)
        self.results.append(fs)
        if entry.symlink is not None:
            fs.status, fs.stat = res.link(entry)
            return win
        size = entry.size
        fd, st, path = res.open(entry.path, size, self.seen)
        if fd is None:
            fs.status = MISSING
            fs.segments = [SegmentHash(s.piece, s.offset, s.length, None, whole_piece=s.whole_piece)
                           for s in file_segments(self.meta, entry)]
            self.flag(entry.offset, entry.offset + size, None)
            return win
        fs.stat = st
        held = None
        try:
            if not size:
                if st.size:
                    self.read_tail(fs, fd, st.size, [hashlib.sha256()], path)
                else:
                    fs.digest = EMPTY_SHA256
            elif size <= self.inline_bytes and st.size == size and (win is not None and entry.offset >= win.start
                                                                    and entry.offset + size <= win.end):
                self.small(win, fs, fd, path)
            else:
                if size >= self.unit:
                    advise(fd)
                if self.readers and st.size == size and self.open_fds < MAX_QUEUED_FILES:
                    held = _Fd(fd, path)  # its reads go to the reader threads
                    with self.fd_lock:
                        self.open_fds += 1
                win, state = self.place(win, entry, fs, fd, st.size, path, held)
                if st.size > size:
                    self.read_tail(fs, fd, st.size, state or [hashlib.sha256()], path)
        finally:
            if held is None:
                os.close(fd)
            else:
                self.drop(held)
        return win

    def small(self, win: _Window, fs: FileScan, fd: int, path: str) -> None:
        """A small file inside the current window: read and hash it here, while its bytes are
        in the CPU's cache (handing thousands of tiny files to other threads costs more)."""
        entry = fs.entry
        size, start = entry.size, entry.offset
        lo = start - win.start
        data = win.view[lo : lo + size]
        got = read_at(fd, data, 0, path)
        self.bytes_read += got
        if self.limiter.rate:
            self.limiter.spend(got)
        if got < size:  # shrank since the stat
            self.flag(start + got, start + size, None)
            fs.digest = hashlib.sha256(data[:got]).digest()
            self.plan_segments(win, fs, start, start + size, start + got, True)
            return
        self.hash_small(win, fs, data)

    def hash_small(self, win: _Window, fs: FileScan, data: memoryview) -> None:
        """The hashes of a small file whose bytes are all in `data` (its place in `win`)."""
        entry, pl = fs.entry, self.pl
        size, start = entry.size, entry.offset
        first = start // pl
        first = self.piece_ints.setdefault(first, first)  # one int per piece, not per file
        digest = hashlib.sha256(data).digest()
        fs.digest = digest
        if first != (start + size - 1) // pl or self.sink is not None:
            self.plan_segments(win, fs, start, start + size, start + size, True)
            return
        # One segment, the whole file: its SHA-256 is also its only 16 KiB leaf, the v2 root.
        h = SegmentHash(first, 0, size, xxhash.xxh3_64_intdigest(data),
                        whole_piece=start == first * pl and (size == pl or start + size == self.total))
        if self.want_root:
            h.root = digest if size <= BLOCK else merkle_root(
                [hashlib.sha256(data[i : i + BLOCK]).digest() for i in range(0, size, BLOCK)])
        fs._segs = h  # FileScan.segments gives (h,): 100,000 one-segment files hold no tuple each

    def new_window(self, win, pos: int) -> _Window:
        if win is not None:
            self.hand_over(win)
        start = pos // self.unit * self.unit
        self.seen = time.time_ns()
        buf = self.pool.get(self)
        self.next_seq += 1
        return _Window(buf, start, min(start + self.unit, self.total), self.next_seq - 1)

    def place(self, win, entry: FileEntry, fs: FileScan | None, fd: int | None, disk_size: int, path: str = "",
              held: _Fd | None = None):
        """Put the file's bytes (or a pad file's zeros) into windows and plan their hashing.
        held: the reads are queued for the reader threads (whole file, its size as the torrent
        says), its hashing done once they are in. Returns (current window, the SHA-256 state of a
        file spanning windows or None)."""
        pos, end = entry.offset, entry.offset + entry.size
        readable = entry.offset + min(disk_size, entry.size)
        spans = fd is not None and (entry.size > self.unit or disk_size != entry.size
                                    or entry.offset // self.unit != (end - 1) // self.unit)
        state = [hashlib.sha256()] if spans else None
        inline = not spans and entry.size <= self.inline_bytes and held is None
        while pos < end:
            if win is None or pos >= win.end:
                win = self.new_window(win, pos)
            stop = min(end, win.end)
            lo, hi = pos - win.start, stop - win.start
            if fd is None:  # pad file: zeros in v1 piece hashes
                win.view[lo:hi] = _zeros(self.unit)[: hi - lo]
                pos = stop
                continue
            got = 0
            if pos < readable:
                want = min(stop, readable) - pos
                if held is not None:
                    with self.fd_lock:
                        held.refs += 1
                    win.reads.append((held, lo, want, pos - entry.offset))
                    got = want
                else:
                    got = read_at(fd, win.view[lo : lo + want], pos - entry.offset, path)
                    self.limiter.spend(got)
                self.bytes_read += got
            if pos + got < stop:
                self.flag(pos + got, stop, None)
            self.plan_segments(win, fs, pos, stop, pos + got, inline)
            if state is not None:
                last = stop == end and disk_size <= entry.size
                args = (state, win.view[lo : lo + got], fs if last else None)
                if held is not None:
                    win.later.append((args, entry.index))
                else:
                    self.hashers.submit(win, _chain_step, args, key=entry.index)
            elif inline:
                fs.digest = hashlib.sha256(win.view[lo : lo + got]).digest()
            else:
                win.items.append((lo, lo + got, 2, fs, None))
            pos = stop
        return win, state

    def plan_segments(self, win: _Window, fs: FileScan, start: int, stop: int, got_end: int, inline: bool) -> None:
        """The piece-aligned segments of torrent bytes [start, stop) of fs's file."""
        entry, pl = fs.entry, self.pl
        first, last = entry.offset, entry.offset + entry.size
        single = first // pl == (last - 1) // pl
        segs, items = fs.segments, win.items
        p = start // pl
        while p * pl < stop:
            lo, hi = max(p * pl, first), min((p + 1) * pl, last)
            whole = lo == p * pl and (hi == lo + pl or hi == self.total)
            h = SegmentHash(p, lo - first, hi - lo, None, whole_piece=whole)
            segs.append(h)
            if hi <= got_end:
                item = (lo - win.start, hi - win.start, 1, fs, (h, single))
                if inline:
                    _hash_items((item,), win.view, self)
                else:
                    items.append(item)
            p += 1

    def read_tail(self, fs: FileScan, fd: int, disk_size: int, state: list, path: str) -> None:
        """Bytes past the torrent's size (an extended file) count for its SHA-256 only."""
        entry = fs.entry
        pos = entry.size
        while True:
            buf = self.pool.get(self)
            tail = _Window(buf, 0, 0)
            got = read_at(fd, tail.view, pos, path) if pos < disk_size else 0
            self.bytes_read += got
            self.limiter.spend(got)
            pos += got
            done = got < len(buf) or pos >= disk_size
            self.hashers.submit(tail, _chain_step, (state, tail.view[:got], fs if done else None), key=entry.index)
            self.release(tail)
            if done:
                return

    def hand_over(self, win: _Window, submit: bool = True) -> None:
        """The window is planned: its queued reads go to a reader thread, then (ready) its hashing."""
        if not submit:
            for held, *_ in win.reads:
                self.drop(held)
            win.reads = []
            self.release(win)
        elif win.reads:
            self.readq.put(win)
        else:
            self.ready(win)

    def read_windows(self) -> None:
        """A reader thread: a window's queued reads, then ready(window)."""
        while True:
            win = self.readq.get()
            if win is None:
                return
            reads, win.reads = win.reads, []
            for held, lo, want, offset in reads:
                try:
                    if self.hashers.error is None:
                        got = read_at(held.fd, win.view[lo : lo + want], offset, held.path)
                        self.limiter.spend(got)
                        if got < want:
                            self.changed = True
                except BaseException as exc:  # noqa: BLE001 - handed to the planning thread, which raises it
                    with self.hashers.cond:
                        if self.hashers.error is None:
                            self.hashers.error = exc
                self.drop(held)
            self.ready(win)

    def drop(self, held: _Fd) -> None:
        with self.fd_lock:
            held.refs -= 1
            if held.refs:
                return
            self.open_fds -= 1
        os.close(held.fd)

    def stop_readers(self) -> None:
        for _ in self.readers:
            self.readq.put(None)
        for t in self.readers:
            t.join()

    def ready(self, win: _Window) -> None:
        """Hand windows whose bytes are in over to the hashing, in window order."""
        with self.seq_lock:
            self.waiting[win.seq] = win
            while self.next_ready in self.waiting:
                self.submit(self.waiting.pop(self.next_ready))
                self.next_ready += 1

    def submit(self, win: _Window) -> None:
        """Plan the window's v1 pieces, submit its hashing, drop the planning thread's hold."""
        for args, key in win.later:
            self.hashers.submit(win, _chain_step, args, key=key)
        win.later = []
        if self.want_sha1:
            pl, flags = self.pl, self.flags
            for p in range(win.start // pl, -(-win.end // pl)):
                if p not in flags:
                    lo = p * pl - win.start
                    win.items.append((lo, lo + self.meta.piece_size(p), 0, p, None))
        items, chunk, size = win.items, [], 0
        for item in items:
            chunk.append(item)
            size += item[1] - item[0]
            if size >= self.task_bytes:
                self.hashers.submit(win, _hash_items, (chunk, win.view, self))
                chunk, size = [], 0
        if chunk:
            self.hashers.submit(win, _hash_items, (chunk, win.view, self))
        win.items = []
        self.release(win)


class Scanner:
    """Runs full scans (settings only: each scan starts its own hashing threads)."""

    def __init__(self, workers: int | None = None, buffer_bytes: int = BUFFER_BYTES, buffers: int = POOL_BUFFERS,
                 memory_bytes: int = MEMORY_BYTES, task_bytes: int = TASK_BYTES, inline_bytes: int = INLINE_BYTES,
                 readers: int = READERS):
        self.workers = workers or WORKERS  # hashing threads (the calling thread plans and reads small files)
        self.readers = readers  # threads reading the bigger files' bytes (0: the calling thread does)
        self.buffer_bytes = buffer_bytes  # one window, rounded down to whole pieces (one piece at least)
        self.buffers = buffers  # windows in memory at once
        self.memory_bytes = memory_bytes  # cap on buffers x window (two windows at least)
        self.task_bytes = task_bytes
        self.inline_bytes = inline_bytes  # files up to this size are hashed by the reading thread

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
        baseline: dict[int, dict[int, str]] | None = None,
    ) -> ScanResult:
        """Hash the payload and compare it with the torrent's own hashes.

        chunk_roots: compute the SHA-256 merkle root of every segment even for v1-only
        torrents (the snapshot store's chunk ids). only_files: scan just these file indices
        (pieces they share with other files are then left out of the verdict).
        sink(file_index, SegmentHash, data): called on a hashing thread for every complete
        segment while its bytes are in memory (the store writes chunks here: one read pass).
        progress(done_bytes, total_bytes): called on the caller's thread as files are read.
        baseline: {file_index: {piece: xxh3}} from a verified scan (the catalog's), which proves
        a file's bytes in a failed piece shared with other files unchanged (else `suspect`).
        """
        save_path = check_save_path(save_path)
        began = time.monotonic()
        limiter, want_root = RateLimiter(rate), meta.has_v2 or chunk_roots or sink is not None
        run = _Run(self, meta, save_path, meta.has_v1, want_root, limiter, cancel, progress, sink, only_files,
                   self.readers)
        results = run.scan()
        if run.changed:  # a file shrank under a queued read: its hashes are of bytes it no longer has
            run = _Run(self, meta, save_path, meta.has_v1, want_root, limiter, cancel, progress, sink, only_files, 0)
            results = run.scan()
        piece_sha1 = run.piece_sha1
        for piece, flag in run.flags.items():
            if flag is SKIP:
                piece_sha1.pop(piece, None)
            elif meta.has_v1:
                piece_sha1[piece] = None
        for fs in results:
            for seg in fs.segments:
                if seg.whole_piece and seg.digest is not None:
                    seg.sha1 = piece_sha1.get(seg.piece)
        bad = judge(meta, results, piece_sha1, run.bpp, baseline)
        unverified = []
        if only_files is not None and meta.has_v1:
            skipped = {p for p, flag in run.flags.items() if flag is SKIP}
            unverified = sorted({s.piece for fs in results for s in fs.segments if s.piece in skipped})
        return ScanResult(meta, save_path, results, sorted(bad), run.bytes_read, time.monotonic() - began,
                          unverified)
