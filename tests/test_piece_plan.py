"""The piece plan against libtorrent's own map_block / map_file on real torrents (pure, no disk reads)."""

import libtorrent as lt
import pytest

from companion.piece_plan import file_segments, files_of_piece, piece_plan
from companion.torrent import load_torrent
from tests.scan_cases import KIB, build, multi_layout, single_layout


@pytest.fixture(params=["v1", "v2", "hybrid", "mktorrent"])
def torrent(request, tmp_path):
    piece = 32 * KIB
    built = build(tmp_path, multi_layout(piece), piece, request.param)
    return load_torrent(built.torrent), lt.torrent_info(str(built.torrent))


def test_piece_plan_equals_map_block(torrent):
    meta, ti = torrent
    for piece in range(meta.num_pieces):
        want = [(s.file_index, s.offset, s.size) for s in ti.map_block(piece, 0, ti.piece_size(piece)) if s.size]
        got = [(e.index, off, length) for e, off, length in piece_plan(meta, piece)]
        assert got == want, piece
        assert sum(length for _, _, length in got) == meta.piece_size(piece)


def test_file_segments_tile_each_file(torrent):
    meta, ti = torrent
    for entry in meta.real_files:
        segs = file_segments(meta, entry)
        assert sum(s.length for s in segs) == entry.size
        pos = 0
        for seg in segs:
            assert seg.offset == pos and seg.file_index == entry.index
            req = ti.map_file(entry.index, seg.offset, 1)
            assert (req.piece, req.start) == (seg.piece, (entry.offset + seg.offset) % meta.piece_length)
            plan = piece_plan(meta, seg.piece)
            assert seg.whole_piece == (len(plan) == 1 and plan[0][2] == meta.piece_size(seg.piece))
            pos += seg.length
        assert list(meta.file_pieces(entry)) == [s.piece for s in segs]


def test_files_of_piece_leaves_out_pad_files(tmp_path):
    built = build(tmp_path, multi_layout(16 * KIB), 16 * KIB, "hybrid")
    meta = load_torrent(built.torrent)
    assert any(f.pad for f in meta.files)
    for piece in range(meta.num_pieces):
        files = files_of_piece(meta, piece)
        assert len(files) == 1 and not files[0].pad  # hybrid: every piece belongs to one file


def test_empty_file_has_no_segments(tmp_path):
    built = build(tmp_path, {"A/empty": 0, "A/x": 100}, 16 * KIB, "v1")
    meta = load_torrent(built.torrent)
    empty = next(f for f in meta.files if f.path == "A/empty")
    assert file_segments(meta, empty) == [] and list(meta.file_pieces(empty)) == []


def test_single_file_exact_multiple(tmp_path):
    built = build(tmp_path, single_layout(4 * 16 * KIB), 16 * KIB, "v1")
    meta = load_torrent(built.torrent)
    segs = file_segments(meta, meta.files[0])
    assert [(s.piece, s.offset, s.length, s.whole_piece) for s in segs] == [
        (p, p * 16 * KIB, 16 * KIB, True) for p in range(4)]
