"""Packs: append-only files of chunks, built in staging and published once fsynced.

Layout: the chunks' bytes (each starting at a 4 KiB boundary: the gaps are holes), then a JSON trailer listing them ([id, offset, length, width]),
then the trailer's length (8 bytes, little endian) and MAGIC. The trailer lets `check`
compare packs with the index and lets an index be rebuilt from the packs alone.
"""

import ctypes
import json
import os
import secrets
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PayloadError, StoreCorrupt
from .backend import Backend
from .reflink import ALIGN, clone_fd, copy_range

MAGIC = b"SWPACK01"
FOOTER = 8 + len(MAGIC)
COPY_BUFFER = 4 * 1024 * 1024
PUBLISHERS = 4  # packs fsynced at once: the filesystem commits their metadata together


def pack_name(pack_id: str) -> str:
    return f"data/{pack_id[:2]}/{pack_id}"


@dataclass
class StagedPack:
    pack_id: str
    path: Path
    fd: int
    size: int = 0
    entries: list = field(default_factory=list)  # [chunk_id, offset, length, width]
    writing: int = 0  # chunks reserved but not yet written
    full: bool = False  # takes no more chunks


class PackWriter:
    """Appends chunks to staged packs; thread-safe (the scan's sink runs on worker threads).

    Space is reserved under `lock` and the bytes are written outside it, so workers write
    in parallel. A full pack is published (trailer, fsync, rename) on a background thread
    while the scan goes on; a published pack is harmless until an index names it.
    """

    def __init__(self, backend: Backend, target_size: int):
        self.backend = backend
        self.target = max(1, target_size)
        self.lock = threading.Lock()
        self.current: StagedPack | None = None
        self.published: list[StagedPack] = []
        self.staged: list[StagedPack] = []
        self.publisher = ThreadPoolExecutor(PUBLISHERS, thread_name_prefix="pack-publish")
        self.publishing: list = []

    def _open(self) -> StagedPack:
        pack_id = secrets.token_hex(32)
        path = self.backend.staging() / f"{pack_id}.pack"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        pack = StagedPack(pack_id, path, fd)
        self.staged.append(pack)
        return pack

    def reserve(self, chunk_id: str, width: int, length: int) -> tuple[StagedPack, int]:
        """Room for one chunk; the caller holds `lock`, then calls `write` without it."""
        if self.current is None:
            self.current = self._open()
        pack = self.current
        offset = -(-pack.size // ALIGN) * ALIGN  # block-aligned chunks can be cloned (reflinks)
        pack.size = offset + length
        pack.entries.append([chunk_id, offset, length, width])
        pack.writing += 1
        if pack.size >= self.target:
            pack.full = True
            self.current = None
        return pack, offset

    def write(self, pack: StagedPack, offset: int, data, source: tuple[int, int] | None = None) -> tuple[int, int]:
        """Write the reserved chunk. With source (fd, offset) of the same bytes in a file: clone
        them (reflinks), else copy them in the kernel, else write `data`. Returns (bytes cloned,
        bytes taken from the source file): the caller must check the file did not change meanwhile.
        (Handing `data` to a writer thread was measured: the copy it needs costs more than it saves.)"""
        length = len(data)
        cloned, copied = _from_file(source[0], source[1], pack.fd, offset, length) if source else (0, 0)
        if copied < length:
            pwrite_all(pack.fd, memoryview(data)[copied:], offset + copied)
        start_writeback(pack.fd, offset, length)
        self._written(pack)
        return cloned, copied

    def copy(self, pack: StagedPack, offset: int, length: int, src_fd: int, src_offset: int, path,
             kernel: bool = True, chunks: int = 1) -> int:
        """Write reserved chunks (back to back in the pack and in the file) from the file's bytes,
        unhashed (a trusted file): clone the block-aligned part, kernel-copy the rest, else read
        and write. Returns the bytes cloned. Raises PayloadError when the file ends early (the
        caller compares its identity afterwards anyway)."""
        cloned, done = _from_file(src_fd, src_offset, pack.fd, offset, length) if kernel else (0, 0)
        if done < length:
            buf = bytearray(min(COPY_BUFFER, length - done))
            while done < length:
                view = memoryview(buf)[: min(len(buf), length - done)]
                got = os.preadv(src_fd, [view], src_offset + done)
                if got == 0:
                    raise PayloadError(path, f"ended at byte {src_offset + done} while being snapshotted")
                pwrite_all(pack.fd, view[:got], offset + done)
                done += got
        start_writeback(pack.fd, offset, length)
        self._written(pack, chunks)
        return cloned

    def _written(self, pack: StagedPack, chunks: int = 1) -> None:
        with self.lock:
            pack.writing -= chunks
            if pack.full and pack.writing == 0:
                self.publishing.append(self.publisher.submit(self._publish, pack))

    def append(self, chunk_id: str, width: int, data) -> tuple[str, int]:
        """reserve + write, for a single writer."""
        with self.lock:
            pack, offset = self.reserve(chunk_id, width, len(data))
        self.write(pack, offset, data)
        return pack.pack_id, offset

    def _publish(self, pack: StagedPack) -> None:
        trailer = json.dumps(pack.entries, separators=(",", ":")).encode()
        tail = trailer + struct.pack("<Q", len(trailer)) + MAGIC
        pwrite_all(pack.fd, tail, pack.size)
        os.fsync(pack.fd)
        os.posix_fadvise(pack.fd, 0, 0, os.POSIX_FADV_DONTNEED)  # written and durable: leave the cache to the seeds
        os.close(pack.fd)
        pack.fd = -1
        self.backend.put_file(pack_name(pack.pack_id), pack.path)
        with self.lock:
            self.staged.remove(pack)
            self.published.append(pack)

    def _wait(self) -> None:
        """Wait for every publish; raise the first error."""
        error = None
        for fut in self.publishing:
            try:
                fut.result()
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after all have ended
                error = error or exc
        self.publishing.clear()
        if error is not None:
            raise error

    def finish(self) -> list[StagedPack]:
        """Publish the last pack; returns every pack this writer published."""
        with self.lock:
            last = self.current if self.current is not None and self.current.entries else None
            self.current = None
        if last is not None:
            self.publishing.append(self.publisher.submit(self._publish, last))
        self._wait()
        self.publisher.shutdown()
        self.abort()
        return list(self.published)

    def discard(self) -> None:
        """Drop everything this writer wrote, published packs too (no index names them yet)."""
        try:
            self._wait()
        except BaseException:  # noqa: BLE001 - cleaning up after a failure already raised
            pass
        self.publisher.shutdown()
        self.abort()
        for pack in self.published:
            self.backend.delete(pack_name(pack.pack_id))
        self.published.clear()

    def abort(self) -> None:
        """Drop staged, unpublished packs (published ones stay until prune: nothing names them)."""
        for pack in list(self.staged):
            if pack.fd >= 0:
                os.close(pack.fd)
                pack.fd = -1
            try:
                pack.path.unlink()
            except FileNotFoundError:
                pass
            self.staged.remove(pack)


def read_trailer(backend: Backend, name: str, size: int) -> list:
    """The pack's own list of [chunk_id, offset, length, width]."""
    if size < FOOTER:
        raise StoreCorrupt(backend.where, f"pack {name} is truncated")
    foot = backend.read_range(name, size - FOOTER, FOOTER)
    if foot[8:] != MAGIC:
        raise StoreCorrupt(backend.where, f"pack {name}: bad trailer magic")
    (length,) = struct.unpack("<Q", foot[:8])
    if length > size - FOOTER:
        raise StoreCorrupt(backend.where, f"pack {name}: bad trailer length")
    try:
        return json.loads(backend.read_range(name, size - FOOTER - length, length))
    except ValueError as exc:
        raise StoreCorrupt(backend.where, f"pack {name}: unreadable trailer") from exc


def _from_file(src_fd: int, src_offset: int, dst_fd: int, dst_offset: int, length: int) -> tuple[int, int]:
    """Place a range of a file in the pack in the kernel: clone its block-aligned part (reflinks),
    copy_file_range the rest. Returns (bytes cloned, bytes placed); the caller writes what is left."""
    cloned = 0
    head = length - length % ALIGN
    if head and clone_fd(src_fd, src_offset, dst_fd, dst_offset, head):
        cloned = head
    return cloned, cloned + copy_range(src_fd, src_offset + cloned, dst_fd, dst_offset + cloned, length - cloned)


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Have the kernel start writing these bytes to disk now (sync_file_range), so the pack's
    fsync at the end waits for little; a no-op where the call is missing."""
    if _sync_file_range is not None and length:
        _sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)


def write_behind(fd: int, offset: int, length: int, drop: bool = True) -> None:
    """Wait until these bytes (written a step earlier, writeback already started) are on disk
    and (drop) take them out of the page cache: a long stream of writes then keeps little dirty
    or cached memory, and the caller's final fsync has almost nothing left to do."""
    if _sync_file_range is not None and length:
        _sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE
                         | SYNC_FILE_RANGE_WAIT_AFTER)
        if drop:
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def _load_sync_file_range():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


SYNC_FILE_RANGE_WAIT_BEFORE = 1
SYNC_FILE_RANGE_WRITE = 2
SYNC_FILE_RANGE_WAIT_AFTER = 4
_sync_file_range = _load_sync_file_range()


def pwrite_all(fd: int, data, offset: int) -> None:
    view = memoryview(data)
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)
