"""Issue 12 item 7: a store that repairs itself. A chunk a check found bad is never reused (the
next snapshot stores it again from the verified payload); `check-store --repair` rewrites damaged
packs from payloads that still verify and clears the suspect mark of the snapshots it made whole;
`snapshots` shows suspect snapshots and why. Through the real `seedward` command."""

import hashlib
import json

from companion.catalog import Catalog
from tests.helpers import flip_byte, make_torrent, seedward, write_payload

PIECE = 16384


def setup(tmp_path):
    home, data = tmp_path / "home", tmp_path / "data"
    write_payload(data / "show", {"e01.mkv": 20 * PIECE + 99, "e02.mkv": 6 * PIECE, "notes.txt": 300}, seed=7)
    torrent = make_torrent(data / "show", PIECE, "hybrid", out=tmp_path / "show.torrent")
    r = seedward("catalog", "add", torrent, data, "--json", home=home)
    assert r.returncode == 0, r.stderr
    tid = json.loads(r.stdout)["id"]
    snap = json.loads(seedward("snapshot", tid, "--json", home=home, check=True).stdout)["snapshots"][0]
    return home, data, tid, snap


def packs(home):
    return sorted(p for p in (home / "store" / "data").rglob("*") if p.is_file())


def chunk_at(home, snap_id, file_index, piece):
    """The stored (content) chunk holding that piece of the file."""
    cat = Catalog(home / "catalog.sqlite")
    try:
        seg = cat.one("SELECT offset FROM snapshot_chunks WHERE snapshot_id = ? AND file_index = ? AND piece = ?",
                      (snap_id, file_index, piece))
        return cat.one("SELECT k.chunk_id, k.length FROM content_chunks k JOIN snapshot_files f ON f.sha256 = k.sha256"
                       " WHERE f.snapshot_id = ? AND f.file_index = ? AND k.offset <= ? AND k.offset + k.length > ?",
                       (snap_id, file_index, seg["offset"], seg["offset"]))
    finally:
        cat.close()


def corrupt_chunk(home, cid):
    """Flip a byte inside the chunk's copy in its pack (found through the pack's own trailer)."""
    for pack in packs(home):
        raw = pack.read_bytes()
        trailer_len = int.from_bytes(raw[-16:-8], "little")
        for c, offset, length, _w in json.loads(raw[-16 - trailer_len:-16]):
            if c == cid:
                flip_byte(pack, offset + length // 2)
                return pack
    raise AssertionError(f"chunk {cid} is in no pack")


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listed(home):
    return {s["id"]: s for s in json.loads(seedward("snapshots", "--json", home=home, check=True).stdout)["snapshots"]}


def test_a_bad_chunk_is_stored_again_by_the_next_snapshot(tmp_path):
    home, data, tid, snap = setup(tmp_path)
    bad = chunk_at(home, snap["id"], 0, 3)
    corrupt_chunk(home, bad["chunk_id"])
    r = seedward("check-store", home=home)
    assert r.returncode == 5 and bad["chunk_id"] in r.stdout
    shown = listed(home)[snap["id"]]
    assert shown["suspect"] is True and shown["suspect_because"]["by"] == "store check"
    assert bad["chunk_id"] in shown["suspect_because"]["reason"]
    table = seedward("snapshots", home=home, check=True).stdout
    assert "SUSPECT" in table and "suspect since" in table

    again = json.loads(seedward("snapshot", tid, "--json", home=home, check=True).stdout)["snapshots"][0]
    assert again["new_bytes"] == bad["length"]  # not "0 new": the bad chunk is stored again, nothing else
    assert json.loads(seedward("check-store", "--json", home=home).stdout)["ok"]
    assert all(not s["suspect"] for s in listed(home).values())  # the old snapshot is whole again
    r = seedward("restore", tid, "--snapshot", snap["id"], "--to", tmp_path / "out", home=home)
    assert r.returncode == 0, r.stderr
    assert sha(tmp_path / "out" / "show" / "e01.mkv") == sha(data / "show" / "e01.mkv")


def test_check_store_repair_rewrites_damaged_packs_from_the_payload(tmp_path):
    home, data, tid, snap = setup(tmp_path)
    bad = chunk_at(home, snap["id"], 0, 5)
    damaged_pack = corrupt_chunk(home, bad["chunk_id"])
    assert seedward("check-store", home=home).returncode == 5
    dry = json.loads(seedward("check-store", "--repair", "--dry-run", "--json", home=home, check=True).stdout)
    assert dry["chunks_recovered"] == [bad["chunk_id"]] and damaged_pack.exists()

    r = seedward("check-store", "--repair", "--json", home=home)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["chunks_recovered"] == [bad["chunk_id"]] and out["chunks_lost"] == []
    assert out["packs_rewritten"] == [damaged_pack.name] and out["snapshots_cleared"] == [snap["id"]]
    assert not damaged_pack.exists()
    assert json.loads(seedward("check-store", "--json", home=home).stdout)["ok"]
    assert not listed(home)[snap["id"]]["suspect"]
    r = seedward("restore", tid, "--snapshot", snap["id"], "--to", tmp_path / "out", home=home)
    assert r.returncode == 0, r.stderr
    for name in ("e01.mkv", "e02.mkv", "notes.txt"):
        assert sha(tmp_path / "out" / "show" / name) == sha(data / "show" / name)


def test_repair_names_what_no_payload_gives_back_and_the_snapshot_stays_suspect(tmp_path):
    home, data, tid, snap = setup(tmp_path)
    bad = chunk_at(home, snap["id"], 0, 2)
    corrupt_chunk(home, bad["chunk_id"])
    flip_byte(data / "show" / "e01.mkv", 2 * PIECE + 7)  # the payload no longer verifies either
    r = seedward("check-store", "--repair", home=home)
    assert r.returncode == 5 and f"lost: chunk {bad['chunk_id']}" in r.stdout
    shown = listed(home)[snap["id"]]
    assert shown["suspect"] and "lost" in shown["suspect_because"]["reason"]
    check = json.loads(seedward("check-store", "--json", home=home).stdout)
    assert not check["ok"] and any("lacks" in e for e in check["errors"])


def test_a_missing_pack_is_rebuilt_from_the_payload(tmp_path):
    home, data, tid, snap = setup(tmp_path)
    for pack in packs(home):
        pack.unlink()
    assert seedward("check-store", home=home).returncode == 5
    out = json.loads(seedward("check-store", "--repair", "--json", home=home, check=True).stdout)
    assert out["chunks_lost"] == [] and len(out["chunks_recovered"]) > 0
    assert json.loads(seedward("check-store", "--json", home=home).stdout)["ok"]
    r = seedward("restore", tid, "--snapshot", snap["id"], "--to", tmp_path / "out", home=home)
    assert r.returncode == 0, r.stderr
    assert sha(tmp_path / "out" / "show" / "e01.mkv") == sha(data / "show" / "e01.mkv")
