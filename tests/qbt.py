"""Helpers for tests against the real qbittorrent-nox (the `qbt` fixture in conftest.py)."""

from pathlib import Path

from .helpers import make_torrent, write_payload


def seed_sample(qbt, root: Path, name: str, files: dict | None = None, *, seed: int = 1, kind: str = "hybrid",
                piece_size: int = 16384, wait: bool = True, **options) -> tuple[str, Path]:
    """Write a small payload under root/name, make its torrent and add it to qBittorrent
    (complete, seeding). Returns (qBittorrent's hash, the .torrent path)."""
    files = files or {"a.bin": 40_000, "sub/b.bin": 25_000}
    content = write_payload(root / name, files, seed=seed)
    torrent = make_torrent(content, piece_size=piece_size, kind=kind, out=root / f"{name}.torrent")
    return qbt.add_torrent(torrent, root, wait=wait, **options), torrent
