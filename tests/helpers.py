"""Real payloads and real torrents for tests (libtorrent and mktorrent make them)."""

import os
import shutil
import subprocess
from pathlib import Path

import libtorrent as lt

from companion.torrent import list_files

KINDS = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only, "hybrid": 0}


def write_payload(root: Path, files: dict[str, int | bytes], seed: int = 1) -> Path:
    """Create files (name -> size or content) under root; returns root."""
    import random

    rnd = random.Random(seed)
    for name, spec in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = spec if isinstance(spec, bytes) else rnd.randbytes(spec)
        path.write_bytes(data)
    return root


def make_torrent(content: Path, piece_size: int = 16384, kind: str = "hybrid", out: Path | None = None,
                 trackers=(), private: bool = False) -> Path:
    """Make a .torrent of `content` (file or folder) with libtorrent; returns its path."""
    content = Path(content)
    ct = lt.create_torrent(list_files(content), piece_size, KINDS[kind])
    for url in trackers:
        ct.add_tracker(url)
    if private:
        ct.set_priv(True)
    lt.set_piece_hashes(ct, str(content.parent))
    out = out or content.parent / f"{content.name}.{kind}.torrent"
    out.write_bytes(lt.bencode(ct.generate()))
    return out


def make_mktorrent(content: Path, piece_size: int = 16384, out: Path | None = None) -> Path:
    """Make a v1 .torrent with the independent mktorrent (Debian package)."""
    exe = shutil.which("mktorrent")
    if exe is None:
        raise RuntimeError("mktorrent is not installed (./quickstart test installs it)")
    out = out or content.parent / f"{content.name}.mktorrent.torrent"
    if out.exists():
        out.unlink()
    exp = piece_size.bit_length() - 1
    subprocess.run([exe, "-l", str(exp), "-a", "http://127.0.0.1:1/announce", "-o", str(out), str(content)],
                   check=True, capture_output=True)
    return out


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 0xFF]))


def seedward(*args, home: Path, check=False, input=None, env=None) -> subprocess.CompletedProcess:
    """Run the real `seedward` console script."""
    exe = shutil.which("seedward") or str(Path(os.sys.executable).parent / "seedward")
    full_env = dict(os.environ, SEEDWARD_HOME=str(home), **(env or {}))
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, check=check, input=input,
                          env=full_env, timeout=600)


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.1, what: str = "condition"):
    """Poll until predicate() is truthy; returns its value. Fails the test on timeout (not a timing assertion)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def without_file_privileges() -> list[str] | None:
    """A command prefix under which root's permission bits apply (CAP_DAC_* dropped, uid kept, so
    the venv stays reachable wherever the checkout lives); [] when not root; None without setpriv."""
    if os.geteuid() != 0:
        return []
    exe = shutil.which("setpriv")
    if exe is None:
        return None
    return [exe, "--inh-caps=-all", "--bounding-set=-all"]


def stop_process(proc: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM, then SIGKILL if it has not ended within `grace` seconds (a test's `seedward serve`)."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def payload_reads(monkeypatch, forbid: bool = False) -> list[str]:
    """The names of the payload files the engine reads from now on, on every read path (the full
    scan's and the quick rescan's read_at, Resolver.read_small for small files); forbid: any read
    fails."""
    import companion.quickscan
    import companion.scan
    from companion.payload_io import Resolver

    seen: list[str] = []
    real, real_small = companion.scan.read_at, Resolver.read_small

    def note(name: str) -> None:
        if forbid:
            raise AssertionError(f"payload bytes were read: {name}")
        seen.append(name)

    def counting(fd, view, offset, path):
        note(Path(path).name)
        return real(fd, view, offset, path)

    def counting_small(self, rel, size, view, when):
        note(Path(rel).name)
        return real_small(self, rel, size, view, when)

    monkeypatch.setattr(companion.scan, "read_at", counting)
    monkeypatch.setattr(companion.quickscan, "read_at", counting)
    monkeypatch.setattr(Resolver, "read_small", counting_small)
    return seen
