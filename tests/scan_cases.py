"""Payload layouts, damages and expectations for the engine tests (independent of companion's code).

Expected bad pieces come from the changed byte ranges and libtorrent's own file layout, not from
companion.piece_plan, so a bug in the piece plan cannot hide itself.
"""

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import libtorrent as lt

from tests.helpers import make_mktorrent, make_torrent, write_payload

KIB, MIB = 1024, 1024 * 1024
NAME = "Album"
UNICODE = "Ünïcødé – 東京 01.flac"


def multi_layout(p: int) -> dict[str, int]:
    """Nested folders, non-ASCII names, an empty and a 1-byte file, one ending on a piece boundary."""
    return {
        f"{NAME}/{UNICODE}": 3 * p + 5000,
        f"{NAME}/CD1/a.flac": 2 * p + 700,
        f"{NAME}/CD1/b.flac": 2 * p + 700,
        f"{NAME}/CD1/deep/er/cover.jpg": p // 2 + 3,
        f"{NAME}/empty.nfo": 0,
        f"{NAME}/one.txt": 1,
        f"{NAME}/exact.bin": 2 * p,
    }


def single_layout(size: int) -> dict[str, int]:
    return {f"{NAME}.mkv": size}


@dataclass
class Built:
    save: Path
    torrent: Path
    files: dict[str, int]  # path as libtorrent gives it -> size
    offsets: dict[str, int]  # path -> offset in the torrent's byte space (pad files included)
    piece_length: int
    num_pieces: int
    creator: str  # v1 | v2 | hybrid | mktorrent

    @property
    def content(self) -> Path:
        first = next(iter(self.files))
        return self.save / (first.split("/")[0] if "/" in first else first)

    def pieces_of(self, path: str, lo: int, hi: int) -> set[int]:
        """Pieces holding bytes [lo, hi) of a file."""
        if hi <= lo:
            return set()
        off = self.offsets[path]
        return set(range((off + lo) // self.piece_length, (off + hi - 1) // self.piece_length + 1))

    def files_in_piece(self, piece: int) -> set[str]:
        lo, hi = piece * self.piece_length, (piece + 1) * self.piece_length
        return {p for p, size in self.files.items() if size and self.offsets[p] < hi and self.offsets[p] + size > lo}

    @property
    def has_v2(self) -> bool:
        return self.creator in ("v2", "hybrid")


def build(tmp: Path, layout: dict[str, int], piece_length: int, creator: str, seed: int = 1) -> Built:
    save = tmp / "save"
    save.mkdir(parents=True, exist_ok=True)
    write_payload(save, layout, seed=seed)
    top = save / next(iter(layout)).split("/")[0]
    out = tmp / f"payload.{creator}.torrent"
    if creator == "mktorrent":
        make_mktorrent(top, piece_length, out=out)
    else:
        make_torrent(top, piece_length, creator, out=out)
    ti = lt.torrent_info(str(out))
    fs = ti.layout()
    files, offsets = {}, {}
    for i in range(fs.num_files()):
        if fs.file_flags(i) & lt.file_storage.flag_pad_file:
            continue
        files[fs.file_path(i)] = fs.file_size(i)
        offsets[fs.file_path(i)] = fs.file_offset(i)
    assert set(files) == set(layout), "the torrent lists exactly the payload's files"
    return Built(save, out, files, offsets, ti.piece_length(), ti.num_pieces(), creator)


@dataclass
class Expect:
    bad: set[int]
    statuses: dict[str, str]


def damage(b: Built, kind: str, target: str, other: str | None = None) -> Expect:
    """Damage the payload on disk; returns the expected bad pieces and file statuses."""
    statuses = {path: "ok" for path in b.files}
    size = b.files[target]
    path = b.save / target
    if kind == "none":
        return Expect(set(), statuses)
    if kind == "flip":
        at = size * 3 // 5
        flip(path, at)
        statuses[target] = "damaged"
        bad = b.pieces_of(target, at, at + 1)
        if not b.has_v2:
            # v1 cannot tell which file of a piece spanning several holds the bad byte.
            for piece in bad:
                for other_file in b.files_in_piece(piece):
                    statuses[other_file] = "damaged"
        return Expect(bad, statuses)
    if kind == "truncate":
        keep = size // 3
        os.truncate(path, keep)
        statuses[target] = "size_mismatch"
        return Expect(b.pieces_of(target, keep, size), statuses)
    if kind == "extend":
        with open(path, "ab") as fh:
            fh.write(b"tail bytes past the torrent's end")
        statuses[target] = "size_mismatch"
        return Expect(set(), statuses)
    if kind == "missing":
        path.unlink()
        statuses[target] = "missing"
        return Expect(b.pieces_of(target, 0, size), statuses)
    if kind == "swap":
        other_path = b.save / other
        tmp = path.with_name(path.name + ".swap")
        os.rename(path, tmp)
        os.rename(other_path, path)
        os.rename(tmp, other_path)
        same = b.files[other] == size
        statuses[target] = statuses[other] = "damaged" if same else "size_mismatch"
        return Expect(b.pieces_of(target, 0, size) | b.pieces_of(other, 0, b.files[other]), statuses)
    raise ValueError(kind)


def flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))


def sha256sum(path: Path) -> str:
    """The digest `sha256sum` prints (the coreutils tool, not hashlib)."""
    out = subprocess.run(["sha256sum", "--", str(path)], check=True, capture_output=True).stdout
    return out.split(b" ", 1)[0].decode()


def sha256_py(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
