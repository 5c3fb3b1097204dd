"""Torrent metadata, parsed by libtorrent and checked for unsafe paths."""

import os
from dataclasses import dataclass, field
from pathlib import Path

import libtorrent as lt

from .errors import BadTorrent, UnsafePath

BLOCK = 16 * 1024  # BEP 52 leaf size


@dataclass(frozen=True)
class FileEntry:
    index: int  # libtorrent's file index
    path: str  # as libtorrent gives it (multi-file torrents start with the torrent name)
    size: int
    offset: int  # offset in the torrent's byte space, pad files included
    pad: bool
    root: bytes | None  # v2 pieces root, None for v1-only torrents and empty files


@dataclass(frozen=True)
class TorrentMeta:
    name: str
    piece_length: int
    num_pieces: int
    total_size: int  # pad files included
    files: tuple[FileEntry, ...]
    info_hash_v1: str | None
    info_hash_v2: str | None
    v1_hashes: tuple[bytes, ...] | None
    piece_layers: dict = field(repr=False)  # v2 root -> concatenated 32-byte piece hashes
    raw: bytes = field(repr=False)

    @property
    def id(self) -> str:
        """qBittorrent's torrent hash: v2 truncated to 40 hex digits when present, else v1."""
        return self.info_hash_v2[:40] if self.info_hash_v2 else self.info_hash_v1

    @property
    def has_v1(self) -> bool:
        return self.info_hash_v1 is not None

    @property
    def has_v2(self) -> bool:
        return self.info_hash_v2 is not None

    @property
    def kind(self) -> str:
        return "hybrid" if self.has_v1 and self.has_v2 else ("v2" if self.has_v2 else "v1")

    @property
    def real_files(self) -> tuple[FileEntry, ...]:
        return tuple(f for f in self.files if not f.pad)

    @property
    def payload_size(self) -> int:
        return sum(f.size for f in self.files if not f.pad)

    def piece_size(self, piece: int) -> int:
        return min(self.piece_length, self.total_size - piece * self.piece_length)

    def file_pieces(self, entry: FileEntry) -> range:
        """Pieces that hold any byte of this file (empty for empty files)."""
        if entry.size == 0:
            return range(0)
        first = entry.offset // self.piece_length
        last = (entry.offset + entry.size - 1) // self.piece_length
        return range(first, last + 1)

    def v2_piece_hashes(self, entry: FileEntry) -> list[bytes] | None:
        """The torrent's own piece-layer hashes for a file bigger than one piece."""
        layer = self.piece_layers.get(entry.root) if entry.root else None
        if layer is None:
            return None
        return [layer[i : i + 32] for i in range(0, len(layer), 32)]


def list_files(content) -> list:
    """The files of `content` (a file or folder) for lt.create_torrent, in path order.

    libtorrent lists a folder in the order the filesystem returns its entries (tmpfs: newest
    first, ext4: by hash) and keeps that order in a v1 torrent: the same folder would make
    different v1 torrents on different machines. Sorted by path components, as BEP 52 orders v2.
    """
    return sorted(lt.list_files(str(content)), key=lambda f: os.fsencode(f.filename).split(b"/"))


def _check_element(torrent: str, element: str, whole: str) -> None:
    if element in ("", ".", "..") or "/" in element or "\\" in element or "\x00" in element:
        raise UnsafePath(torrent, f"file name {whole!r}")


def _check_paths(source: str, info: dict) -> None:
    """Refuse names libtorrent would silently sanitize: '..', absolute paths, separators."""
    name = info.get(b"name", b"")
    names = [[name]]
    for f in info.get(b"files", []) or []:
        names.append([name] + list(f.get(b"path.utf-8", f.get(b"path", []))))

    def walk_tree(tree, prefix):
        for key, value in tree.items():
            if key == b"":
                continue
            if not isinstance(value, dict):
                raise BadTorrent(source, "malformed file tree")
            names.append(prefix + [key])
            walk_tree(value, prefix + [key])

    tree = info.get(b"file tree")
    if isinstance(tree, dict):
        walk_tree(tree, [name])
    for parts in names:
        decoded = [p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p) for p in parts]
        whole = "/".join(decoded)
        for element in decoded:
            _check_element(source, element, whole)


def load_torrent(path_or_bytes: str | os.PathLike | bytes, source: str | None = None) -> TorrentMeta:
    """Parse a .torrent with libtorrent. Raises BadTorrent or UnsafePath."""
    if isinstance(path_or_bytes, bytes):
        raw = path_or_bytes
        source = source or "<torrent>"
    else:
        source = source or str(path_or_bytes)
        try:
            raw = Path(path_or_bytes).read_bytes()
        except IsADirectoryError as exc:
            raise BadTorrent(source, "is a directory") from exc
        except OSError as exc:
            raise BadTorrent(source, exc.strerror or str(exc)) from exc
    try:
        ti = lt.torrent_info(raw)
        decoded = lt.bdecode(raw)
    except RuntimeError as exc:
        raise BadTorrent(source, str(exc)) from exc
    if not isinstance(decoded, dict) or not isinstance(decoded.get(b"info"), dict):
        raise BadTorrent(source, "no info dictionary")
    _check_paths(source, decoded[b"info"])

    ih = ti.info_hashes()
    layout = ti.layout()
    has_v2 = ih.has_v2()
    files = []
    for i in range(layout.num_files()):
        pad = bool(layout.file_flags(i) & lt.file_storage.flag_pad_file)
        root = None
        if has_v2 and not pad and layout.file_size(i) > 0:
            root = bytes.fromhex(str(layout.root(i)))
        path = layout.file_path(i)
        if os.path.isabs(path) or ".." in Path(path).parts:
            raise UnsafePath(source, f"file name {path!r}")
        files.append(FileEntry(i, path, layout.file_size(i), layout.file_offset(i), pad, root))

    v1_hashes = None
    if ih.has_v1():
        v1_hashes = tuple(bytes(ti.hash_for_piece(p)) for p in range(ti.num_pieces()))
    layers = {}
    if has_v2:
        raw_layers = decoded.get(b"piece layers") or {}
        if not isinstance(raw_layers, dict):
            raise BadTorrent(source, "malformed piece layers")
        layers = {bytes(k): bytes(v) for k, v in raw_layers.items()}
        for f in files:
            if f.root and f.size > ti.piece_length() and f.root not in layers:
                raise BadTorrent(source, f"piece layer missing for {f.path!r}")
    return TorrentMeta(
        name=ti.name(),
        piece_length=ti.piece_length(),
        num_pieces=ti.num_pieces(),
        total_size=layout.total_size(),
        files=tuple(files),
        info_hash_v1=str(ih.v1) if ih.has_v1() else None,
        info_hash_v2=str(ih.v2) if has_v2 else None,
        v1_hashes=v1_hashes,
        piece_layers=layers,
        raw=raw,
    )
