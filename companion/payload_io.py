"""Opening a torrent's files where libtorrent places them, safely.

Every payload path is checked to stay inside the save path (symlinks in the payload are
followed only when they resolve inside it); a FIFO, device or socket is refused without being
read or blocked on: read_small opens without following links and without blocking and looks at
the fstat of what it opened; the careful open() does lstat first, then the same open and fstat;
BEP 47 symlink entries are checked with lstat/readlink and never opened.
"""

import os
import stat as stat_mod
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import PayloadError, UnsafePath
from .torrent import FileEntry

OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
SMALL_FLAGS = OPEN_FLAGS | os.O_NOFOLLOW  # read_small: a link swapped in fails, open() then resolves it
S_ISREG = stat_mod.S_ISREG


@dataclass(slots=True, unsafe_hash=True)  # not frozen: a frozen init costs 4x, per file of 100,000
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


def kind_of(mode: int) -> str:
    """'a FIFO', 'a socket', ... for a mode that is not a regular file."""
    for test, name in ((stat_mod.S_ISDIR, "a directory"), (stat_mod.S_ISFIFO, "a FIFO"),
                       (stat_mod.S_ISCHR, "a character device"), (stat_mod.S_ISBLK, "a block device"),
                       (stat_mod.S_ISSOCK, "a socket"), (stat_mod.S_ISLNK, "a symlink")):
        if test(mode):
            return name
    return "not a regular file"


def _not_a_file(path, mode: int) -> PayloadError:
    if stat_mod.S_ISDIR(mode):
        return PayloadError(path, "is a directory where a file should be")
    return PayloadError(path, f"is {kind_of(mode)} where a file should be (not opened)")


def check_save_path(save_path) -> Path:
    save_path = Path(save_path)
    if not save_path.exists():
        raise PayloadError(save_path, "save path does not exist")
    if not save_path.is_dir():
        raise PayloadError(save_path, "save path is not a directory")
    return save_path


def resolve_payload_path(save_path: Path, entry: FileEntry) -> Path:
    """The file's path under save_path; refuses anything that resolves outside it."""
    base = os.path.realpath(save_path)
    path = Path(save_path) / entry.path
    real = os.path.realpath(path.parent if entry.symlink is not None else path)
    if real != base and not real.startswith(base.rstrip(os.sep) + os.sep):
        raise UnsafePath(path, f"resolves outside the save path to {real}")
    return path


class Resolver:
    """Payload paths under one save path, the folders' real paths cached (one lstat per file
    instead of one per path element: what makes 100,000-file torrents cheap)."""

    def __init__(self, save_path):
        self.save = str(save_path)
        self.lead = self.save.rstrip(os.sep) + os.sep
        self.base = os.path.realpath(save_path)
        self.prefix = self.base.rstrip(os.sep) + os.sep
        self.folders: dict[str, str] = {}
        self.devices: dict[int, int] = {}  # one int object per device: 100,000 stats stay small

    def inside(self, real: str) -> bool:
        return real == self.base or real.startswith(self.prefix)

    def path(self, rel: str) -> str:
        """The path to open for `rel`; its folders checked to stay inside the save path."""
        folder = rel.rpartition("/")[0]
        if folder not in self.folders:
            real = os.path.realpath(self.lead + folder) if folder else self.base
            if not self.inside(real):
                raise UnsafePath(self.lead + rel, f"resolves outside the save path to {real}")
            self.folders[folder] = real
        return self.lead + rel

    def open(self, rel: str, size: int = -1, seen: int = 0) -> tuple[int | None, FileStat | None, str]:
        """(fd, stat, path) of a payload file, fd and stat None when it is missing. Raises
        PayloadError for anything but a regular file, UnsafePath for a way out. size: the
        size the torrent says (its int is shared when equal); seen: a clock reading taken
        before this call (default: now)."""
        path = self.path(rel)
        seen = seen or time.time_ns()
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None, None, path
        except NotADirectoryError:
            return None, None, path  # a file where a folder of the path should be: this file is not there
        except OSError as exc:
            raise PayloadError(path, exc.strerror or str(exc)) from exc
        if stat_mod.S_ISLNK(st.st_mode):
            real = os.path.realpath(path)
            if not self.inside(real):
                raise UnsafePath(path, f"resolves outside the save path to {real}")
            try:
                st = os.stat(path)
            except FileNotFoundError:
                return None, None, path
            except OSError as exc:
                raise PayloadError(path, exc.strerror or str(exc)) from exc
        if not stat_mod.S_ISREG(st.st_mode):
            raise _not_a_file(path, st.st_mode)
        try:
            fd = os.open(path, OPEN_FLAGS)
        except FileNotFoundError:
            return None, None, path
        except PermissionError as exc:
            raise PayloadError(path, "permission denied") from exc
        except OSError as exc:
            raise PayloadError(path, exc.strerror or str(exc)) from exc
        try:
            st = os.fstat(fd)
        except OSError as exc:
            os.close(fd)
            raise PayloadError(path, exc.strerror or str(exc)) from exc
        if not stat_mod.S_ISREG(st.st_mode):  # swapped between the lstat and the open
            os.close(fd)
            raise _not_a_file(path, st.st_mode)
        return fd, self.stat_of(st, size, seen), path

    def stat_of(self, st: os.stat_result, size: int, seen: int) -> FileStat:
        """A FileStat that shares ints where it can (100,000 stats stay small): the device, the
        torrent's size when equal, ctime when it is mtime."""
        dev = self.devices.setdefault(st.st_dev, st.st_dev)
        got = size if st.st_size == size else st.st_size
        mtime, ctime = st.st_mtime_ns, st.st_ctime_ns
        if ctime == mtime:
            ctime = mtime  # one int object for both
        return FileStat(got, mtime, st.st_ino, dev, st.st_nlink, ctime, seen)

    def read_small(self, rel: str, size: int, view: memoryview, seen: int) -> FileStat | None:
        """A regular file of `size` bytes read whole into `view` with no fuss: its stat, or None
        for anything else (missing, a link, another size, an error: open() then says what). The
        same checks as open(), in one tight path: 100,000 small files are mostly system calls."""
        path = self.path(rel)
        try:
            fd = os.open(path, SMALL_FLAGS)  # non-blocking, links not followed: nothing can hang it
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if st.st_size != size or not S_ISREG(st.st_mode) or os.preadv(fd, [view], 0) != size:
                return None
        except OSError:
            return None
        finally:
            os.close(fd)
        return self.stat_of(st, size, seen)

    def link(self, entry: FileEntry) -> tuple[str, FileStat | None]:
        """A BEP 47 symlink entry: ('ok' | 'missing' | 'damaged', lstat). 'damaged' when the
        path is not a symlink or points elsewhere than the torrent says. Never followed."""
        path = self.path(entry.path)
        seen = time.time_ns()
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return "missing", None
        except OSError as exc:
            raise PayloadError(path, exc.strerror or str(exc)) from exc
        stat = FileStat.of(st, seen)
        if not stat_mod.S_ISLNK(st.st_mode):
            return "damaged", stat
        try:
            target = os.readlink(path)
        except OSError as exc:
            raise PayloadError(path, exc.strerror or str(exc)) from exc
        return ("ok" if target == entry.link_target else "damaged"), stat


def read_at(fd: int, view: memoryview, offset: int, path) -> int:
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


def advise(fd: int, offset: int = 0, length: int = 0, how: int = getattr(os, "POSIX_FADV_SEQUENTIAL", 2)) -> None:
    try:
        os.posix_fadvise(fd, offset, length, how)
    except (AttributeError, OSError):
        pass  # advice only
