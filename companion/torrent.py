"""Torrent metadata, parsed by libtorrent: its own file storage is the only source of paths.

libtorrent decides where each file goes: it sanitizes names, renames files whose paths clash
(an exact duplicate, or a file named like a folder but for letter case: `A/x` and `a` give
`a.1`), marks pad files, and keeps BEP 47 symlinks as links. seedward takes all of that from
libtorrent and re-derives nothing. It refuses only what its safety rules name (RULES below),
torrents libtorrent would accept after rewriting the names silently.
"""

import os
import re
import stat as stat_mod
from dataclasses import dataclass, field

import libtorrent as lt

from .errors import BadInput, BadTorrent, UnsafePath

BLOCK = 16 * 1024  # BEP 52 leaf size

# qBittorrent's own limits for a .torrent (MAX_TORRENT_SIZE, and the bdecode limits it passes
# to libtorrent): whatever qBittorrent can load, seedward loads; nothing bigger is read into memory.
MAX_TORRENT_BYTES = 100 * 1024 * 1024
LOAD_LIMITS = {"max_decode_depth": 100, "max_decode_tokens": 10_000_000}

# The safety rules: a torrent breaking one is refused (exit 2) with the rule's name and text.
# The names checked are those libtorrent reads (name.utf-8 over name, path.utf-8 over path).
# An absolute name ('/etc') is not refused: libtorrent drops the separator and places it inside
# the torrent's folder, and seedward takes every path from libtorrent.
RULES = {
    "traversal": "a '..' element would climb out of the save path (libtorrent renames it to '_'; "
                 "seedward refuses such torrents)",
}


@dataclass(slots=True, unsafe_hash=True)  # not frozen: a frozen init costs 4x, per file of 100,000
class FileEntry:
    index: int  # libtorrent's file index
    path: str  # where libtorrent places it, relative to the save path (renames applied)
    size: int
    offset: int  # offset in the torrent's byte space, pad files included
    pad: bool
    root: bytes | None  # v2 pieces root, None for v1-only torrents and empty files
    symlink: str | None = None  # BEP 47 link: its target inside the torrent (libtorrent's symlink())

    @property
    def link_target(self) -> str | None:
        """What readlink() must say for a symlink entry: the target relative to the link's
        folder, exactly as libtorrent creates it (lexically_relative(parent(path), symlink))."""
        if self.symlink is None:
            return None
        return lexically_relative(self.path.rsplit("/", 1)[0] if "/" in self.path else "", self.symlink)


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
        """The torrent's own piece-layer hashes for a file bigger than one piece (None when the
        torrent has no layer for it: the file is then verified from its pieces root)."""
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


def lexically_relative(base: str, target: str) -> str:
    """libtorrent's lexically_relative (path.cpp): target relative to the folder base."""
    base = base[:-1] if base.endswith("/") else base
    target = target[:-1] if target.endswith("/") else target
    b = base.split("/") if base else []
    t = target.split("/") if target else []
    while b and t and b[0] == t[0]:
        b, t = b[1:], t[1:]
    return "../" * len(b) + "/".join(t)


def read_torrent_file(path: str | os.PathLike, source: str) -> bytes:
    """The bytes of a .torrent: a regular file no bigger than qBittorrent loads. Never blocks on
    a FIFO or reads a device: opened non-blocking and checked with fstat before any read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise BadInput(source, "no such .torrent file") from exc
    except PermissionError as exc:
        raise BadInput(source, "cannot read the .torrent file: permission denied") from exc
    except OSError as exc:
        raise BadInput(source, f"cannot read the .torrent file: {exc.strerror or exc}") from exc
    try:
        st = os.fstat(fd)
        if stat_mod.S_ISDIR(st.st_mode):
            raise BadInput(source, "is a directory, not a .torrent file")
        if not stat_mod.S_ISREG(st.st_mode):
            raise BadInput(source, f"is {_kind_of(st.st_mode)}, not a .torrent file")
        if st.st_size > MAX_TORRENT_BYTES:
            raise BadTorrent(source, f"{st.st_size} bytes, more than qBittorrent loads ({MAX_TORRENT_BYTES} bytes)")
        chunks, total = [], 0
        while True:
            try:
                chunk = os.read(fd, min(8 * 1024 * 1024, MAX_TORRENT_BYTES + 1 - total))
            except OSError as exc:
                raise BadInput(source, f"cannot read the .torrent file: {exc.strerror or exc}") from exc
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > MAX_TORRENT_BYTES:
                raise BadTorrent(source, f"more than qBittorrent loads ({MAX_TORRENT_BYTES} bytes)")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _kind_of(mode: int) -> str:
    for test, name in ((stat_mod.S_ISFIFO, "a FIFO"), (stat_mod.S_ISCHR, "a character device"),
                       (stat_mod.S_ISBLK, "a block device"), (stat_mod.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


_SEPARATORS = re.compile(r"[/\\]")


def _broken_rule(element: bytes) -> str | None:
    if ".." in _SEPARATORS.split(element.decode("utf-8", "replace")):
        return "traversal"
    return None


def _shown(parts: list) -> str:
    return repr([p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p) for p in parts])


def _check_names(source: str, info: dict) -> None:
    """Apply RULES to the names libtorrent reads: name.utf-8 (else name), each file's
    path.utf-8 (else path), v2 file tree keys, BEP 47 symlink paths."""

    def check(what: str, parts) -> None:
        parts = parts if isinstance(parts, list) else [parts]
        for part in parts:
            if not isinstance(part, bytes):
                raise BadTorrent(source, f"malformed {what}")
            rule = _broken_rule(part)
            if rule:
                raise UnsafePath(source, f"{rule} rule: {what} {_shown(parts)}: {RULES[rule]}")

    for key in (b"name.utf-8", b"name"):
        if key in info:
            check(f"torrent {key.decode()}", info[key])
            break
    files = info.get(b"files") or []
    if not isinstance(files, list):
        raise BadTorrent(source, "malformed file list")
    for i, f in enumerate(files):
        if not isinstance(f, dict):
            raise BadTorrent(source, "malformed file list")
        for key in (b"path.utf-8", b"path"):
            if key in f:
                check(f"file {i} {key.decode()}", f[key])
                break
        if b"symlink path" in f:
            check(f"file {i} symlink path", f[b"symlink path"])

    def walk(tree: dict, prefix: list) -> None:
        for key, value in tree.items():
            if not isinstance(value, dict):
                raise BadTorrent(source, "malformed file tree")
            if key == b"":
                if b"symlink path" in value:
                    check(f"symlink path of {_shown(prefix)}", value[b"symlink path"])
                continue
            check("file tree path", prefix + [key])
            walk(value, prefix + [key])

    tree = info.get(b"file tree")
    if isinstance(tree, dict):
        walk(tree, [])


def _traced(path: str) -> bool:
    """Whether libtorrent's sanitized path shows a trace of a name the rules refuse: it renames a
    '..' element to '_' and drops separators inside a name ('a/../b' -> 'a..b')."""
    return ".." in path or ("_" in path and ("/_/" in path or path.endswith("/_") or path.startswith("_/")
                                             or path == "_"))


def _outer(raw: bytes, info: bytes) -> dict:
    """The torrent's top-level dictionary without its (big) info dictionary: piece layers,
    trackers. The info dictionary's bytes are libtorrent's own (info_section)."""
    at = raw.find(info)
    doc = lt.bdecode(raw[:at] + b"de" + raw[at + len(info):]) if at > 0 else None
    return doc if isinstance(doc, dict) else {}


def load_torrent(path_or_bytes: str | os.PathLike | bytes, source: str | None = None) -> TorrentMeta:
    """Parse a .torrent with libtorrent. Raises BadInput, BadTorrent or UnsafePath."""
    if isinstance(path_or_bytes, bytes):
        raw = path_or_bytes
        source = source or "<torrent>"
        if len(raw) > MAX_TORRENT_BYTES:
            raise BadTorrent(source, f"more than qBittorrent loads ({MAX_TORRENT_BYTES} bytes)")
    else:
        source = source or str(path_or_bytes)
        raw = read_torrent_file(path_or_bytes, source)
    try:
        atp = lt.load_torrent_buffer(raw, dict(LOAD_LIMITS))
    except RuntimeError as exc:
        raise BadTorrent(source, str(exc)) from exc
    ti = atp.ti
    if ti is None:
        raise BadTorrent(source, "no info dictionary (a magnet link's metadata only)")
    # libtorrent 2.1: layout() + renamed_files (its renames of clashing paths); 2.0's binding has
    # no layout(): its files() has the renames applied.
    layout = ti.layout() if hasattr(ti, "layout") else ti.files()
    renamed = dict(getattr(atp, "renamed_files", None) or {})
    ih = ti.info_hashes()
    has_v2 = ih.has_v2()
    pad_flag, link_flag = lt.file_storage.flag_pad_file, lt.file_storage.flag_symlink
    piece_length = ti.piece_length()
    files, needs_layers, sizes = [], False, {}
    traced = ti.name() in (str(ih.v1), str(ih.v2))  # libtorrent names a torrent '..' by its info hash
    file_flags, file_size, file_path, file_offset = layout.file_flags, layout.file_size, layout.file_path, layout.file_offset
    for i in range(layout.num_files()):
        flags = file_flags(i)
        pad = bool(flags & pad_flag)
        size = file_size(i)
        size = sizes.setdefault(size, size)  # one int object per distinct size
        root = layout.root(i).to_bytes() if has_v2 and not pad and size > 0 else None
        if root is not None and size > piece_length:
            needs_layers = True
        path = (renamed.get(i) if renamed else None) or file_path(i)
        if not traced and _traced(path):
            traced = True
        link = None
        if flags & link_flag:
            traced = True  # symlink targets it rewrites
            link = layout.symlink(i) or None
        if path.startswith("/") or (".." in path and ".." in path.split("/")):
            raise UnsafePath(source, f"traversal rule: libtorrent placed a file at {path!r}: {RULES['traversal']}")
        files.append(FileEntry(i, path, size, file_offset(i), pad, root, link))
    if traced:  # only then are the raw names read (a Python copy of a big info dict is costly)
        info = lt.bdecode(ti.info_section())
        if isinstance(info, dict):
            _check_names(source, info)

    v1_hashes = None
    if ih.has_v1():
        v1_hashes = tuple(bytes(ti.hash_for_piece(p)) for p in range(ti.num_pieces()))
    layers = {}
    if needs_layers:
        raw_layers = _outer(raw, ti.info_section()).get(b"piece layers") or {}
        if not isinstance(raw_layers, dict):
            raise BadTorrent(source, "malformed piece layers")
        layers = {bytes(k): bytes(v) for k, v in raw_layers.items()}
    meta = TorrentMeta(
        name=ti.name(),
        piece_length=piece_length,
        num_pieces=ti.num_pieces(),
        total_size=layout.total_size(),
        files=tuple(files),
        info_hash_v1=str(ih.v1) if ih.has_v1() else None,
        info_hash_v2=str(ih.v2) if has_v2 else None,
        v1_hashes=v1_hashes,
        piece_layers=layers,
        raw=raw,
    )
    if len(files) >= TRIM_FILES:
        del atp, ti, layout, file_flags, file_size, file_path, file_offset
        _give_back_memory()
    return meta


TRIM_FILES = 10_000


def _give_back_memory() -> None:
    """Return the memory libtorrent's parse of a big torrent freed to the system (glibc keeps
    freed heap otherwise): a 100,000-file torrent's parse leaves ~30-50 MB behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
