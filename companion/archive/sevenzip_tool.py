"""The 7-Zip command (`7zz` from Debian's 7zip, else `7z` from 7zip or p7zip-full): AES-256 volumes
with header encryption, several times faster than py7zr (whose AES runs at about 140 MB/s here).

Volumes are checksummed with xxh3-128 (`volume_digest`, about 7 GB/s against SHA-256's 1.3 here): it
tells a damaged or swapped volume apart for PAR2 to repair; what proves the restored payload is each
member's SHA-256, checked end to end against the snapshot.

The passphrase goes to 7z on its stdin (7-Zip reads it from there when it asks for one), never on its
argv or in its environment. Member names come from a list file, matched literally (-spd: a `*` in a
file name is no wildcard). While 7z writes, `VolumeWatcher` hashes each volume 7z has moved past, so
the SHA-256 pass rides on the second core; volume 1 is hashed last, as 7z rewrites its start header
when it ends.
"""

import errno
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path

import xxhash

from ..childenv import child_env
from ..errors import BadInput, DiskFull
from ..scan import Cancelled
from ..store.pack import start_writeback
from .errors import ArchiveError, WrongPassphrase, says_disk_full

log = logging.getLogger(__name__)

COPY = ["-m0=Copy"]
LZMA2 = ["-m0=LZMA2", "-mx=3", "-ms=16m"]  # solid blocks of 16 MiB: damage stays contained
POLL_SECONDS = 0.05


def binary(setting: str = "auto") -> str | None:
    """The 7-Zip command to use, or None for py7zr. setting: "auto" (7zz, else 7z), "py7zr", or a path."""
    if setting == "py7zr":
        return None
    if setting and setting != "auto":
        found = shutil.which(setting)
        if found is None:
            raise BadInput(setting, "[archive] sevenzip: no such program")
        return found
    for name in ("7zz", "7z"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _env() -> dict:
    env = child_env("7z")
    env["LC_ALL"] = "C.UTF-8"  # names and passphrase as UTF-8, whatever the user's locale
    return env


def _passphrase_line(passphrase: str) -> bytes:
    if "\n" in passphrase or "\r" in passphrase:
        raise BadInput("archive passphrase", "contains a line break, which 7z cannot read; "
                       "use another passphrase or [archive] sevenzip = \"py7zr\"")
    return (passphrase + "\n").encode()


def volume_names(folder: Path, base: str) -> list[str]:
    """7-Zip's volumes of base.7z in order: base.7z.001, base.7z.002, ..."""
    found = []
    prefix = f"{base}.7z."
    for p in folder.iterdir():
        tail = p.name[len(prefix):] if p.name.startswith(prefix) else ""
        if tail.isdigit() and len(tail) >= 3:
            found.append((int(tail), p.name))
    return [name for _, name in sorted(found)]


def write(exe: str, root: Path, members: list[str], folder: Path, base: str, volume_size: int, passphrase: str,
          compress: bool, watcher: "VolumeWatcher | None" = None, threads: int = 2,
          binds: list[tuple[Path, Path]] = (), cancel: threading.Event | None = None) -> list[str]:
    """Archive `members` (paths relative to root, which become their names) as folder/base.7z.NNN.
    binds: (folder, mount point under root) pairs 7z sees read-only in a private mount namespace of
    its own (bwrap), so it reads seeding files in place under the names the set gives them (7-Zip
    refuses a path through a symlinked folder). volume_size 0: one file, folder/base.7z, to cut
    with `split` once its size is known. Returns the volume names."""
    folder.mkdir(parents=True, exist_ok=True)
    method = LZMA2 + [f"-mmt={threads}"] if compress else COPY
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=folder, prefix=f".{base}.", suffix=".list",
                                     delete=False) as lst:
        lst.write("".join(m + "\n" for m in members))
    cmd = [exe, "a", "-t7z", "-mhe=on", "-p", "-spd", "-scsUTF-8", "-bd", "-bso0", "-bsp0", "-y",
           *([f"-v{volume_size}b"] if volume_size else []), "-mtc=off", "-mta=off", *method, str(folder / f"{base}.7z"),
           f"@{lst.name}"]
    options = None
    try:
        if binds:
            # bwrap reads its options from a file descriptor: no argv limit for many torrents
            options = tempfile.TemporaryFile()
            args = ["--dev-bind", "/", "/", "--die-with-parent"]
            for src, dst in binds:
                args += ["--ro-bind", str(src), str(dst)]
            options.write(b"".join(a.encode() + b"\0" for a in args))
            options.flush()
            options.seek(0)
            cmd = [shutil.which("bwrap") or "bwrap", "--args", str(options.fileno()), "--", *cmd]
        _run(cmd, root, passphrase, f"7z a {base}", watch=(watcher, folder, base) if watcher else None,
             pass_fds=(options.fileno(),) if options else (), cancel=cancel, writes_to=folder)
    finally:
        os.unlink(lst.name)
        if options is not None:
            options.close()
    names = volume_names(folder, base) if volume_size else [f"{base}.7z"] * (folder / f"{base}.7z").is_file()
    if not names:
        raise ArchiveError(base, "7z wrote no volume")
    return names


def split(folder: Path, base: str, volume_size: int) -> list[str]:
    """Cut folder/base.7z into base.7z.001, .002, ... of volume_size bytes (a 7-Zip split: 7z and
    py7zr read them as the volumes 7z -v writes). The tail is copied off first, volume by volume,
    so the disk holds at most one volume more than the archive."""
    whole = folder / f"{base}.7z"
    size = whole.stat().st_size
    count = max(1, -(-size // volume_size))
    fd = os.open(whole, os.O_RDWR | os.O_CLOEXEC)
    try:
        for i in range(count - 1, 0, -1):
            offset = i * volume_size
            out = os.open(folder / f"{base}.7z.{i + 1:03d}", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                _copy_range(fd, out, offset, size - offset, whole)
            finally:
                os.close(out)
            os.ftruncate(fd, offset)
            size = offset
    finally:
        os.close(fd)
    os.rename(whole, folder / f"{base}.7z.001")
    return volume_names(folder, base)


def _copy_range(src: int, dst: int, at: int, left: int, what: Path) -> None:
    """Copy src's bytes [at, at + left) to dst's position: copy_file_range (the kernel copies, or
    shares the blocks), else read and write where the filesystem cannot."""
    kernel = True
    while left:
        if kernel:
            try:
                n = os.copy_file_range(src, dst, left, at)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                kernel = False
                continue
        else:
            data = os.pread(src, min(left, 4 << 20), at)
            n = len(data)
            view = memoryview(data)
            while view:
                view = view[os.write(dst, view):]
        if n == 0:
            raise ArchiveError(what.name, f"{what} ended before byte {at}")
        at, left = at + n, left - n


def extract(exe: str, folder: Path, first_volume: str, passphrase: str, dest: Path, set_id: str) -> None:
    """Decrypt and unpack every member under dest."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [exe, "x", "-y", "-bd", "-bso0", "-bsp0", "-spd", f"-o{dest}", str(folder / first_volume)]
    _run(cmd, folder, passphrase, f"7z x {first_volume}", set_id=set_id, writes_to=dest)


def _run(cmd: list[str], cwd: Path, passphrase: str, what: str, watch=None, set_id: str = "", pass_fds=(),
         cancel: threading.Event | None = None, writes_to: Path | None = None) -> None:
    line = _passphrase_line(passphrase)
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=_env(), pass_fds=pass_fds, start_new_session=True)
    except OSError as exc:
        raise ArchiveError(what, exc.strerror) from exc
    err = bytearray()
    reader = threading.Thread(target=lambda: err.extend(proc.stderr.read()), daemon=True)
    reader.start()
    try:
        try:
            proc.stdin.write(line)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # 7z did not ask (or failed first): its exit code says which
        while proc.poll() is None:
            if cancel is not None and cancel.is_set():
                raise Cancelled(what)
            if watch is not None:
                watch[0].scan(watch[1], watch[2], final=False)
            try:
                proc.wait(POLL_SECONDS)
            except subprocess.TimeoutExpired:
                pass
    except BaseException:
        kill_group(proc)
        raise
    finally:
        reader.join()
    if proc.returncode != 0:
        text = err.decode(errors="replace")
        if "Wrong password" in text and set_id:
            raise WrongPassphrase(set_id)
        if says_disk_full(text):
            raise DiskFull(writes_to or cwd)
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(("7-Zip", "p7zip"))]
        raise ArchiveError(what, (lines[-1] if lines else f"exit {proc.returncode}")[:300])


def kill_group(proc: subprocess.Popen) -> None:
    """End a child started in a session of its own, and whatever it started."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


DIGEST = "xxh3_128"  # the key of a volume's checksum in set.json (format 1 sets: "sha256")


def volume_digest(path: Path) -> str:
    h = xxhash.xxh3_128()
    buf = bytearray(4 << 20)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


class VolumeWatcher:
    """The checksum of each finished volume, on a thread of its own."""

    def __init__(self, on_volume=None):
        self.digests: dict[str, tuple[tuple[int, int], str]] = {}  # name -> ((size, mtime_ns), xxh3-128)
        self.on_volume = on_volume  # called with the name of each volume once it is final
        self._todo: list[Path] = []
        self._cv = threading.Condition()
        self._done = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="volume-sha256", daemon=True)
        self._thread.start()

    def scan(self, folder: Path, base: str, final: bool) -> None:
        """Queue the volumes of base that are final: all of them once 7z ended, else those 7z has
        moved past (never volume 1: 7z rewrites its start header last)."""
        names = volume_names(folder, base)
        ready = names if final else names[1:-1]
        with self._cv:
            for name in ready:
                path = folder / name
                if name not in self.digests and path not in self._todo:
                    self._todo.append(path)
            self._cv.notify()

    def finish(self, folder: Path, names: list[str]) -> dict[str, str]:
        """Wait for every volume's SHA-256 (re-hashing any that changed after it was hashed)."""
        with self._cv:
            for name in names:
                if name not in self.digests and folder / name not in self._todo:
                    self._todo.append(folder / name)
            self._done = True
            self._cv.notify()
        self._thread.join()
        if self._error is not None:
            raise self._error
        out = {}
        for name in names:
            stat, digest = self.digests[name]
            if _stat(folder / name) != stat:
                log.warning("volume %s changed after it was hashed; hashing it again", name)
                digest = volume_digest(folder / name)
            out[name] = digest
        return out

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._todo and not self._done:
                    self._cv.wait()
                if not self._todo:
                    return
                path = self._todo.pop(0)
            try:
                before = _stat(path)
                digest = volume_digest(path)
                _start_writeback(path)
                self.digests[path.name] = (before, digest)
                if self.on_volume is not None:
                    self.on_volume(path.name)
            except BaseException as exc:  # handed to finish()
                self._error = exc
                return


def _start_writeback(path: Path) -> None:
    """Start writing the finished volume to disk now: the sync before the upload then waits for little."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        start_writeback(fd, 0, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def _stat(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns)

