"""The quick rescan: xxh3 of piece-aligned segments against the catalog's baseline.

No piece hashes, no file SHA-256: each worker reads a batch of one file's segments into its own
buffer and xxh3s them (both cores read, nothing is copied twice). What it proves is "unchanged
since the verified scan whose xxh3 is the baseline", never "verified against the torrent".
"""

import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import xxhash

from .blame import DAMAGED, MISSING, OK, SIZE_MISMATCH
from .payload_io import FileStat, Resolver, advise, check_save_path, read_at
from .piece_plan import Segment, file_segments
from .scan import BUFFER_BYTES, WORKERS, Cancelled, RateLimiter
from .torrent import TorrentMeta

__all__ = ["QuickFile", "QuickResult", "quick_scan"]


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



class _Stop(Exception):
    """The reader stops because a worker failed (the worker's error is raised instead)."""


def _drain(q: queue.Queue) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


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
               buffer_bytes: int = BUFFER_BYTES, progress=None) -> QuickResult:
    """Quick verify: xxh3 of piece-aligned segments against the catalog's baseline.

    baseline: file_index -> {piece: xxh3 hex}. files / pieces narrow what is read.
    Each worker reads and hashes its own buffer (both cores read, nothing is copied twice).
    BEP 47 symlink entries are checked as links (lstat/readlink), never read.
    progress(done_bytes, total_bytes): called on the caller's thread as batches are handed out.
    """
    began = time.monotonic()
    save_path = check_save_path(save_path)
    res = Resolver(save_path)
    run = _QuickRun(meta, max(buffer_bytes, meta.piece_length), workers or WORKERS, RateLimiter(rate), cancel)
    plan = []  # (entry, path, stat, [(batch, digests)], link status)
    total = sum(e.size for e in meta.real_files if files is None or e.index in files) if progress else 0
    threads = [threading.Thread(target=run.work, name=f"quick-{i}", daemon=True) for i in range(run.threads)]
    for t in threads:
        t.start()
    try:
        for entry in meta.real_files:
            if files is not None and entry.index not in files:
                continue
            if cancel is not None and cancel.is_set():
                raise Cancelled(save_path)
            path = Path(save_path) / entry.path
            if entry.symlink is not None:
                status, st = res.link(entry)
                plan.append((entry, path, st, [], status))
                continue
            segs = [s for s in file_segments(meta, entry) if pieces is None or s.piece in pieces]
            fd, st, _where = res.open(entry.path)
            if fd is None:
                plan.append((entry, path, None, [(segs, [None] * len(segs))], None))
                continue
            if entry.size >= run.size:
                advise(fd)
            jobs = [(batch, []) for batch in batches(segs, run.size)]
            plan.append((entry, path, st, jobs, None))
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
                if progress is not None:
                    progress(run.bytes_read, total)
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
    if progress is not None:
        progress(run.bytes_read, total)
    out: list[QuickFile] = []
    for entry, path, st, jobs, link in plan:
        want = baseline.get(entry.index, {})
        bad = [(seg.piece, seg.offset, seg.length)
               for batch, digests in jobs for seg, digest in zip(batch, digests)
               if digest is None or digest != want.get(seg.piece)]
        if link is not None:
            status = link
        elif st is None:
            status = MISSING
        else:
            status = SIZE_MISMATCH if st.size != entry.size else (DAMAGED if bad else OK)
        out.append(QuickFile(entry.index, path, status, bad, st))
    return QuickResult(out, run.bytes_read, time.monotonic() - began)
