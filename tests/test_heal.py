"""Heal's write path on real files: quarantine, piece-level write back, verification, refusals.

The chunk source here is the payload's own segments captured during a scan (the store's
read_chunk has the same shape); tests with the real store and qBittorrent are in test_heal_qbt.py.
"""

import json
import os

import pytest

from companion.drift.classify import Baseline, Observed, classify
from companion.errors import StoreCorrupt
from companion.drift.heal import FileDamage, bad_pieces, heal_files
from companion.quickscan import quick_scan
from companion.scan import Scanner
from companion.torrent import load_torrent

from .helpers import flip_byte, make_torrent, write_payload

PIECE = 16384


@pytest.fixture(params=["v1", "hybrid"])
def payload(request, tmp_path):
    """A multi-file payload (files not piece-aligned for v1), its meta, chunk map and chunks."""
    content = write_payload(tmp_path / "dl" / "Album", {"01.flac": 70_000, "02.flac": 50_001, "cover.jpg": 9_000})
    meta = load_torrent(make_torrent(content, piece_size=PIECE, kind=request.param, out=tmp_path / "a.torrent"))
    chunks, ids = {}, {}

    def sink(file_index, seg, data):
        chunks[seg.root.hex()] = bytes(data)
        ids[(file_index, seg.piece)] = seg.root.hex()

    result = Scanner().full_scan(meta, tmp_path / "dl", chunk_roots=True, sink=sink)
    assert result.ok
    baseline = {f.entry.index: {s.piece: s.xxh3 for s in f.segments} for f in result.files}
    stats = {f.entry.index: f.stat for f in result.files}
    originals = {f.entry.path.split("/", 1)[1]: f.path.read_bytes() for f in result.files}
    return tmp_path, meta, chunks, ids, baseline, stats, originals


def drifts(meta, save_path, baseline, stats):
    """Quick verify + classify every file, as the drift monitor does."""
    out = []
    entries = {e.index: e for e in meta.real_files}
    for qf in quick_scan(meta, save_path, baseline).files:
        st, old = qf.stat, stats[qf.file_index]
        d = classify(Baseline(old.size, old.inode, old.device),
                     Observed(qf.status, tuple(qf.bad_segments), st.size if st else None, st.inode if st else None,
                              st.device if st else None, st.nlink if st else 1))
        if d.kind != "false_alarm":
            out.append(FileDamage(entries[qf.file_index], qf.path, d))
    return out


def test_flipped_byte_heals_only_its_piece_and_keeps_the_drifted_range(payload):
    root, meta, chunks, ids, baseline, stats, originals = payload
    target = root / "dl" / "Album" / "02.flac"
    flip_byte(target, 20_000)
    damages = drifts(meta, root / "dl", baseline, stats)
    assert [(d.entry.path, d.drift.kind) for d in damages] == [("Album/02.flac", "damaged")]
    bad = bad_pieces(meta, root / "dl", range(meta.num_pieces))
    assert len(bad) == 1
    kept, written = heal_files(meta, root / "dl", damages, ids, chunks.__getitem__, root / "quarantine")
    assert written.pieces == bad
    assert written.bytes_written <= PIECE
    assert target.read_bytes() == originals["02.flac"]
    assert bad_pieces(meta, root / "dl", range(meta.num_pieces)) == []
    record = json.loads((kept.folder / "drift.json").read_text())["files"][0]
    assert record["kind"] == "damaged" and record["pieces"] == bad
    rng = record["ranges"][0]
    drifted = (kept.folder / rng["file"]).read_bytes()
    # The quarantined range holds the bytes as the drift left them: the flipped byte included.
    assert drifted[20_000 - rng["offset"]] == originals["02.flac"][20_000] ^ 0xFF


def test_truncated_and_missing_files_are_written_whole(payload):
    root, meta, chunks, ids, baseline, stats, originals = payload
    a, c = root / "dl" / "Album" / "01.flac", root / "dl" / "Album" / "cover.jpg"
    os.truncate(a, 1000)
    c.unlink()
    damages = drifts(meta, root / "dl", baseline, stats)
    assert sorted((d.entry.path, d.drift.kind) for d in damages) == [("Album/01.flac", "truncated"),
                                                                     ("Album/cover.jpg", "missing")]
    kept, written = heal_files(meta, root / "dl", damages, ids, chunks.__getitem__, root / "quarantine")
    assert a.read_bytes() == originals["01.flac"] and c.read_bytes() == originals["cover.jpg"]
    assert (kept.folder / "Album" / "01.flac").read_bytes() == originals["01.flac"][:1000]
    assert bad_pieces(meta, root / "dl", range(meta.num_pieces)) == []


def test_replaced_and_extended_files(payload):
    root, meta, chunks, ids, baseline, stats, originals = payload
    a, b = root / "dl" / "Album" / "01.flac", root / "dl" / "Album" / "02.flac"
    tmp = a.with_name(".01.flac.tmp")
    tmp.write_bytes(b"ID3" + originals["01.flac"][3:])  # a tagger: write a temp copy, rename it over
    os.replace(tmp, a)
    with open(b, "ab") as fh:
        fh.write(b"TAG" + bytes(125))  # an appended ID3v1 tag
    damages = {d.entry.path: d for d in drifts(meta, root / "dl", baseline, stats)}
    assert damages["Album/01.flac"].drift.kind == "replaced"
    assert damages["Album/02.flac"].drift.kind == "extended"
    kept, _ = heal_files(meta, root / "dl", list(damages.values()), ids, chunks.__getitem__, root / "quarantine")
    assert a.read_bytes() == originals["01.flac"] and b.read_bytes() == originals["02.flac"]
    assert (kept.folder / "Album" / "01.flac").read_bytes()[:3] == b"ID3"
    records = {r["path"]: r for r in json.loads((kept.folder / "drift.json").read_text())["files"]}
    tail = [r for r in records["Album/02.flac"]["ranges"] if r["offset"] == len(originals["02.flac"])]
    assert (kept.folder / tail[0]["file"]).read_bytes() == b"TAG" + bytes(125)


def test_a_bad_chunk_is_refused_before_anything_is_written(payload):
    root, meta, chunks, ids, baseline, stats, originals = payload
    target = root / "dl" / "Album" / "01.flac"
    flip_byte(target, 100)
    flip_byte(target, 40_000)
    damaged_bytes = target.read_bytes()
    damages = drifts(meta, root / "dl", baseline, stats)
    entry = next(e for e in meta.real_files if e.path.endswith("01.flac"))
    cid = ids[(entry.index, (entry.offset + 40_000) // meta.piece_length)]  # a piece the heal must write
    forged = dict(chunks)
    forged[cid] = b"\0" * len(chunks[cid])

    with pytest.raises(StoreCorrupt, match=cid):
        heal_files(meta, root / "dl", damages, ids, forged.__getitem__, root / "quarantine")
    assert target.read_bytes() == damaged_bytes
    assert not (root / "quarantine").exists() or not any((root / "quarantine").iterdir())

    def corrupt_store(chunk_id):
        raise StoreCorrupt("pack 3f2a", f"chunk {chunk_id} fails its hash")

    with pytest.raises(StoreCorrupt, match=ids[(entry.index, meta.file_pieces(entry).start)]):
        heal_files(meta, root / "dl", damages, ids, corrupt_store, root / "quarantine")
    assert target.read_bytes() == damaged_bytes


def test_large_damage_is_spilled_not_held_in_memory(payload, monkeypatch):
    import companion.drift.heal as heal

    root, meta, chunks, ids, baseline, stats, originals = payload
    monkeypatch.setattr(heal, "IN_MEMORY_BYTES", 1)
    target = root / "dl" / "Album" / "01.flac"
    for offset in (10, 20_000, 50_000):
        flip_byte(target, offset)
    damages = drifts(meta, root / "dl", baseline, stats)
    staged = heal.stage(meta, root / "dl", damages, ids, chunks.__getitem__, root / "scratch")
    assert staged.ranges and all(isinstance(v, heal.Spill) for v in staged.ranges.values())
    staged.discard()
    kept, written = heal_files(meta, root / "dl", damages, ids, chunks.__getitem__, root / "quarantine")
    assert target.read_bytes() == originals["01.flac"]
    assert not list((root / "quarantine").glob(".*spill"))


def test_a_refused_whole_file_heal_leaves_no_staged_file(payload):
    root, meta, chunks, ids, baseline, stats, originals = payload
    target = root / "dl" / "Album" / "02.flac"
    os.truncate(target, 5_000)
    damages = drifts(meta, root / "dl", baseline, stats)
    index = next(e.index for e in meta.real_files if e.path.endswith("02.flac"))
    cid = ids[(index, meta.file_pieces(meta.files[index]).start + 1)]

    def rotten(chunk_id):
        if chunk_id == cid:
            raise StoreCorrupt("pack 77", f"chunk {chunk_id} fails its hash")
        return chunks[chunk_id]

    with pytest.raises(StoreCorrupt, match=cid):
        heal_files(meta, root / "dl", damages, ids, rotten, root / "quarantine")
    assert target.stat().st_size == 5_000
    assert sorted(p.name for p in target.parent.iterdir()) == ["01.flac", "02.flac", "cover.jpg"]
