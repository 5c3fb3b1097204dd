"""SHA-256 of every restored file against the catalog: one read pass, both cores."""

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

BUFFER = 4 * 1024 * 1024


@dataclass
class Expected:
    path: str  # as the torrent lays it out (libtorrent's path)
    size: int
    sha256: str | None  # None: the catalog has no trusted hash for it


@dataclass
class VerifyResult:
    bad_files: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    bytes: int = 0
    seconds: float = 0.0


class RateLimit:
    """A shared bytes-per-second budget for the hashing threads (0: unlimited)."""

    def __init__(self, bytes_per_second: float):
        self.rate = bytes_per_second
        self.start = time.monotonic()
        self.spent = 0

    def take(self, n: int) -> None:
        if not self.rate:
            return
        self.spent += n
        ahead = self.spent / self.rate - (time.monotonic() - self.start)
        if ahead > 0:
            time.sleep(ahead)


def _hash_file(path: Path, size: int, limit: RateLimit) -> str | None:
    """The file's SHA-256, or None when it is missing or not the expected size."""
    try:
        if path.stat().st_size != size:
            return None
        digest = hashlib.sha256()
        with open(path, "rb", buffering=0) as fh:
            buf = bytearray(BUFFER)
            view = memoryview(buf)
            while n := fh.readinto(buf):
                digest.update(view[:n])  # hashlib releases the GIL: two files hash on two cores
                limit.take(n)
        return digest.hexdigest()
    except OSError:
        return None


def verify_files(root: Path, expected: list[Expected], read_rate: float = 0.0, workers: int = 2,
                 known: dict[str, str] | None = None) -> VerifyResult:
    """Hash every expected file under root; bad_files lists those that differ or are missing.
    known: path -> SHA-256 already computed from the bytes written (the store's restore hashes
    each file as it writes it): those files are compared, not read again."""
    started = time.monotonic()
    result = VerifyResult()
    limit = RateLimit(read_rate)
    known = known or {}
    # biggest first, so the two workers finish together
    todo = sorted(expected, key=lambda e: -e.size)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        digests = list(pool.map(lambda e: known.get(e.path) or _hash_file(root / e.path, e.size, limit), todo))
    for entry, digest in zip(todo, digests):
        if entry.sha256 is None:
            result.unverified.append(entry.path)
        elif digest != entry.sha256:
            result.bad_files.append(entry.path)
        if digest is not None:
            result.bytes += entry.size
    result.bad_files.sort()
    result.unverified.sort()
    result.seconds = time.monotonic() - started
    return result
