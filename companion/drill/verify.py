"""SHA-256 of every restored file against the catalog: one read pass, both cores; BEP 47 link
entries checked as links (readlink, never followed)."""

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..filehash import sha256_file
from ..scan import RateLimiter


@dataclass
class Expected:
    path: str  # as the torrent lays it out (libtorrent's path)
    size: int
    sha256: str | None  # None: the catalog has no trusted hash for it
    link: str | None = None  # a BEP 47 link entry: what readlink() must say (checked as a link, never read)


@dataclass
class VerifyResult:
    bad_files: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    bytes: int = 0
    seconds: float = 0.0


def _hash_file(path: Path, size: int, limit: RateLimiter) -> str | None:
    """The file's SHA-256, or None when it is missing or not the expected size."""
    try:
        if path.stat().st_size != size:
            return None
        return sha256_file(path, limit)
    except OSError:
        return None


def _link_ok(path: Path, target: str) -> bool:
    """The path is a symlink (not followed) saying exactly target."""
    try:
        return os.readlink(path) == target
    except OSError:  # missing, or not a link
        return False


def verify_files(root: Path, expected: list[Expected], read_rate: float = 0.0, workers: int = 2,
                 known: dict[str, str] | None = None, progress=None) -> VerifyResult:
    """Hash every expected file under root; bad_files lists those that differ or are missing.
    known: path -> SHA-256 already computed from the bytes written (the store's restore hashes
    each file as it writes it): those files are compared, not read again. progress(n): n more
    bytes done (from the hashing threads)."""
    started = time.monotonic()
    result = VerifyResult()
    limit = RateLimiter(read_rate)
    known = known or {}
    # biggest first, so the two workers finish together
    todo = sorted(expected, key=lambda e: -e.size)
    def digest(e: Expected):
        if e.link is not None:
            return _link_ok(root / e.path, e.link)
        value = known.get(e.path) or _hash_file(root / e.path, e.size, limit)
        if progress is not None:
            progress(e.size)
        return value

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        digests = list(pool.map(digest, todo))
    for entry, digest in zip(todo, digests):
        if entry.link is not None:
            if not digest:
                result.bad_files.append(entry.path)
            continue
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
