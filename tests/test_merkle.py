"""BEP 52 merkle roots: against a naive reference and against libtorrent's own v2 hashes."""

import hashlib

import pytest

from companion.merkle import ZERO, file_root, merkle_root, zero_root
from companion.torrent import BLOCK, load_torrent
from tests.scan_cases import KIB, build, single_layout


def naive_root(leaves: list[bytes], width: int) -> bytes:
    """Reference: pad to `width` zero leaves, then hash pairs up to the root."""
    layer = list(leaves) + [ZERO] * (width - len(leaves))
    while len(layer) > 1:
        layer = [hashlib.sha256(layer[i] + layer[i + 1]).digest() for i in range(0, len(layer), 2)]
    return layer[0]


def leaves_of(data: bytes) -> list[bytes]:
    return [hashlib.sha256(data[i : i + BLOCK]).digest() for i in range(0, len(data), BLOCK)]


def test_zero_roots():
    assert zero_root(1) == ZERO
    assert zero_root(2) == hashlib.sha256(ZERO * 2).digest()
    assert zero_root(8) == naive_root([], 8)


@pytest.mark.parametrize("count,width", [(1, 1), (2, 2), (3, 4), (5, 8), (8, 8), (3, 16), (1, 64)])
def test_merkle_root_matches_reference(count, width):
    leaves = [hashlib.sha256(bytes([i])).digest() for i in range(count)]
    assert merkle_root(leaves, width) == naive_root(leaves, width)


def test_merkle_root_default_width_is_next_power_of_two():
    leaves = [hashlib.sha256(bytes([i])).digest() for i in range(5)]
    assert merkle_root(leaves) == naive_root(leaves, 8)
    assert merkle_root(leaves[:1]) == leaves[0]


def test_padded_piece_roots_equal_zero_subtrees():
    """A file's tree pads missing pieces with the root of a piece of zero leaves."""
    roots = [hashlib.sha256(bytes([i])).digest() for i in range(3)]
    assert merkle_root(roots, 4, zero_root(4)) == naive_root(
        [*roots, zero_root(4)], 4)


@pytest.mark.parametrize("size", [1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK, 4 * BLOCK, 4 * BLOCK + 7,
                                  9 * BLOCK, 17 * BLOCK + 100])
def test_roots_equal_libtorrents(tmp_path, size):
    """piece layers and pieces root of a real v2 torrent (64 KiB pieces = 4 blocks)."""
    built = build(tmp_path, single_layout(size), 64 * KIB, "v2")
    meta = load_torrent(built.torrent)
    entry = meta.real_files[0]
    data = (built.save / entry.path).read_bytes()
    bpp = 4
    pieces = [data[i : i + 64 * KIB] for i in range(0, len(data), 64 * KIB)]
    if len(pieces) == 1:
        assert merkle_root(leaves_of(data)) == entry.root
        assert meta.v2_piece_hashes(entry) is None
        return
    piece_roots = [merkle_root(leaves_of(p), bpp) for p in pieces]
    assert piece_roots == meta.v2_piece_hashes(entry)
    assert file_root(piece_roots, bpp, []) == entry.root
