"""BEP 52 merkle trees over 16 KiB SHA-256 leaves (pure functions)."""

from functools import lru_cache
from hashlib import sha256

ZERO = bytes(32)


def _next_pow2(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


@lru_cache(maxsize=64)
def zero_root(width: int) -> bytes:
    """Root of a subtree of `width` zero leaves."""
    node = ZERO
    while width > 1:
        node = sha256(node + node).digest()
        width //= 2
    return node


def merkle_root(leaves: list[bytes], width: int | None = None, pad: bytes = ZERO) -> bytes:
    """Root over `leaves` padded with `pad` to `width` (a power of two) leaves."""
    width = _next_pow2(len(leaves)) if width is None else width
    if not leaves:
        return zero_root(width) if pad == ZERO else pad
    layer = list(leaves)
    level_pad = pad
    while width > 1:
        if len(layer) % 2:
            layer.append(level_pad)
        layer = [sha256(layer[i] + layer[i + 1]).digest() for i in range(0, len(layer), 2)]
        level_pad = sha256(level_pad + level_pad).digest()
        width //= 2
    return layer[0]


def file_root(piece_roots: list[bytes], blocks_per_piece: int, leaves_if_single: list[bytes]) -> bytes:
    """A file's pieces root: from its piece roots, or its leaves when it fits in one piece."""
    if len(piece_roots) <= 1:
        return merkle_root(leaves_if_single)
    return merkle_root(piece_roots, _next_pow2(len(piece_roots)), zero_root(blocks_per_piece))
