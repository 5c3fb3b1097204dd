"""Payload layouts, damages and expectations for the engine tests (independent of companion's code).

Expected bad pieces come from the changed byte ranges and libtorrent's own file layout, not from
companion.piece_plan, so a bug in the piece plan cannot hide itself.
"""

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass, field
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
    creator: str  # v1 | v2 | hybrid (libtorrent) or one of INDEPENDENT
    faults: set = field(default_factory=set)  # pieces libtorrent fails on the intact payload (a creator's bug)

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
        return creator_kind(self.creator) in ("v2", "hybrid")


# Independent creators (not libtorrent): Debian's mktorrent and transmission-create, PyPI's torf
# and torrentfile (the only one of them making v2 and hybrid torrents).
INDEPENDENT = ["mktorrent", "transmission", "torf", "torrentfile-v1", "torrentfile-v2", "torrentfile-hybrid"]
DROPS_EMPTY = {"transmission"}  # may leave empty files out (transmission-create 3.00 does, 4.x does not)


def make_with(creator: str, top: Path, piece_length: int, out: Path) -> Path:
    """Make a .torrent of `top` with the named creator (libtorrent: v1 | v2 | hybrid)."""
    if out.exists():
        out.unlink()
    if creator == "mktorrent":
        return make_mktorrent(top, piece_length, out=out)
    if creator == "transmission":
        subprocess.run(["transmission-create", "-s", str(piece_length // 1024), "-o", str(out), str(top)],
                       check=True, capture_output=True, cwd=top.parent)
        return out
    if creator == "torf":
        import torf

        t = torf.Torrent(path=str(top), piece_size=piece_length)
        t.generate()
        t.write(str(out), overwrite=True)
        return out
    if creator.startswith("torrentfile-"):
        version = {"v1": "1", "v2": "2", "hybrid": "3"}[creator.split("-", 1)[1]]
        exe = Path(sys.executable).with_name("torrentfile")
        subprocess.run([str(exe), "create", "--meta-version", version, "--piece-length",
                        str(piece_length.bit_length() - 1), "--prog", "0", "-o", str(out), str(top)],
                       check=True, capture_output=True, cwd=top.parent)
        return out
    return make_torrent(top, piece_length, creator, out=out)


def creator_kind(creator: str) -> str:
    """v1 | v2 | hybrid for a creator name."""
    if creator in ("v2", "hybrid"):
        return creator
    if creator.startswith("torrentfile-"):
        return creator.split("-", 1)[1]
    return "v1"


def build(tmp: Path, layout: dict[str, int], piece_length: int, creator: str, seed: int = 1) -> Built:
    save = tmp / "save"
    save.mkdir(parents=True, exist_ok=True)
    write_payload(save, layout, seed=seed)
    top = save / next(iter(layout)).split("/")[0]
    out = tmp / f"payload.{creator}.torrent"
    make_with(creator, top, piece_length, out)
    ti = lt.torrent_info(str(out))
    fs = ti.layout()
    files, offsets = {}, {}
    for i in range(fs.num_files()):
        if fs.file_flags(i) & lt.file_storage.flag_pad_file:
            continue
        files[fs.file_path(i)] = fs.file_size(i)
        offsets[fs.file_path(i)] = fs.file_offset(i)
    listed = {p for p, size in layout.items() if size or p in files or creator not in DROPS_EMPTY}
    assert set(files) == listed, f"the torrent lists exactly the payload's files: {sorted(files)} vs {sorted(listed)}"
    faults = set()
    if creator not in ("v1", "v2", "hybrid"):
        from companion import ltsession

        faults = set(ltsession.recheck(out.read_bytes(), save, timeout=60))
    return Built(save, out, files, offsets, ti.piece_length(), ti.num_pieces(), creator, faults)


@dataclass
class Expect:
    bad: set[int]
    statuses: dict[str, str]


RANK = {"ok": 0, "suspect": 1, "damaged": 2, "size_mismatch": 3, "missing": 4}


def blame(b: Built, bad: set[int], statuses: dict[str, str], changed: set[str], unavailable: set[int]) -> Expect:
    """The documented verdict rule, from what was done to the payload (not from the engine):
    v2 hashes prove each file's part of a piece; in a v1 piece, the only file of a failed piece
    is damaged, and when several share it none can be told apart: all are suspect (a file whose
    bytes are not there keeps missing/size_mismatch). `unavailable`: pieces with bytes not on disk."""
    out = dict(statuses)

    def mark(path, status):
        if RANK[status] > RANK[out[path]]:
            out[path] = status

    for piece in bad:
        members = b.files_in_piece(piece)
        if b.has_v2:
            for path in members & changed:
                mark(path, "damaged")
        elif len(members) == 1 and piece not in unavailable:
            mark(next(iter(members)), "damaged")
        else:
            for path in members:
                mark(path, "suspect")
    return Expect(bad, out)


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
        return blame(b, b.pieces_of(target, at, at + 1), statuses, {target}, set())
    if kind == "truncate":
        keep = size // 3
        os.truncate(path, keep)
        statuses[target] = "size_mismatch"
        bad = b.pieces_of(target, keep, size)
        return blame(b, bad, statuses, {target}, bad)
    if kind == "extend":
        with open(path, "ab") as fh:
            fh.write(b"tail bytes past the torrent's end")
        statuses[target] = "size_mismatch"
        return Expect(set(), statuses)
    if kind == "missing":
        path.unlink()
        statuses[target] = "missing"
        bad = b.pieces_of(target, 0, size)
        return blame(b, bad, statuses, {target}, bad)
    if kind == "swap":
        other_path = b.save / other
        tmp = path.with_name(path.name + ".swap")
        os.rename(path, tmp)
        os.rename(other_path, path)
        os.rename(tmp, other_path)
        same = b.files[other] == size
        statuses[target] = statuses[other] = "damaged" if same else "size_mismatch"
        bad = b.pieces_of(target, 0, size) | b.pieces_of(other, 0, b.files[other])
        short = set() if same else bad  # a file shorter than the torrent says leaves pieces unread
        return blame(b, bad, statuses, {target, other}, short)
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


def retitle(raw: bytes, renames: dict[tuple, tuple]) -> bytes:
    """The torrent with some file paths (inside the torrent's folder, as tuples of str) changed,
    in v1 `files` and in the v2 `file tree`: piece hashes do not depend on names, so it stays a
    valid torrent of the same bytes. Encoded by libtorrent (no hand-written bencode)."""
    doc = lt.bdecode(raw)
    info = doc[b"info"]
    enc = {tuple(k): [p.encode() for p in v] for k, v in renames.items()}
    for f in info.get(b"files") or []:
        key = tuple(p.decode() for p in f[b"path"])
        if key in enc:
            f[b"path"] = enc[key]
    tree = info.get(b"file tree")
    if tree is not None:
        top = tree
        for old, new in enc.items():
            node, parent = top, None
            for part in old:
                parent, node = node, node[part.encode()]
            del parent[old[-1].encode()]
            dest = top
            for part in new[:-1]:
                dest = dest.setdefault(part, {})
            dest[new[-1]] = node
    return lt.bencode(doc)
