"""Where the store keeps its files: a backend per storage kind (restic's model).

A backend stores named immutable files ("data/ab/<pack>", "index/<id>.json", ...). Packs are
built in a local staging folder and then published with `put_file`, so an object-store or
rclone backend only has to upload finished files. LocalBackend is a folder; RemoteBackend
(store/remote.py) any rclone remote (object storage shared by several hosts).
"""

import errno
import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path

from ..errors import Locked, StoreCorrupt
from ..manifests import atomic_write


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Backend:
    """The seam: everything the store needs from its storage."""

    where = ""  # for messages: the folder or URL

    def size(self, name: str) -> int:
        raise NotImplementedError

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def put_bytes(self, name: str, data: bytes) -> None:
        """Store a small file atomically (it is complete or absent after a crash)."""
        raise NotImplementedError

    def put_file(self, name: str, staged: Path) -> None:
        """Publish a finished, fsynced staging file under `name` (consumes it)."""
        raise NotImplementedError

    def get_bytes(self, name: str) -> bytes:
        raise NotImplementedError

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        raise NotImplementedError

    def list(self, folder: str) -> list[str]:
        """Names of the files under `folder` (recursively), staging files excluded."""
        raise NotImplementedError

    def delete(self, name: str) -> None:
        raise NotImplementedError

    def staging(self) -> Path:
        """A local folder for building packs before they are published."""
        raise NotImplementedError

    def local_path(self, name: str) -> Path | None:
        """The file's local path when it has one (reflinks, pread); None for remote backends."""
        return None

    def lock(self, timeout: float, exclusive: bool = True):
        """A context manager holding the store's lock. exclusive=False: a shared lock (writers that
        only add packs and index files may hold it together; prune, repair and forget need the
        exclusive one). A backend may treat every lock as exclusive (the local one does)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the backend holds (a remote backend's rclone process)."""


class LocalBackend(Backend):
    """A folder on a local (or locally mounted) filesystem."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.where = str(self.root)

    def exists(self, name: str) -> bool:
        return self._path(name).exists()

    def size(self, name: str) -> int:
        try:
            return self._path(name).stat().st_size
        except OSError as exc:
            raise StoreCorrupt(self.root, f"cannot stat {name}: {exc.strerror}") from exc

    def _path(self, name: str) -> Path:
        return self.root / name

    def put_bytes(self, name: str, data: bytes) -> None:
        atomic_write(self._path(name), data)

    def put_file(self, name: str, staged: Path) -> None:
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, path)
        fsync_dir(path.parent)

    def get_bytes(self, name: str) -> bytes:
        try:
            return self._path(name).read_bytes()
        except OSError as exc:
            raise StoreCorrupt(self.root, f"cannot read {name}: {exc.strerror}") from exc

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        try:
            fd = os.open(self._path(name), os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise StoreCorrupt(self.root, f"cannot open {name}: {exc.strerror}") from exc
        try:
            out = os.pread(fd, length, offset)  # one buffer, no zero-fill and no second copy
            if len(out) < length:
                parts = [out]
                done = len(out)
                while done < length:
                    more = os.pread(fd, length - done, offset + done)
                    if not more:
                        raise StoreCorrupt(self.root, f"{name} is shorter than {offset + length} bytes")
                    parts.append(more)
                    done += len(more)
                out = b"".join(parts)
            # Packs are cold data: leave the page cache to the payloads being seeded.
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
            return out
        except OSError as exc:
            raise StoreCorrupt(self.root, f"cannot read {name} at {offset}: {exc.strerror}") from exc
        finally:
            os.close(fd)

    def list(self, folder: str) -> list[str]:
        base = self._path(folder)
        if not base.exists():
            return []
        out = []
        for dirpath, _dirs, names in os.walk(base):
            for n in names:
                if n.startswith("."):
                    continue  # atomic_write's temp files
                out.append(str((Path(dirpath) / n).relative_to(self.root)))
        return sorted(out)

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink()
        except FileNotFoundError:
            pass

    def staging(self) -> Path:
        path = self.root / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def local_path(self, name: str) -> Path:
        return self._path(name)

    @contextmanager
    def lock(self, timeout: float = 600.0, exclusive: bool = True):
        # flock locks belong to the open file description: threads of one process exclude
        # each other too, and the kernel drops the lock when a crashed process dies.
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() > deadline:
                        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
                        raise Locked(self.root, holder) from exc
                    time.sleep(0.05)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
            yield
        finally:
            os.close(fd)
