"""The cross-seed aware store (issue 16 item 2): files are stored as content chunks, independent of
each torrent's piece layout, so the same file in several torrents with different piece sizes is
stored once; every torrent's piece-aligned hashes stay in the catalog; stores of piece-aligned
chunks (before issue 16) keep working. Through the real `seedward` command where it has a verb."""

import hashlib
import json
import shutil

from companion.catalog import Catalog
from companion.catalog import content as content_rows
from companion.catalog import snapshots as records
from companion.scan import Scanner
from companion.store import Store
from companion.store.chunk import chunk_width
from companion.torrent import load_torrent
from tests.helpers import flip_byte, make_torrent, seedward, write_payload

MB = 1_000_000


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pack_bytes(home) -> int:
    return sum(p.stat().st_size for p in (home / "store" / "data").rglob("*") if p.is_file())


def added(torrent, save, home) -> str:
    r = seedward("catalog", "add", torrent, save, "--json", home=home)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["id"]


def test_the_same_file_in_three_torrents_with_different_pieces_is_stored_once(tmp_path):
    # The measurement: one 20 MB file cross-seeded; before, each torrent's piece layout cut
    # it into other chunks (42 MB stored for 23 MB of unique bytes with two torrents).
    src = write_payload(tmp_path / "src", {"movie.mkv": 20 * MB, "A.nfo": 1_500_001, "sample.bin": 1_500_000}, seed=4)
    home = tmp_path / "home"
    (tmp_path / "a" / "release").mkdir(parents=True)
    (tmp_path / "b" / "release").mkdir(parents=True)
    (tmp_path / "c").mkdir()
    for name, where in (("A.nfo", "a/release"), ("movie.mkv", "a/release"), ("movie.mkv", "b/release"),
                        ("sample.bin", "b/release"), ("movie.mkv", "c")):
        shutil.copy2(src / name, tmp_path / where / name)
    # v1 with the movie second (it starts mid-piece), hybrid, v2: 16, 64 and 256 KiB pieces
    ids = [added(make_torrent(tmp_path / "a" / "release", 16384, "v1", out=tmp_path / "a.torrent"), tmp_path / "a", home),
           added(make_torrent(tmp_path / "b" / "release", 65536, "hybrid", out=tmp_path / "b.torrent"), tmp_path / "b", home),
           added(make_torrent(tmp_path / "c" / "movie.mkv", 262144, "v2", out=tmp_path / "c.torrent"), tmp_path / "c", home)]
    for tid in ids:
        seedward("snapshot", tid, "--json", home=home, check=True)
    unique = 20 * MB + 1_500_001 + 1_500_000
    stored = pack_bytes(home)
    assert unique <= stored < unique * 1.01  # every pack's trailer and 4 KiB alignment, nothing stored twice

    cov = json.loads(seedward("coverage", "--json", home=home, check=True).stdout)["budget"]
    assert cov["logical_bytes"] == 3 * 20 * MB + 1_500_001 + 1_500_000
    assert cov["dedup_saved_bytes"] == 2 * 20 * MB  # shown to the user
    cat = Catalog(home / "catalog.sqlite")
    try:
        assert content_rows.stored_bytes(cat) == {"bytes": unique, "logical_bytes": cov["logical_bytes"],
                                                  "dedup_saved_bytes": 2 * 20 * MB}
        # each torrent keeps its own piece-aligned hashes: 16, 64 and 256 KiB segments of the movie
        for tid, piece in zip(ids, (16384, 65536, 262144)):
            snap = records.list_snapshots(cat, tid)[-1]
            movie = next(f for f in records.snapshot_files(cat, snap["id"]) if f["path"].endswith("movie.mkv"))
            lengths = {c["length"] for c in records.snapshot_chunks(cat, snap["id"], movie["file_index"])}
            assert max(lengths) == piece
    finally:
        cat.close()

    # each torrent restores byte for byte; a flipped byte in the v1 copy heals from the shared chunks
    for tid, where in zip(ids, ("a/release", "b/release", "c")):
        out = tmp_path / f"out-{tid[:6]}"
        seedward("restore", tid, "--to", out, home=home, check=True)
        assert sha(next(out.rglob("movie.mkv"))) == sha(src / "movie.mkv")
    flip_byte(tmp_path / "a" / "release" / "movie.mkv", 7 * MB + 3)
    r = seedward("restore", ids[0], home=home)  # in place: only the damaged segment is written
    assert r.returncode == 0, r.stdout + r.stderr
    assert sha(tmp_path / "a" / "release" / "movie.mkv") == sha(src / "movie.mkv")

    # forgetting two of them keeps the movie's chunks for the third; forgetting it too frees them
    snaps = json.loads(seedward("snapshots", "--json", home=home, check=True).stdout)["snapshots"]
    gone = [arg for s in snaps if s["torrent_id"] != ids[2] for arg in ("--snapshot", s["id"])]
    seedward("forget", *gone, "--prune", home=home, check=True)
    assert 20 * MB <= pack_bytes(home) < 20 * MB * 1.01
    out = tmp_path / "out-c-again"
    seedward("restore", ids[2], "--to", out, home=home, check=True)
    assert sha(out / "movie.mkv") == sha(src / "movie.mkv")


def legacy_snapshot(store, cat, meta, save):
    """A snapshot as stores before issue 16 kept it: the torrent's segments as chunks (layout 1)."""
    chunks, rows = [], []
    single = {e.index for e in meta.real_files if len(meta.file_pieces(e)) == 1}

    def sink(file_index, seg, data):
        chunks.append((seg.root.hex(), chunk_width(meta, seg.length, file_index in single), bytes(data)))

    result = Scanner().full_scan(meta, save, chunk_roots=True, sink=sink)
    assert result.ok
    cat.record_scan(result, reason="test", save_path=str(save))
    store.put_chunks(chunks)
    files = []
    for fs in result.files:
        files.append({"file_index": fs.entry.index, "path": fs.entry.path, "size": fs.entry.size,
                      "mtime_ns": fs.stat.mtime_ns, "inode": fs.stat.inode, "device": fs.stat.device,
                      "sha256": fs.sha256})
        rows += [(fs.entry.index, s.piece, s.offset, s.length, s.root.hex(), s.xxh3) for s in fs.segments]
    sid = "0" * 63 + "1"
    store.backend.put_bytes(f"snapshots/{sid}.json", b"{}")
    store.backend.put_bytes(f"torrents/{meta.id}.torrent", meta.raw)
    records.add_snapshot(cat, {"id": sid, "torrent_id": meta.id, "name": meta.name, "created_at": "2024-01-01T00:00:00",
                               "reason": "auto", "job_id": None, "bytes": meta.payload_size, "new_bytes": meta.payload_size,
                               "files": len(files), "save_path": str(save), "tree": f"snapshots/{sid}.json",
                               "cloned_bytes": 0, "trusted_bytes": 0, "layout": 1}, files, rows)
    return sid


def test_a_store_of_piece_aligned_chunks_keeps_working_and_moves_to_content_chunks(tmp_path):
    save = write_payload(tmp_path / "data", {"album/01.flac": 3 * MB + 17, "album/02.flac": 2 * MB}, seed=9)
    meta = load_torrent(make_torrent(save / "album", 32768, "v1", out=tmp_path / "album.torrent"))
    cat = Catalog(tmp_path / "catalog.sqlite")
    store_dir = tmp_path / "store"
    store = Store.open(store_dir, cat)
    (store_dir / "config.json").write_text(json.dumps({"version": 1, "chunks": "piece-aligned segments"}))
    store = Store.open(store_dir, cat)  # an old store: opened, its config upgraded, its snapshots read as they are
    assert json.loads((store_dir / "config.json").read_text())["version"] == 2
    old = legacy_snapshot(store, cat, meta, save)
    assert store.check(read_data=True).ok
    store.restore(old, tmp_path / "out")
    assert sha(tmp_path / "out" / "album" / "01.flac") == sha(save / "album" / "01.flac")
    flip_byte(save / "album" / "02.flac", 100_000)
    healed = store.heal(old, save, [(1, meta.file_pieces(meta.real_files[1])[3])])  # piece-aligned chunk, by id
    assert healed.bytes > 0 and Scanner().full_scan(meta, save).ok

    new = store.snapshot(meta, save, "manual")  # the next snapshot: content chunks (the old ones are not reused)
    assert content_rows.layout(cat, new.id) == content_rows.CONTENT and new.new_bytes == meta.payload_size
    assert store.chunk_map(new.id).keys() == store.chunk_map(old).keys()  # the same piece-aligned records
    before = sum(p.stat().st_size for p in (store_dir / "data").rglob("*") if p.is_file())
    store.forget(snapshot_ids=[old], prune=True)
    after = sum(p.stat().st_size for p in (store_dir / "data").rglob("*") if p.is_file())
    assert after < before - meta.payload_size * 0.9  # the piece-aligned copy is freed
    assert store.check(read_data=True).ok
    store.restore(new.id, tmp_path / "out2")
    for name in ("01.flac", "02.flac"):
        assert sha(tmp_path / "out2" / "album" / name) == sha(save / "album" / name)
    cat.close()
