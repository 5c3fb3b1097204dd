"""A whole file's SHA-256 in one sequential read (hashlib releases the GIL: two files hash on two cores)."""

import hashlib
from pathlib import Path

BUFFER = 4 * 1024 * 1024


def sha256_file(path: Path, limiter=None) -> str:
    """Hex SHA-256 of the file; `limiter` (scan.RateLimiter) caps the read rate. Raises OSError."""
    digest = hashlib.sha256()
    buf = bytearray(BUFFER)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            digest.update(view[:n])
            if limiter is not None:
                limiter.spend(n)
    return digest.hexdigest()
