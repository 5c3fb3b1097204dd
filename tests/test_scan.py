"""The engine on real torrents (libtorrent v1/v2/hybrid and mktorrent), intact and damaged.

Every verdict is checked three ways: against the bad pieces expected from the damaged byte
ranges, against a recheck by libtorrent itself on the same data, and file SHA-256s against
coreutils' `sha256sum`.
"""

import os
import threading

import pytest

from companion import ltsession
from companion.errors import PayloadError
from companion.quickscan import quick_scan
from companion.scan import Cancelled, Scanner
from companion.torrent import load_torrent
from tests.scan_cases import (DROPS_EMPTY, INDEPENDENT, KIB, MIB, NAME, UNICODE, build, damage, multi_layout,
                              sha256sum, single_layout)

CREATORS = ["v1", "v2", "hybrid", *INDEPENDENT]
DAMAGES = [
    ("none", f"{NAME}/{UNICODE}", None),
    ("flip", f"{NAME}/{UNICODE}", None),
    ("flip", f"{NAME}/one.txt", None),
    ("flip", f"{NAME}/exact.bin", None),
    ("truncate", f"{NAME}/{UNICODE}", None),
    ("truncate", f"{NAME}/exact.bin", None),
    ("extend", f"{NAME}/one.txt", None),
    ("extend", f"{NAME}/exact.bin", None),
    ("missing", f"{NAME}/CD1/b.flac", None),
    ("missing", f"{NAME}/empty.nfo", None),
    ("missing", f"{NAME}/one.txt", None),
    ("swap", f"{NAME}/CD1/a.flac", f"{NAME}/CD1/b.flac"),
    ("swap", f"{NAME}/CD1/deep/er/cover.jpg", f"{NAME}/exact.bin"),
]


@pytest.fixture(scope="module")
def session():
    ses = ltsession.isolated_session()
    yield ses
    del ses


@pytest.fixture(scope="module")
def scanner():
    # Small buffers so that even these small payloads take several reads per file.
    return Scanner(buffer_bytes=64 * KIB, buffers=4)


def verify(built, expect, scanner, session):
    meta = load_torrent(built.torrent)
    result = scanner.full_scan(meta, built.save)
    if built.faults:  # the creator wrote hashes libtorrent rejects on intact data: agree with libtorrent
        assert result.bad_pieces == sorted(ltsession.recheck(meta.raw, built.save, timeout=60, session=session))
        assert not result.ok
        return result
    assert result.bad_pieces == sorted(expect.bad)
    assert {f.entry.path: f.status for f in result.files} == expect.statuses
    assert result.ok == (not expect.bad and set(expect.statuses.values()) == {"ok"})
    for f in result.files:
        on_disk = built.save / f.entry.path
        if f.status == "missing":
            assert f.sha256 is None
        else:
            assert f.sha256 == sha256sum(on_disk)
        if meta.has_v2 and f.status == "ok" and f.entry.size:
            assert f.v2_root == f.entry.root
    assert sorted(ltsession.recheck(meta.raw, built.save, timeout=60, session=session)) == sorted(expect.bad)
    return result


@pytest.mark.parametrize("creator", CREATORS)
@pytest.mark.parametrize("kind,target,other", DAMAGES, ids=lambda v: v if isinstance(v, str) and "/" not in v else None)
def test_multi_file_damage(tmp_path, creator, kind, target, other, scanner, session):
    if creator in DROPS_EMPTY and target.endswith("empty.nfo"):
        pytest.skip(f"{creator} leaves empty files out of the torrent")
    built = build(tmp_path, multi_layout(32 * KIB), 32 * KIB, creator)
    expect = damage(built, kind, target, other)
    verify(built, expect, scanner, session)


@pytest.mark.parametrize("creator", ["v1", "v2", "hybrid"])
@pytest.mark.parametrize("kind", ["none", "flip", "truncate", "missing"])
def test_multi_file_16k_pieces(tmp_path, creator, kind, scanner, session):
    built = build(tmp_path, multi_layout(16 * KIB), 16 * KIB, creator, seed=5)
    target = f"{NAME}/CD1/a.flac"
    verify(built, damage(built, kind, target), scanner, session)


@pytest.mark.parametrize("creator", CREATORS)
@pytest.mark.parametrize("piece", [16 * KIB, 64 * KIB, 256 * KIB, 1 * MIB, 4 * MIB, 16 * MIB],
                         ids=lambda p: f"{p // KIB}KiB")
def test_piece_sizes_short_last_piece(tmp_path, creator, piece, scanner, session):
    if creator == "mktorrent" and piece < 32 * KIB:
        pytest.skip("mktorrent's smallest piece is 32 KiB")
    size = min(piece * 5 // 2, 3 * MIB) + 1  # short last piece
    built = build(tmp_path, single_layout(size), piece, creator)
    target = next(iter(built.files))
    result = verify(built, damage(built, "flip", target), scanner, session)
    assert built.num_pieces == -(-size // piece)
    assert result.files[0].segments[-1].length == size - (built.num_pieces - 1) * piece


@pytest.mark.parametrize("creator", CREATORS)
def test_single_file_ending_on_piece_boundary(tmp_path, creator, scanner, session):
    built = build(tmp_path, single_layout(4 * 32 * KIB), 32 * KIB, creator)
    target = next(iter(built.files))
    verify(built, damage(built, "none", target), scanner, session)
    verify(built, damage(built, "truncate", target), scanner, session)


@pytest.mark.parametrize("creator", ["v2", "hybrid"])
def test_multi_file_16m_pieces(tmp_path, creator, scanner, session):
    """Each file in its own 16 MiB piece (mostly pad zeros) with only a few MiB of data."""
    built = build(tmp_path, multi_layout(512 * KIB), 16 * MIB, creator)
    verify(built, damage(built, "none", f"{NAME}/one.txt"), scanner, session)
    verify(built, damage(built, "flip", f"{NAME}/CD1/a.flac"), scanner, session)


def test_v1_shared_piece_without_baseline_is_suspect(tmp_path, scanner, session):
    """v1 cannot tell which file of a piece spanning several is bad: none is ok, none is damaged."""
    built = build(tmp_path, {f"{NAME}/a.bin": 10_000, f"{NAME}/b.bin": 10_000}, 32 * KIB, "mktorrent")
    meta = load_torrent(built.torrent)
    expect = damage(built, "flip", f"{NAME}/b.bin")
    assert expect.bad == {0} and meta.num_pieces == 1
    assert expect.statuses == {f"{NAME}/a.bin": "suspect", f"{NAME}/b.bin": "suspect"}
    result = verify(built, expect, scanner, session)
    assert not result.ok


def test_v1_shared_piece_with_baseline_is_exact(tmp_path, scanner, session):
    """With the catalog's xxh3 per segment, the changed file is damaged and the other proven ok."""
    built = build(tmp_path, {f"{NAME}/a.bin": 10_000, f"{NAME}/b.bin": 10_000, f"{NAME}/c.bin": 30_000},
                  32 * KIB, "mktorrent")
    meta = load_torrent(built.torrent)
    baseline = _baseline(scanner.full_scan(meta, built.save))
    damage(built, "flip", f"{NAME}/b.bin")
    result = scanner.full_scan(meta, built.save, baseline=baseline)
    assert result.bad_pieces == [0]
    assert {f.entry.path: f.status for f in result.files} == {
        f"{NAME}/a.bin": "ok", f"{NAME}/b.bin": "damaged", f"{NAME}/c.bin": "ok"}
    # Only c's head shares piece 0; a baseline for a and c alone proves b changed (the only one left).
    partial = {i: v for i, v in baseline.items() if meta.files[i].path != f"{NAME}/b.bin"}
    result = scanner.full_scan(meta, built.save, baseline=partial)
    assert {f.entry.path: f.status for f in result.files}[f"{NAME}/b.bin"] == "damaged"
    assert sorted(ltsession.recheck(meta.raw, built.save, timeout=60, session=session)) == [0]


@pytest.mark.parametrize("creator", ["v1", "hybrid"])
def test_big_buffers_and_one_worker_agree(tmp_path, creator, session):
    built = build(tmp_path, multi_layout(16 * KIB), 16 * KIB, creator, seed=9)
    expect = damage(built, "flip", f"{NAME}/CD1/b.flac")
    for sc in (Scanner(), Scanner(workers=1, buffer_bytes=16 * KIB, buffers=2)):
        verify(built, expect, sc, session)


def test_chunk_roots_for_v1_equal_v2_piece_layers(tmp_path, scanner):
    """chunk_roots on a v1 torrent gives each segment the SHA-256 merkle root v2 would use."""
    built_v1 = build(tmp_path / "a", single_layout(5 * 16 * KIB + 99), 16 * KIB, "v1")
    built_v2 = build(tmp_path / "b", single_layout(5 * 16 * KIB + 99), 16 * KIB, "v2")
    v1 = scanner.full_scan(load_torrent(built_v1.torrent), built_v1.save, chunk_roots=True)
    v2 = scanner.full_scan(load_torrent(built_v2.torrent), built_v2.save)
    assert [s.root for s in v1.files[0].segments] == [s.root for s in v2.files[0].segments]
    assert v1.files[0].v2_root == v2.files[0].v2_root == load_torrent(built_v2.torrent).files[0].root


def test_sink_sees_every_segment_once(tmp_path, scanner):
    built = build(tmp_path, multi_layout(16 * KIB), 16 * KIB, "hybrid")
    seen, lock = [], threading.Lock()

    def sink(file_index, seg, data):
        with lock:
            seen.append((file_index, seg.piece, seg.offset, bytes(data)))

    meta = load_torrent(built.torrent)
    result = scanner.full_scan(meta, built.save, sink=sink)
    expected = sorted((f.entry.index, s.piece, s.offset) for f in result.files for s in f.segments)
    assert sorted(s[:3] for s in seen) == expected
    by_index = {f.index: f for f in meta.files}
    for file_index, _piece, offset, data in seen:
        with open(built.save / by_index[file_index].path, "rb") as fh:
            fh.seek(offset)
            assert fh.read(len(data)) == data


def test_only_files_scans_just_those(tmp_path, scanner):
    built = build(tmp_path, multi_layout(16 * KIB), 16 * KIB, "hybrid")
    meta = load_torrent(built.torrent)
    damage(built, "flip", f"{NAME}/CD1/b.flac")
    wanted = {f.index for f in meta.files if f.path == f"{NAME}/CD1/a.flac"}
    result = scanner.full_scan(meta, built.save, only_files=wanted)
    assert [f.entry.path for f in result.files] == [f"{NAME}/CD1/a.flac"]
    assert result.ok and result.bad_pieces == []


def test_only_files_says_which_shared_pieces_it_could_not_verify(tmp_path, scanner):
    built = build(tmp_path, {f"{NAME}/a.bin": 20_000, f"{NAME}/b.bin": 30_000, f"{NAME}/c.bin": 40_000}, 16 * KIB, "v1")
    meta = load_torrent(built.torrent)
    b = next(f for f in meta.files if f.path == f"{NAME}/b.bin")
    result = scanner.full_scan(meta, built.save, only_files={b.index})
    # b spans pieces 1-3; piece 1 also holds a's tail and piece 3 c's head: neither can be verified
    assert [s.piece for s in result.files[0].segments] == [1, 2, 3]
    assert result.unverified_pieces == [1, 3] and result.bad_pieces == [] and result.ok
    assert scanner.full_scan(meta, built.save).unverified_pieces == []


@pytest.mark.parametrize("creator", ["v1", "hybrid", "v2"])
def test_many_windows_few_buffers_many_threads(tmp_path, creator, session):
    """Every byte through hand-overs: 16 KiB windows, two buffers, four hashing threads, no
    in-place hashing; the hashes must be those of one thread with big windows."""
    built = build(tmp_path, multi_layout(16 * KIB), 16 * KIB, creator, seed=11)
    expect = damage(built, "flip", f"{NAME}/CD1/a.flac")
    meta = load_torrent(built.torrent)
    busy = Scanner(workers=4, buffer_bytes=16 * KIB, buffers=2, task_bytes=16 * KIB, inline_bytes=0)
    one = Scanner(workers=1, buffer_bytes=4 * MIB, buffers=2)
    want = one.full_scan(meta, built.save)
    for _ in range(5):
        got = verify(built, expect, busy, session)
        assert [(f.sha256, f.v2_root, [(s.piece, s.xxh3, s.root, s.sha1) for s in f.segments]) for f in got.files] == \
            [(f.sha256, f.v2_root, [(s.piece, s.xxh3, s.root, s.sha1) for s in f.segments]) for f in want.files]


def test_cancel_stops_the_scan(tmp_path, scanner):
    built = build(tmp_path, multi_layout(16 * KIB), 16 * KIB, "v1")
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        scanner.full_scan(load_torrent(built.torrent), built.save, cancel=cancel)


def test_progress_reaches_the_payload_size(tmp_path, scanner):
    built = build(tmp_path, multi_layout(16 * KIB), 16 * KIB, "hybrid")
    calls = []
    scanner.full_scan(load_torrent(built.torrent), built.save, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1][0] == calls[-1][1] == sum(built.files.values())


def _baseline(result):
    return {f.entry.index: {s.piece: s.xxh3 for s in f.segments} for f in result.files}


@pytest.mark.parametrize("creator", ["v1", "hybrid"])
def test_quick_scan_finds_what_full_scan_finds(tmp_path, creator, scanner):
    built = build(tmp_path, multi_layout(16 * KIB), 16 * KIB, creator)
    meta = load_torrent(built.torrent)
    baseline = _baseline(scanner.full_scan(meta, built.save))
    intact = quick_scan(meta, built.save, baseline, buffer_bytes=32 * KIB)
    assert intact.ok and intact.bad_pieces == []
    assert intact.bytes_read == sum(built.files.values())

    expect = damage(built, "flip", f"{NAME}/{UNICODE}")
    damage(built, "missing", f"{NAME}/one.txt")
    damage(built, "extend", f"{NAME}/exact.bin")
    quick = quick_scan(meta, built.save, baseline, buffer_bytes=32 * KIB)
    statuses = {meta.files[f.file_index].path: f.status for f in quick.files}
    assert statuses[f"{NAME}/{UNICODE}"] == "damaged"
    assert statuses[f"{NAME}/one.txt"] == "missing"
    assert statuses[f"{NAME}/exact.bin"] == "size_mismatch"
    assert set(statuses.values()) == {"ok", "damaged", "missing", "size_mismatch"}
    flipped = next(f for f in quick.files if meta.files[f.file_index].path == f"{NAME}/{UNICODE}")
    assert [p for p, _, _ in flipped.bad_segments] == sorted(expect.bad)
    # The segment reported is the flipped byte's piece-aligned range of that file.
    piece, offset, length = flipped.bad_segments[0]
    at = built.files[f"{NAME}/{UNICODE}"] * 3 // 5
    assert offset <= at < offset + length


def test_quick_scan_narrowed_to_pieces(tmp_path, scanner):
    built = build(tmp_path, single_layout(10 * 16 * KIB), 16 * KIB, "v1")
    meta = load_torrent(built.torrent)
    baseline = _baseline(scanner.full_scan(meta, built.save))
    damage(built, "flip", next(iter(built.files)))  # byte 98304: piece 6
    assert quick_scan(meta, built.save, baseline, pieces={0, 1, 2}).ok
    narrowed = quick_scan(meta, built.save, baseline, pieces={5, 6})
    assert narrowed.bad_pieces == [6] and narrowed.bytes_read == 2 * 16 * KIB


def test_directory_where_a_file_should_be(tmp_path, scanner):
    built = build(tmp_path, multi_layout(16 * KIB), 16 * KIB, "hybrid")
    target = built.save / NAME / "one.txt"
    target.unlink()
    target.mkdir()
    with pytest.raises(PayloadError, match="one.txt.*directory"):
        scanner.full_scan(load_torrent(built.torrent), built.save)


def test_memory_stays_bounded(tmp_path):
    """The buffer pool caps what a scan holds, whatever the payload size."""
    import tracemalloc

    built = build(tmp_path, single_layout(6 * MIB), 64 * KIB, "hybrid")
    meta = load_torrent(built.torrent)
    sc = Scanner(buffer_bytes=256 * KIB, buffers=3)
    tracemalloc.start()
    sc.full_scan(meta, built.save)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 3 * MIB
    assert os.path.getsize(built.save / f"{NAME}.mkv") == 6 * MIB


@pytest.mark.parametrize("creator", CREATORS)
@pytest.mark.parametrize("kind,target", [("none", f"{NAME}/one.txt"), ("flip", f"{NAME}/{UNICODE}"),
                                         ("truncate", f"{NAME}/{UNICODE}"), ("missing", f"{NAME}/CD1/a.flac"),
                                         ("extend", f"{NAME}/exact.bin")])
def test_reads_smaller_than_pieces(tmp_path, creator, kind, target, session):
    """Pieces of 128 KiB read in 16 KiB slices: hashes streamed across reads, pieces spanning files."""
    built = build(tmp_path, multi_layout(48 * KIB), 128 * KIB, creator)
    expect = damage(built, kind, target)
    for sc in (Scanner(buffer_bytes=16 * KIB, buffers=2), Scanner(workers=3, buffer_bytes=48 * KIB, buffers=5)):
        verify(built, expect, sc, session)


def test_sliced_reads_give_the_same_hashes_as_whole_ones(tmp_path):
    built = build(tmp_path, multi_layout(40 * KIB), 256 * KIB, "hybrid")
    meta = load_torrent(built.torrent)
    whole = Scanner(buffer_bytes=1024 * KIB).full_scan(meta, built.save)
    sliced = Scanner(buffer_bytes=16 * KIB).full_scan(meta, built.save)
    for a, b in zip(whole.files, sliced.files):
        assert a.sha256 == b.sha256 and a.v2_root == b.v2_root
        assert [(s.piece, s.xxh3, s.root, s.sha1) for s in a.segments] == \
            [(s.piece, s.xxh3, s.root, s.sha1) for s in b.segments]
