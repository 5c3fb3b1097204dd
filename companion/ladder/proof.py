"""Proof against the torrent's own hashes: v1 SHA-1 over a whole piece (its other files' bytes
read from disk unless given), v2 SHA-256 merkle root of a file's segment (pure over bytes)."""

import hashlib
import os
from pathlib import Path

from ..merkle import merkle_root
from ..piece_plan import Segment, file_segments, piece_plan
from ..scan import resolve_payload_path
from ..torrent import BLOCK, FileEntry, TorrentMeta


def segment_root(meta: TorrentMeta, entry: FileEntry, data, single: bool | None = None) -> bytes:
    """SHA-256 merkle root of a segment's 16 KiB blocks, padded as BEP 52 pads it: to the piece's
    blocks, or for a file of one segment to the next power of two of its own blocks."""
    leaves = [hashlib.sha256(data[i : i + BLOCK]).digest() for i in range(0, len(data), BLOCK)]
    if single is None:
        single = len(meta.file_pieces(entry)) == 1
    return merkle_root(leaves) if single else merkle_root(leaves, max(1, meta.piece_length // BLOCK))


def v2_segment_ok(meta: TorrentMeta, entry: FileEntry, seg: Segment, data) -> bool:
    root = segment_root(meta, entry, data)
    layer = meta.piece_layers.get(entry.root) if entry.root else None  # the raw layer: one hash sliced out
    if layer is None:
        return root == entry.root
    i = seg.piece - meta.file_pieces(entry).start
    return root == layer[32 * i : 32 * i + 32]


def read_range(path: Path, offset: int, length: int) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.pread(fd, length, offset)
        while len(data) < length:
            more = os.pread(fd, length - len(data), offset + len(data))
            if not more:
                return None
            data += more
        return data
    finally:
        os.close(fd)


def segment_ok(meta: TorrentMeta, save_path: Path, seg: Segment, data, others: dict | None = None,
               both: bool = True) -> bool:
    """Do `data` (for segment `seg`) make the torrent's piece? v2: the segment's own hash, pure.
    v1: SHA-1 of the whole piece, the other files' parts from `others` {(file_index, piece): bytes}
    or read from the payload. Hybrid torrents pass both, or (both=False) their v2 hash alone: a
    SHA-256 merkle root over every byte of the segment proves it as well as the SHA-1 does, at half
    the hashing (the store verifies hybrid torrents' snapshots the same way)."""
    if len(data) != seg.length:
        return False
    entry = next(e for e in meta.files if e.index == seg.file_index)
    if meta.has_v2 and not v2_segment_ok(meta, entry, seg, data):
        return False
    if not meta.has_v1 or (meta.has_v2 and not both):
        return True
    h = hashlib.sha1()
    for part, offset, length in piece_plan(meta, seg.piece):
        if part.pad:
            h.update(bytes(length))
        elif part.index == seg.file_index:
            h.update(data)
        else:
            got = (others or {}).get((part.index, seg.piece))
            if got is None:
                got = read_range(resolve_payload_path(save_path, part), offset, length)
            if got is None or len(got) != length:
                return False
            h.update(got)
    return h.digest() == meta.v1_hashes[seg.piece]


def segment_of(meta: TorrentMeta, entry: FileEntry, piece: int) -> Segment:
    return next(s for s in file_segments(meta, entry) if s.piece == piece)
