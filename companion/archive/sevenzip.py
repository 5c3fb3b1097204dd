"""Write and read a set's encrypted 7z volumes with py7zr (where the 7-Zip command is absent: see
sevenzip_tool).

AES-256 with header encryption (names hidden). Non-solid: every file of 256 KiB or more is a 7z block
of its own (damage stays contained), small files share the first block. LZMA2 preset 5 for
compressible data, copy for already-compressed media. Each block is one py7zr session ("w" for the
first, "a" after), which is how py7zr lets one archive mix methods.
"""

import functools
import hashlib
import io
import queue
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import py7zr
import py7zr.compressor

from .errors import ArchiveError
from .volumes import VolumeFile

# 7z derives the AES key with 2^19 SHA-256 rounds, and py7zr does it again for every block and for the
# header. With 7z's empty salt the key depends on the passphrase only, so remember it for the length of
# one archive operation (7-Zip keeps the same cache); `_forget_keys` drops it afterwards.
_derive_key = functools.lru_cache(maxsize=4)(py7zr.compressor.calculate_key)
py7zr.compressor.calculate_key = _derive_key


def _forget_keys() -> None:
    _derive_key.cache_clear()

LZMA2_AES = [{"id": py7zr.FILTER_LZMA2, "preset": 5}, {"id": py7zr.FILTER_CRYPTO_AES256_SHA256}]
COPY_AES = [{"id": py7zr.FILTER_COPY}, {"id": py7zr.FILTER_CRYPTO_AES256_SHA256}]
READ_BLOCK = 1 << 20
EXTRACT_WORKERS = 2  # readers unpacking members at once
SMALL_FILE = 256 * 1024
MEDIA = {
    ".mkv", ".mp4", ".m4v", ".avi", ".mov", ".webm", ".wmv", ".ts", ".m2ts", ".mpg", ".mpeg",
    ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac", ".wma",
    ".jpg", ".jpeg", ".png", ".gif", ".webp", ".heic", ".avif",
    ".zip", ".7z", ".rar", ".gz", ".bz2", ".xz", ".zst", ".iso", ".epub", ".pdf", ".cbz", ".cbr",
}


@dataclass
class Entry:
    """One member: read from `source`, or from `blocks()` (an iterator of bytes, e.g. store chunks)."""

    source: Path | None
    arcname: str
    size: int
    compress: bool
    sha256: str = ""
    blocks: Callable[[], Iterator[bytes]] | None = None
    expect_sha256: str | None = None  # checked once the member is read: a mismatch aborts the set


def is_compressible(path: Path, head=None, sample: int = 256 * 1024) -> bool:
    """Known media formats are stored; anything else is compressed if a sample shrinks by 10 %+.
    head: the file's first bytes, or a callable giving them (only read when the name says nothing)."""
    if path.suffix.lower() in MEDIA:
        return False
    if callable(head):
        head = head()
    if head is None:
        with open(path, "rb") as fh:
            head = fh.read(sample)
    head = head[:sample]
    if len(head) < 512:
        return True
    return len(zlib.compress(head, 1)) < 0.9 * len(head)


class _HashingReader(io.BufferedIOBase):
    """Reads a file once on a helper thread, hashing as it goes, so SHA-256 and AES use both cores."""

    def __init__(self, entry: Entry):
        super().__init__()
        self.entry = entry
        self.size = entry.size
        self.sha = hashlib.sha256()
        self._q: queue.Queue = queue.Queue(maxsize=8)
        self._buf = b""
        self._pos = 0
        self._seen = 0
        self._eof = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            for block in self.entry.blocks() if self.entry.blocks else _file_blocks(self.entry.source):
                self.sha.update(block)
                self._q.put(block)
        except BaseException as exc:  # handed to the reading thread
            self._error = exc
        self._q.put(None)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._seen

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        # py7zr seeks only to learn the size; the data itself is read front to back exactly once
        self._seen = {io.SEEK_SET: offset, io.SEEK_CUR: self._seen + offset, io.SEEK_END: self.size + offset}[whence]
        return self._seen

    def read(self, n: int = -1) -> bytes:
        if self._seen != self._pos:
            raise io.UnsupportedOperation("sequential reader: read after a seek elsewhere")
        out = []
        want = n if n >= 0 else 1 << 62
        while want > 0:
            if not self._buf:
                if self._eof:
                    break
                block = self._q.get()
                if block is None:
                    self._eof = True
                    if self._error:
                        raise self._error
                    break
                self._buf = block
            take = self._buf[:want]
            self._buf = self._buf[len(take):]
            out.append(take)
            want -= len(take)
        data = b"".join(out)
        self._pos += len(data)
        self._seen = self._pos
        return data

    def finish(self) -> str:
        self._thread.join()
        if self._error:
            raise self._error
        if self._pos != self.size:
            raise ArchiveError(self.entry.arcname, f"read {self._pos} bytes, expected {self.size} (it changed while archiving)")
        digest = self.sha.hexdigest()
        if self.entry.expect_sha256 and digest != self.entry.expect_sha256:
            raise ArchiveError(self.entry.arcname, "does not match its snapshot's SHA-256")
        return digest


def _file_blocks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while block := fh.read(READ_BLOCK):
            yield block


def _blocks(entries: list[Entry]) -> list[list[Entry]]:
    """Small files share the first block (one LZMA2 stream); every other file is a block of its own.

    Only the first py7zr session may hold several files (a multi-file append is not reliable in py7zr),
    and each append re-reads the header, so many small files are kept out of the appends."""
    small = [e for e in entries if e.size < SMALL_FILE]
    blocks = [[e] for e in entries if e.size >= SMALL_FILE]
    return [small] + blocks if small else blocks


def write_archive(entries: list[Entry], folder: Path, base: str, volume_size: int, passphrase: str,
                  trailer=None) -> list[str]:
    """Write the entries as base.7z.001, ... under folder; fills each entry's sha256. `trailer()`, called
    once every entry is hashed, gives a last (name, bytes) member. Returns the volume names."""
    folder.mkdir(parents=True, exist_ok=True)
    empty = folder / f".{base}.empty"
    vf = VolumeFile(folder, base, volume_size, "w")
    try:
        for i, block in enumerate(_blocks(entries) or [[]]):
            vf.seek(0)
            filters = LZMA2_AES if (not block or len(block) > 1 or block[0].compress) else COPY_AES
            with py7zr.SevenZipFile(vf, "w" if i == 0 else "a", filters=filters, password=passphrase,
                                    header_encryption=True) as z:
                for e in block:
                    if e.size == 0:
                        empty.touch()
                        z.write(empty, e.arcname)  # py7zr marks an empty file only this way
                        e.sha256 = hashlib.sha256(b"").hexdigest()
                        continue
                    reader = _HashingReader(e)
                    z.writef(reader, e.arcname)
                    e.sha256 = reader.finish()
        if trailer is not None:
            name, data = trailer()
            vf.seek(0)
            with py7zr.SevenZipFile(vf, "a", filters=LZMA2_AES, password=passphrase, header_encryption=True) as z:
                z.writestr(data, name)
        vf.seek(12)
        next_offset, next_size = struct.unpack("<QQ", vf.read(16))
        vf.truncate(32 + next_offset + next_size)  # an append may leave an old, longer header behind
        vf.fsync()
        return vf.names
    finally:
        vf.close()
        empty.unlink(missing_ok=True)
        _forget_keys()


def extract_archive(folder: Path, volumes: list[str], volume_size: int, passphrase: str, dest: Path,
                    workers: int = EXTRACT_WORKERS) -> None:
    """Decrypt and unpack every member under dest (py7zr refuses unsafe member paths). Members are
    shared out, biggest first, among `workers` readers of their own (AES and the copy release the
    GIL, so two readers use two cores); a member in a block with others may cost a reader that
    block's earlier bytes, which only small files share."""
    try:
        vf = VolumeFile(folder, "", volume_size, "r", volumes)
        try:
            with py7zr.SevenZipFile(vf, "r", password=passphrase) as z:
                members = sorted(((m.uncompressed, m.filename) for m in z.list()), reverse=True)
        finally:
            vf.close()
        groups: list[list[str]] = [[] for _ in range(max(1, min(workers, len(members))))]
        loads = [0] * len(groups)
        for size, name in members:
            i = loads.index(min(loads))
            groups[i].append(name)
            loads[i] += size or 0
        errors: list[BaseException] = []

        def extract(names: list[str]) -> None:
            reader = VolumeFile(folder, "", volume_size, "r", volumes)
            try:
                with py7zr.SevenZipFile(reader, "r", password=passphrase) as z:
                    z.extract(path=dest, targets=names)
            except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
                errors.append(exc)
            finally:
                reader.close()

        threads = [threading.Thread(target=extract, args=(g,), name="7z-extract") for g in groups[1:]]
        for t in threads:
            t.start()
        extract(groups[0])
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
    finally:
        _forget_keys()

