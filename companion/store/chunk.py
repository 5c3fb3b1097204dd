"""Chunk ids: the SHA-256 merkle root of a chunk's 16 KiB blocks (as the Scanner computes it)."""

from hashlib import sha256

from ..merkle import _next_pow2, merkle_root
from ..torrent import BLOCK, TorrentMeta


def chunk_width(meta: TorrentMeta, length: int, single: bool) -> int:
    """The tree width the Scanner pads a segment's leaves to: the piece's blocks, or for a
    file that fits in one segment the next power of two of its own blocks."""
    if single:
        return _next_pow2(max(1, -(-length // BLOCK)))
    return max(1, meta.piece_length // BLOCK)


def chunk_root(data, width: int) -> bytes:
    leaves = [sha256(data[i : i + BLOCK]).digest() for i in range(0, len(data), BLOCK)]
    return merkle_root(leaves, width)
