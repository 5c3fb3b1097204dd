"""7z archives split into fixed-size volumes (`name.7z.001`, `.002`, ...), as 7-Zip splits them.

7-Zip's volumes are plain byte ranges of one .7z file, so `VolumeFile` presents a volume set as one
seekable file and py7zr writes and reads through it: no second copy of the archive is ever made.
"""

import io
import os
from pathlib import Path


def volume_name(base: str, index: int) -> str:
    """The 7-Zip name of volume `index` (0-based): base.7z.001, base.7z.002, ..."""
    return f"{base}.7z.{index + 1:03d}"


class VolumeFile(io.RawIOBase):
    """Read/write/seek over volumes of `volume_size` bytes each (the last one may be shorter).

    Mode "w" creates the volumes under `folder` as writes reach them; mode "r" opens the given names.
    """

    def __init__(self, folder: Path, base: str, volume_size: int, mode: str = "r", names: list[str] | None = None):
        super().__init__()
        if volume_size < 4096:
            raise ValueError("volume size below 4 KiB")
        self.folder = Path(folder)
        self.base = base
        self.volume_size = volume_size
        self.mode = mode
        self._files: list = []
        self._pos = 0
        self._end = 0
        if mode == "r":
            for name in names or []:
                self._files.append(open(self.folder / name, "rb"))
            sizes = [os.fstat(f.fileno()).st_size for f in self._files]
            for size in sizes[:-1]:
                if size != volume_size:
                    raise ValueError(f"volume of {size} bytes, expected {volume_size}")
            self._end = sum(sizes)
        elif mode != "w":
            raise ValueError(f"mode {mode!r}")

    @property
    def names(self) -> list[str]:
        return [Path(f.name).name for f in self._files]

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return self.mode == "w"

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence == io.SEEK_END:
            offset += self._end
        if offset < 0:
            raise ValueError("negative seek position")
        self._pos = offset
        return offset

    def _volume(self, index: int):
        while index >= len(self._files):
            if self.mode != "w":
                raise EOFError
            self._files.append(open(self.folder / volume_name(self.base, len(self._files)), "w+b"))
        return self._files[index]

    def readinto(self, buf) -> int:
        view = memoryview(buf).cast("B")
        done = 0
        while done < len(view) and self._pos < self._end:
            index, inner = divmod(self._pos, self.volume_size)
            fh = self._volume(index)
            fh.seek(inner)
            want = min(len(view) - done, self.volume_size - inner, self._end - self._pos)
            got = fh.readinto(view[done:done + want])
            if not got:
                break
            done += got
            self._pos += got
        return done

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            index, inner = divmod(self._pos, self.volume_size)
            fh = self._volume(index)
            fh.seek(inner)
            n = min(len(view) - done, self.volume_size - inner)
            fh.write(view[done:done + n])
            done += n
            self._pos += n
            self._end = max(self._end, self._pos)
        return done

    def truncate(self, size: int | None = None) -> int:
        """Cut the set at `size`: later volumes are removed."""
        size = self._pos if size is None else size
        keep = max(1, -(-size // self.volume_size))
        for fh in self._files[keep:]:
            fh.close()
            os.unlink(fh.name)
        del self._files[keep:]
        self._files[-1].truncate(size - (keep - 1) * self.volume_size)
        self._end = size
        return size

    def flush(self) -> None:
        for fh in self._files:
            if not fh.closed:
                fh.flush()

    def fsync(self) -> None:
        for fh in self._files:
            fh.flush()
            os.fsync(fh.fileno())

    def close(self) -> None:
        if not self.closed:
            for fh in self._files:
                fh.close()
        super().close()
