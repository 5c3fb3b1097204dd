"""Content chunks: a file's bytes cut at fixed file-relative offsets, whatever torrent it is in.

Chunk k of a file is [k * CHUNK, (k + 1) * CHUNK); its id is the SHA-256 merkle root of its 16 KiB
leaves (BEP 52's tree), padded to CHUNK / 16 KiB leaves, or for a file of one chunk to the next
power of two of its own leaves (so that chunk's id is the file's v2 pieces root). The same file in
any number of torrents, with any piece sizes, is therefore the same chunks: stored once.

Where a torrent's pieces are file-aligned (v2 and hybrid torrents; the files of a v1 torrent that
start on a piece boundary) and no bigger than a chunk, a chunk's id follows from the pieces'
segment roots, which the verifying scan already computed: nothing is hashed twice. Otherwise the
store hashes the chunk's leaves once, from the bytes it stores.
"""

import hashlib
import threading
from dataclasses import dataclass, field

from ..merkle import _next_pow2, merkle_root, zero_root
from ..torrent import BLOCK

CHUNK = 16 * 1024 * 1024  # a power of two, at least every common piece size


def width(file_size: int) -> int:
    """Leaves a chunk of this file's tree is padded to."""
    if file_size <= CHUNK:
        return _next_pow2(max(1, -(-file_size // BLOCK)))
    return CHUNK // BLOCK


def ranges(file_size: int) -> list[tuple[int, int]]:
    """(offset, length) of the file's chunks, in order."""
    return [(o, min(CHUNK, file_size - o)) for o in range(0, file_size, CHUNK)]


def leaf_root(data, w: int) -> bytes:
    leaves = [hashlib.sha256(data[i : i + BLOCK]).digest() for i in range(0, len(data), BLOCK)]
    return merkle_root(leaves, w)


def derivable(file_size: int, file_offset_in_torrent: int, piece_length: int) -> bool:
    """Whether this file's chunk ids follow from its segment roots: its pieces are file-aligned,
    a power of two no bigger than a chunk."""
    pl = piece_length
    return (pl >= BLOCK and pl & (pl - 1) == 0 and pl <= CHUNK and file_offset_in_torrent % pl == 0
            and file_size > 0)


def derive(file_size: int, piece_length: int, roots: list[bytes]) -> list[bytes]:
    """Chunk ids from the file's segment roots (file-aligned pieces, in order; see `derivable`):
    BEP 52's tree over the pieces' subtrees, padded with all-zero subtrees."""
    per = CHUNK // piece_length
    bpp = piece_length // BLOCK
    if len(roots) == 1:
        return [roots[0]]  # one segment: its root already covers the whole file, padded as a chunk is
    if file_size <= CHUNK:
        return [merkle_root(roots, _next_pow2(len(roots)), zero_root(bpp))]
    return [merkle_root(roots[i : i + per], per, zero_root(bpp)) for i in range(0, len(roots), per)]


@dataclass
class _Open:
    buf: bytearray
    filled: int = 0
    roots: dict = field(default_factory=dict)  # segment offset -> root (file-aligned segments)


class Assembler:
    """Content chunks out of a scan's segments (the scan's sink, on its hashing threads): each chunk's
    bytes are gathered as the segments covering it arrive, in any order; once complete it is handed
    to `done(file_index, offset, chunk_id, width, data)` with its id derived from the segments' roots
    (file-aligned files) or hashed from the bytes."""

    def __init__(self, meta, entries, done):
        self.meta, self.done = meta, done
        self.entries = {e.index: e for e in entries}
        self.aligned = {e.index: derivable(e.size, e.offset, meta.piece_length) for e in entries}
        self.open: dict[tuple[int, int], _Open] = {}
        self.lock = threading.Lock()
        self.ids: dict[int, dict[int, tuple[int, str]]] = {}  # file -> offset -> (length, id)

    def add(self, file_index: int, offset: int, data, root: bytes | None) -> None:
        entry = self.entries[file_index]
        end = offset + len(data)
        first, last = offset // CHUNK, (end - 1) // CHUNK
        for k in range(first, last + 1):
            lo, hi = max(offset, k * CHUNK), min(end, (k + 1) * CHUNK)
            length = min(CHUNK, entry.size - k * CHUNK)
            with self.lock:
                o = self.open.get((file_index, k))
                if o is None:
                    o = self.open[(file_index, k)] = _Open(bytearray(length))
            o.buf[lo - k * CHUNK : hi - k * CHUNK] = data[lo - offset : hi - offset]  # disjoint ranges
            with self.lock:
                o.filled += hi - lo
                if root is not None and lo == offset and hi == end:
                    o.roots[offset] = root
                complete = o.filled == length
                if complete:
                    del self.open[(file_index, k)]
            if complete:
                self._finish(entry, k, o)

    def _finish(self, entry, k: int, o: _Open) -> None:
        w = width(entry.size)
        cid = None
        if self.aligned[entry.index] and o.roots:
            pl = self.meta.piece_length
            offsets = sorted(o.roots)
            expect = list(range(k * CHUNK, k * CHUNK + len(o.buf), pl))
            if offsets == expect:
                cid = derive(entry.size, pl, [o.roots[x] for x in offsets])[0] if entry.size <= CHUNK else \
                    merkle_root([o.roots[x] for x in offsets], CHUNK // pl, zero_root(pl // BLOCK))
        if cid is None:
            cid = leaf_root(o.buf, w)
        cid_hex = cid.hex()
        with self.lock:
            self.ids.setdefault(entry.index, {})[k * CHUNK] = (len(o.buf), cid_hex)
        self.done(entry.index, k * CHUNK, cid_hex, w, o.buf)

    def file_chunks(self, file_index: int) -> list[tuple[int, int, str]]:
        """(offset, length, id) of the file's chunks, once every one is complete."""
        got = self.ids.get(file_index, {})
        return [(off, n, cid) for off, (n, cid) in sorted(got.items())]

    def pending(self) -> int:
        return len(self.open)
