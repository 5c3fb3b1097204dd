"""One error tree. Each error carries its exit code; only cli.main exits.

Exit codes (documented in the README):
  0 ok, 1 damage found / a check failed, 2 bad input or error,
  3 service not running, 4 qBittorrent unreachable or refused us,
  5 store corrupt, 6 disk full, 11 locked, 13 a remote (archive or store) unreachable or refusing.
"""

import errno
import os
from contextlib import contextmanager

EXIT_OK = 0
EXIT_DAMAGE = 1
EXIT_ERROR = 2
EXIT_NO_SERVICE = 3
EXIT_QBT = 4
EXIT_STORE_CORRUPT = 5
EXIT_DISK_FULL = 6
EXIT_LOCKED = 11
EXIT_REMOTE = 13


class Error(Exception):
    """Error: {}"""

    exit_code = EXIT_ERROR

    def __init__(self, *args):
        super().__init__(*args)
        self.args = args

    def message(self) -> str:
        return self.__doc__.format(*self.args)

    def __str__(self) -> str:
        return self.message()


class BadInput(Error):
    """{}: {}"""


class BadTorrent(BadInput):
    """{}: not a valid torrent: {}"""


class UnsafePath(BadInput):
    """{}: unsafe path in torrent or payload: {}"""


class PayloadError(BadInput):
    """{}: {}"""


class ConfigError(Error):
    """{}: bad configuration: {}"""


class NotFound(Error):
    """{}"""


class Ambiguous(Error):
    """{}"""


class ServiceNotRunning(Error):
    """the seedward service is not running ({}); start it with `seedward serve`"""

    exit_code = EXIT_NO_SERVICE


class QbtError(Error):
    """qBittorrent at {}: {}"""

    exit_code = EXIT_QBT


class StoreCorrupt(Error):
    """store {}: {}"""

    exit_code = EXIT_STORE_CORRUPT


class Locked(Error):
    """{} is locked by {}"""

    exit_code = EXIT_LOCKED


class StoreUnreachable(Error):
    """store {}: the remote cannot be reached or refused: {}"""

    # not StoreCorrupt: an outage says nothing about the stored bytes (a check must not call them bad)
    exit_code = EXIT_REMOTE


class DiskFull(Error):
    """{}: no space left on the device ({})"""

    exit_code = EXIT_DISK_FULL

    def __init__(self, path, needed: int | None = None):
        self.path = os.fspath(path)
        self.needed = needed
        self.free = free_bytes(self.path)
        want = f"needs {human_bytes(needed)}" if needed else "needs more"
        super().__init__(self.path, f"{want}, {human_bytes(self.free)} free" if self.free is not None else want)

    def space_returned(self) -> bool:
        """Is there room again for what failed (or, needed unknown, at least 1% of the filesystem)?"""
        try:
            st = os.statvfs(existing_parent(self.path))
        except OSError:
            return False
        free = st.f_bavail * st.f_frsize
        return free >= (self.needed or max(1 << 20, st.f_blocks * st.f_frsize // 100))


@contextmanager
def disk_full_as(path, needed=None):
    """ENOSPC/EDQUOT inside becomes DiskFull(path, needed) (needed: bytes, or a callable giving them)."""
    try:
        yield
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        raise DiskFull(path, needed() if callable(needed) else needed) from exc


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC or EDQUOT from the OS, or SQLite's full disk."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # SQLite: SQLITE_FULL, or no room to grow the WAL index (-shm) it maps
    return getattr(exc, "sqlite_errorname", "") in ("SQLITE_FULL", "SQLITE_IOERR_SHMSIZE") or (
        type(exc).__name__ == "OperationalError" and "disk is full" in str(exc))


def existing_parent(path) -> str:
    path = os.path.abspath(os.fspath(path))
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def free_bytes(path) -> int | None:
    try:
        st = os.statvfs(existing_parent(path))
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def human_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
