"""Payload files as the source of a snapshot's chunks (clones and in-kernel copies), checked
for changes while they are read."""

import os
import threading
from pathlib import Path

from ..scan import resolve_payload_path
from ..torrent import FileEntry
from .results import SnapshotRefused
from .trusted import identity


def contiguous(run: list) -> list:
    """(pack, pack offset, file offset, length) reservations -> (pack, pack offset, file offset,
    length, chunks) runs that are back to back in both the pack and the file."""
    out: list = []
    for pack, at, offset, length in run:
        if out:
            p, a, o, n, c = out[-1]
            if p is pack and a + n == at and o + n == offset:
                out[-1] = (p, a, o, n + length, c + 1)
                continue
        out.append((pack, at, offset, length, 1))
    return out


def pread_all(fd: int, offset: int, length: int, path) -> bytes:
    data = os.pread(fd, length, offset)
    while len(data) < length:
        more = os.pread(fd, length - len(data), offset + len(data))
        if not more:
            raise SnapshotRefused(path, f"ended at byte {offset + len(data)} while being snapshotted; no snapshot"
                                  " stored (try again)")
        data += more
    return data




class CloneSources:
    """Payload files opened to clone (reflinks) or kernel-copy chunks into packs. Both take what
    the file holds now, not the bytes the scan hashed, so each file's identity and ctime are
    taken before the scan and compared after it: any write in between refuses the snapshot."""

    def __init__(self, save_path: Path, entries: dict[int, FileEntry]):
        self.paths = {i: resolve_payload_path(save_path, e) for i, e in entries.items()}
        self.before = {i: identity(p) for i, p in self.paths.items()}
        self.fds: dict[int, int | None] = {}
        self.copied: dict[int, int] = {}  # file index -> bytes cloned or copied from it
        self.cloned = 0
        self.lock = threading.Lock()

    def fd(self, file_index: int) -> int | None:
        with self.lock:
            if file_index not in self.fds:
                try:
                    fd = os.open(self.paths[file_index], os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    fd = None
                if fd is not None and self.before.get(file_index) != identity(self.paths[file_index]):
                    os.close(fd)
                    fd = None
                self.fds[file_index] = fd
            return self.fds[file_index]

    def used(self, file_index: int, cloned: int, copied: int) -> None:
        with self.lock:
            self.cloned += cloned
            self.copied[file_index] = self.copied.get(file_index, 0) + copied

    def changed(self) -> str | None:
        for i in self.copied:
            if identity(self.paths[i]) != self.before[i]:
                return str(self.paths[i])
        return None

    def close(self) -> None:
        for fd in self.fds.values():
            if fd is not None:
                os.close(fd)
        self.fds.clear()
