"""The quickstart demo: sample payloads and torrents, then seedward at work on them."""

import random
import tempfile
from pathlib import Path

import libtorrent as lt

from .scan import Scanner
from .torrent import load_torrent


def make_sample(root: Path, name: str = "Sample Album", files=None, piece_size: int = 64 * 1024,
                kind: str = "hybrid", seed: int = 7) -> tuple[Path, Path]:
    """A small payload with a few files and its torrent. Returns (content dir, .torrent)."""
    files = files or {"01 - Intro.flac": 700_000, "02 - Theme.flac": 1_300_000, "cover.jpg": 90_000}
    rnd = random.Random(seed)
    content = root / "downloads" / name
    content.mkdir(parents=True, exist_ok=True)
    for fname, size in files.items():
        (content / fname).write_bytes(rnd.randbytes(size))
    flags = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only, "hybrid": 0}[kind]
    ct = lt.create_torrent(lt.list_files(str(content)), piece_size, flags)
    lt.set_piece_hashes(ct, str(content.parent))
    torrent = root / f"{name}.torrent"
    torrent.write_bytes(lt.bencode(ct.generate()))
    return content, torrent


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def offline_demo(root: Path) -> int:
    """Check a sample payload intact, then after one flipped byte."""
    from .cli.check_cmd import print_report

    content, torrent = make_sample(root)
    meta = load_torrent(torrent)
    scanner = Scanner()
    say(f"seedward check {torrent.name} (intact payload)")
    print_report(scanner.full_scan(meta, content.parent))
    victim = content / "02 - Theme.flac"
    with open(victim, "r+b") as fh:
        fh.seek(200_000)
        b = fh.read(1)
        fh.seek(200_000)
        fh.write(bytes([b[0] ^ 0xFF]))
    say(f"one byte flipped in '{victim.name}' at offset 200000: seedward check again")
    result = scanner.full_scan(meta, content.parent)
    print_report(result)
    return 0 if not result.ok else 1


def run_demo(workdir: Path | None = None) -> int:
    with tempfile.TemporaryDirectory(prefix="seedward-demo-") as tmp:
        root = Path(workdir or tmp)
        return offline_demo(root)
