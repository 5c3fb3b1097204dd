"""The snapshot store on real files: dedup, stat-only re-snapshots, restore, heal, corruption."""

import hashlib
import os
from pathlib import Path

import pytest

from companion.catalog import Catalog
from companion.errors import StoreCorrupt
from companion.piece_plan import file_segments
from companion.store import SnapshotRefused, Store
from companion.store.repair import find_damaged, heal_in_place
from companion.torrent import load_torrent
from tests.helpers import flip_byte, make_torrent, payload_reads, write_payload

PIECE = 32768


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_bytes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def env(tmp_path):
    cat = Catalog(tmp_path / "catalog.sqlite")
    store = Store.open(tmp_path / "store", cat, pack_size=256 * 1024)
    yield tmp_path, cat, store
    cat.close()


def album(tmp_path: Path, kind: str = "hybrid", name: str = "album") -> tuple:
    data = tmp_path / "data"
    write_payload(data / name, {"01.flac": 9 * PIECE + 1234, "02.flac": 3 * PIECE, "cover.jpg": 5000,
                                "empty.txt": b""}, seed=hash(name) % 1000)
    meta = load_torrent(make_torrent(data / name, PIECE, kind, out=tmp_path / f"{name}.{kind}.torrent"))
    return meta, data


@pytest.mark.parametrize("kind", ["v1", "v2", "hybrid"])
def test_restore_equals_original(env, kind):
    tmp, _cat, store = env
    meta, data = album(tmp, kind)
    snap = store.snapshot(meta, data, "manual")
    assert snap.bytes == meta.payload_size and snap.new_bytes == meta.payload_size
    assert snap.files == len(meta.real_files)
    result = store.restore(snap.id, tmp / "out")
    assert result.bytes == meta.payload_size
    for entry in meta.real_files:
        assert sha(tmp / "out" / entry.path) == sha(data / entry.path), entry.path
    assert not [p for p in (tmp / "out").rglob(".*")]  # no temp files left
    assert store.check().ok


def test_restore_some_files(env):
    tmp, _cat, store = env
    meta, data = album(tmp)
    snap = store.snapshot(meta, data, "manual")
    result = store.restore(snap.id, tmp / "out", files=["cover.jpg"])
    assert result.files == ["album/cover.jpg"]
    assert sorted(tree_bytes(tmp / "out")) == ["album/cover.jpg"]
    assert sha(tmp / "out/album/cover.jpg") == sha(data / "album/cover.jpg")


def test_dedup_across_torrents_sharing_a_file(env):
    tmp, _cat, store = env
    meta, data = album(tmp, "v2")
    first = store.snapshot(meta, data, "manual")
    # A second torrent of one file of the album: its chunks are already stored.
    single = load_torrent(make_torrent(data / "album" / "01.flac", PIECE, "v2", out=tmp / "single.torrent"))
    before = tree_bytes(tmp / "store" / "data")
    second = store.snapshot(single, data / "album", "auto")
    assert first.new_bytes == meta.payload_size
    assert second.bytes == single.payload_size and second.new_bytes == 0
    assert tree_bytes(tmp / "store" / "data") == before
    store.restore(second.id, tmp / "out")
    assert sha(tmp / "out" / "01.flac") == sha(data / "album" / "01.flac")


def test_unchanged_resnapshot_reads_nothing(env, monkeypatch):
    tmp, _cat, store = env
    meta, data = album(tmp)
    first = store.snapshot(meta, data, "auto")
    stored = tree_bytes(tmp / "store")
    payload_reads(monkeypatch, forbid=True)
    second = store.snapshot(meta, data, "auto")
    assert second.id != first.id and second.new_bytes == 0 and second.bytes == first.bytes
    after = tree_bytes(tmp / "store")
    # Only the new snapshot tree appeared: no pack, no index file.
    assert {k: v for k, v in after.items() if not k.startswith("snapshots/")} == \
        {k: v for k, v in stored.items() if not k.startswith("snapshots/")}
    assert store.chunk_map(second.id) == store.chunk_map(first.id)


def test_changed_file_alone_is_read_again(env, monkeypatch):
    tmp, _cat, store = env
    meta, data = album(tmp)
    store.snapshot(meta, data, "auto")
    path = data / "album" / "02.flac"
    os.utime(path, ns=(1, 1))  # same bytes, new mtime: read again, no new chunk
    read = payload_reads(monkeypatch)
    snap = store.snapshot(meta, data, "auto")
    assert set(read) == {"02.flac"}
    assert snap.new_bytes == 0
    store.restore(snap.id, tmp / "out")
    for entry in meta.real_files:
        assert sha(tmp / "out" / entry.path) == sha(data / entry.path)


@pytest.mark.parametrize("kind", ["v1", "hybrid"])
def test_payload_that_does_not_match_is_refused(env, kind):
    tmp, cat, store = env
    meta, data = album(tmp, kind)
    flip_byte(data / "album" / "01.flac", 70000)
    with pytest.raises(SnapshotRefused, match="does not match its torrent"):
        store.snapshot(meta, data, "manual")
    assert store.snapshots() == []
    left = tree_bytes(tmp / "store")
    assert [k for k in left if not k.startswith(("config.json", "lock"))] == []


def test_corrupt_pack_is_detected_and_named(env):
    tmp, _cat, store = env
    meta, data = album(tmp)
    snap = store.snapshot(meta, data, "manual")
    chunks = store.chunk_map(snap.id)
    _offset, _length, segment = chunks[(0, 2)]  # a segment of the torrent: read out of a content chunk
    (_o, _n, cid), = store.file_content(snap.id, 0)  # 01.flac is one content chunk
    entry = store.index.get(cid)
    pack = tmp / "store" / "data" / entry.pack[:2] / entry.pack
    flip_byte(pack, entry.offset + 2 * PIECE + 100)
    with pytest.raises(StoreCorrupt) as err:
        store.read_chunk(segment)
    assert segment in str(err.value) and cid in str(err.value) and entry.pack in str(err.value)
    report = store.check()
    assert not report.ok and any(cid in e for e in report.errors)
    # restore stops without leaving the file (or a temp file) behind
    with pytest.raises(StoreCorrupt, match=cid):
        store.restore(snap.id, tmp / "out", files=["01.flac"])
    assert not (tmp / "out" / "album" / "01.flac").exists()
    assert not [p for p in (tmp / "out").rglob(".*")]
    # heal refuses to write bad data: the payload is not touched
    target = data / "album" / "01.flac"
    flip_byte(target, 2 * PIECE + 5)
    damaged = target.read_bytes()
    with pytest.raises(StoreCorrupt, match=cid):
        store.heal(snap.id, data, [(0, 2)])
    assert target.read_bytes() == damaged


def test_heal_writes_only_the_given_segments(env):
    tmp, _cat, store = env
    meta, data = album(tmp)
    snap = store.snapshot(meta, data, "auto")
    target = data / "album" / "01.flac"
    original = target.read_bytes()
    first_piece = {s.piece - file_segments(meta, meta.real_files[0])[0].piece: s
                   for s in file_segments(meta, meta.real_files[0])}
    flip_byte(target, 3 * PIECE + 10)
    flip_byte(target, 7 * PIECE + 20)
    inode = target.stat().st_ino
    damage = find_damaged(store, snap.id, data)
    assert damage.segments == [(0, first_piece[3].piece), (0, first_piece[7].piece)]
    result = store.heal(snap.id, data, [(0, first_piece[3].piece)])
    assert result.bytes == PIECE
    now = target.read_bytes()
    assert target.stat().st_ino == inode  # written in place
    assert now[: 7 * PIECE] == original[: 7 * PIECE]  # the healed piece is back
    assert now[7 * PIECE + 20] != original[7 * PIECE + 20]  # the other damage was left alone
    assert now[7 * PIECE + 21:] == original[7 * PIECE + 21:]
    damage, healed = heal_in_place(store, snap.id, data)
    assert healed.segments == [(0, first_piece[7].piece)]
    assert target.read_bytes() == original and target.stat().st_ino == inode


def test_heal_in_place_truncated_missing_and_extended(env):
    tmp, _cat, store = env
    meta, data = album(tmp)
    snap = store.snapshot(meta, data, "auto")
    originals = {e.path: (data / e.path).read_bytes() for e in meta.real_files}
    os.truncate(data / "album" / "01.flac", 4 * PIECE + 7)
    (data / "album" / "cover.jpg").unlink()
    with open(data / "album" / "02.flac", "ab") as fh:
        fh.write(b"tagger junk")
    damage, healed = heal_in_place(store, snap.id, data)
    assert damage.files["album/01.flac"] == "size_mismatch"
    assert damage.files["album/cover.jpg"] == "missing"
    assert damage.files["album/02.flac"] == "size_mismatch"
    assert all((data / p).read_bytes() == b for p, b in originals.items())
    assert find_damaged(store, snap.id, data).ok


def test_snapshot_records(env):
    tmp, cat, store = env
    meta, data = album(tmp)
    a = store.snapshot(meta, data, "preflight", job_id=42)
    b = store.snapshot(meta, data, "auto", files=[meta.real_files[1].index])
    assert [s.id for s in store.snapshots(meta.id)] == [a.id, b.id]
    assert store.latest(meta.id).id == b.id
    assert store.get(a.id[:10]).job_id == "42" and store.get(a.id).reason == "preflight"
    assert b.files == 1 and b.bytes == meta.real_files[1].size
    # the full pass also recorded the catalog's baseline (one read for both)
    segs = cat.get_segments(meta.id)
    assert segs and all(s["chunk_id"] for s in segs)
    assert {(s["file_index"], s["piece"]): s["chunk_id"] for s in segs} == \
        {k: v[2] for k, v in store.chunk_map(a.id).items()}


def test_unusable_store_path_is_a_clear_error(tmp_path):
    from companion.errors import ConfigError

    (tmp_path / "file").write_text("not a folder")
    cat = Catalog(tmp_path / "catalog.sqlite")
    with pytest.raises(ConfigError, match="cannot use it as the store"):
        Store.open(tmp_path / "file" / "store", cat)
    cat.close()


def test_payload_changed_during_the_snapshot_is_refused(env, monkeypatch):
    # chunks are copied from the payload file by the kernel after the scan hashed them: a write
    # in between must not end up in the store under the old bytes' id
    tmp, _cat, store = env
    meta, data = album(tmp)
    real = store.scanner.full_scan

    def scan_then_write(*args, **kwargs):
        result = real(*args, **kwargs)
        flip_byte(data / "album" / "01.flac", 100)
        return result

    monkeypatch.setattr(store.scanner, "full_scan", scan_then_write)
    with pytest.raises(SnapshotRefused, match="changed while it was being snapshotted"):
        store.snapshot(meta, data, "manual")
    assert store.snapshots() == []
    assert not [p for p in (tmp / "store" / "data").rglob("*") if p.is_file()]


def test_byte_copies_without_the_payload_as_source(tmp_path):
    cat = Catalog(tmp_path / "catalog.sqlite")
    store = Store.open(tmp_path / "store", cat, copy_from_payload=False, reflinks=False)
    meta, data = album(tmp_path)
    snap = store.snapshot(meta, data, "manual")
    store.restore(snap.id, tmp_path / "out")
    for entry in meta.real_files:
        assert sha(tmp_path / "out" / entry.path) == sha(data / entry.path)
    assert store.check().ok
    cat.close()


def test_an_all_digit_job_id_stays_text(tmp_path):
    """AI job ids are hex strings; SQLite's INTEGER affinity must not turn one into a number."""
    from companion.catalog import Catalog
    from companion.store import Store
    from companion.torrent import load_torrent
    from tests.helpers import make_torrent, write_payload

    content = write_payload(tmp_path / "data" / "album", {"a.bin": 40_000})
    meta = load_torrent(make_torrent(content, 16384, "hybrid"))
    catalog = Catalog(tmp_path / "catalog.sqlite")
    store = Store.open(tmp_path / "store", catalog)
    snap = store.snapshot(meta, tmp_path / "data", "preflight", job_id="0123456789012345")
    assert snap.job_id == "0123456789012345"
    assert store.get(snap.id).job_id == "0123456789012345"


def test_a_renamed_torrent_restores_under_the_torrents_own_names(tmp_path):
    """qBittorrent renamed a file: the snapshot records where it is; a drill restores the .torrent's layout."""
    import hashlib

    from companion.catalog import Catalog
    from companion.drill.restore import restore_snapshot
    from companion.locate import with_paths
    from companion.store import Store
    from companion.torrent import load_torrent
    from tests.helpers import make_torrent, write_payload

    content = write_payload(tmp_path / "data" / "album", {"a.bin": 70_000, "b.bin": 30_000})
    meta = load_torrent(make_torrent(content, 16384, "hybrid"))
    a = next(e for e in meta.real_files if e.path.endswith("a.bin"))
    (tmp_path / "data" / "album" / "a.bin").rename(tmp_path / "data" / "album" / "renamed.bin")
    located = with_paths(meta, {a.index: "album/renamed.bin"})
    catalog = Catalog(tmp_path / "catalog.sqlite")
    store = Store.open(tmp_path / "store", catalog)
    snap = store.snapshot(located, tmp_path / "data", "manual")

    out = tmp_path / "scratch"
    restored = restore_snapshot(store, catalog, snap.id, meta, out)
    assert not restored.corrupt
    want = hashlib.sha256((tmp_path / "data" / "album" / "renamed.bin").read_bytes()).hexdigest()
    assert hashlib.sha256((out / "album" / "a.bin").read_bytes()).hexdigest() == want
    assert not (out / "album" / "renamed.bin").exists()
