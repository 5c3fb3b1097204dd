"""Read-only btrfs snapshots as the full tier (issue 16) on a real, loop-mounted btrfs made here:
a snapshot costs no extra disk, heals and restores like any snapshot (every segment verified
against its id), serves as an AI job's preflight, and is deleted by prune once no snapshot uses
it. Needs root, btrfs-progs (./quickstart installs it) and loop devices; skipped elsewhere."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from companion.catalog import Catalog
from companion.catalog import content as content_rows
from companion.catalog import fssnap as fs_rows
from companion.catalog import snapshots as records
from tests.helpers import flip_byte, make_torrent, seedward, write_payload

MiB = 2**20


@pytest.fixture
def btrfs(tmp_path):
    if os.geteuid() != 0 or shutil.which("mkfs.btrfs") is None:
        pytest.skip("needs root and mkfs.btrfs (apt-get install btrfs-progs) for a loop-mounted btrfs")
    image, mnt = tmp_path / "btrfs.img", tmp_path / f"btrfs-{uuid.uuid4().hex[:8]}"
    with open(image, "wb") as fh:
        fh.truncate(400 * MiB)  # sparse
    subprocess.run(["mkfs.btrfs", "-q", str(image)], check=True, capture_output=True)
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot loop-mount a btrfs image here: {mounted.stderr.strip()}")
    try:
        subprocess.run(["btrfs", "subvolume", "create", str(mnt / "seeds")], check=True, capture_output=True)
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def used(path) -> int:
    os.sync()
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def setup(tmp_path, btrfs, mode):
    data = btrfs / "seeds" / "tv"
    write_payload(data / "show", {"e01.mkv": 24 * MiB + 5, "e02.mkv": 8 * MiB, "show.nfo": 900}, seed=8)
    home = tmp_path / "home"  # the state home and its store: on another filesystem
    home.mkdir()
    (home / "config.toml").write_text(f'[store]\nfs_snapshots = "{mode}"\n[jobs]\nsandbox = "none"\n')
    torrent = make_torrent(data / "show", 65536, "hybrid", out=tmp_path / "show.torrent")
    r = seedward("catalog", "add", torrent, data, "--json", home=home)
    assert r.returncode == 0, r.stderr
    good = {p.name: sha(p) for p in (data / "show").iterdir()}
    return home, data, json.loads(r.stdout)["id"], good


def test_snapshots_are_read_only_btrfs_snapshots_heal_restore_and_prune(tmp_path, btrfs):
    home, data, tid, good = setup(tmp_path, btrfs, "always")
    before = used(btrfs)
    first = json.loads(seedward("snapshot", tid, "--json", home=home, check=True).stdout)["snapshots"][0]
    second = json.loads(seedward("snapshot", tid, "--json", home=home, check=True).stdout)["snapshots"][0]
    assert used(btrfs) - before < 2 * MiB  # 32 MiB of payload held at (almost) no extra disk
    assert not [p for p in (home / "store").rglob("data/*/*") if p.is_file()]  # no packs at all
    taken = list((btrfs / "seeds" / ".seedward-snapshots").iterdir())
    assert len(taken) == 1  # the second snapshot reuses the read-only snapshot: the files did not change
    cat = Catalog(home / "catalog.sqlite")
    try:
        assert {content_rows.layout(cat, s["id"]) for s in (first, second)} == {3}
        assert fs_rows.of_snapshot(cat, first["id"])["path"] == str(taken[0])
    finally:
        cat.close()
    with pytest.raises(OSError):
        (taken[0] / "tv" / "show" / "e01.mkv").write_bytes(b"x")  # read-only

    # heal in place from it: a flipped byte, then a deleted file (written whole, segment by segment)
    flip_byte(data / "show" / "e01.mkv", 17 * MiB + 3)
    (data / "show" / "e02.mkv").unlink()
    r = seedward("restore", tid, home=home)
    assert r.returncode == 0, r.stdout + r.stderr
    assert {p.name: sha(p) for p in (data / "show").iterdir()} == good
    r = seedward("restore", tid, "--to", tmp_path / "out", home=home)
    assert r.returncode == 0, r.stderr
    assert {p.name: sha(p) for p in (tmp_path / "out" / "show").iterdir()} == good
    check = json.loads(seedward("check-store", "--json", home=home).stdout)
    assert check["ok"], check

    cov = json.loads(seedward("coverage", tid[:10], "--json", home=home, check=True).stdout)["torrents"][0]
    assert cov["classes"]["file_deleted"]["survives"] and "fs-snapshot" in cov["classes"]["file_deleted"]["from"]

    # forgetting both snapshots and pruning deletes the read-only snapshot
    seedward("forget", "--snapshot", first["id"], "--snapshot", second["id"], "--prune", home=home, check=True)
    assert list((btrfs / "seeds" / ".seedward-snapshots").iterdir()) == []


def test_an_ai_job_preflight_is_a_read_only_snapshot_that_undoes_the_jobs_writes(tmp_path, btrfs):
    home, data, tid, good = setup(tmp_path, btrfs, "preflight")  # the default
    target = data / "show" / "e01.mkv"
    vandal = f"f = open({str(target)!r}, 'r+b'); f.seek(5_000_000); f.write(b'AI WAS HERE'); print('done')"
    r = seedward("job", "run", "--torrent", tid[:10], "--model", "m", "--model-version", "1", "--model-digest",
                 "sha256:" + "cd" * 32, "--prompt", "p", "--operator", "bob", "--json", "--",
                 sys.executable, "-c", vandal, home=home)
    out = json.loads(r.stdout)
    assert out["state"] == "tainted", r.stderr
    assert {p.name: sha(p) for p in (data / "show").iterdir()} == good  # healed from the preflight
    cat = Catalog(home / "catalog.sqlite")
    try:
        [snap] = records.list_snapshots(cat, tid)
        assert snap["reason"] == "preflight" and snap["layout"] == 3 and snap["new_bytes"] == 0
    finally:
        cat.close()
    # an ordinary snapshot under "preflight" is packs, as before
    manual = json.loads(seedward("snapshot", tid, "--json", home=home, check=True).stdout)["snapshots"][0]
    assert manual["new_bytes"] == sum((data / "show" / n).stat().st_size for n in good)


def test_a_read_only_snapshot_deleted_behind_the_stores_back_is_reported(tmp_path, btrfs):
    home, data, tid, good = setup(tmp_path, btrfs, "always")
    snap = json.loads(seedward("snapshot", tid, "--json", home=home, check=True).stdout)["snapshots"][0]
    [taken] = (btrfs / "seeds" / ".seedward-snapshots").iterdir()
    subprocess.run(["btrfs", "subvolume", "delete", str(taken)], check=True, capture_output=True)
    r = seedward("check-store", "--json", home=home)
    assert r.returncode == 5 and not json.loads(r.stdout)["ok"]
    listed = json.loads(seedward("snapshots", "--json", home=home, check=True).stdout)["snapshots"]
    assert [s["suspect"] for s in listed if s["id"] == snap["id"]] == [True]
    flip_byte(data / "show" / "e02.mkv", 1000)
    r = seedward("restore", tid, home=home)
    assert r.returncode != 0  # nothing to heal from: refused, named
    assert sha(data / "show" / "e02.mkv") != good["e02.mkv"]


def test_a_block_aligned_shift_is_cloned_not_written(tmp_path, btrfs):
    # "not rewriting what did not move": a header grown by whole 4 KiB blocks is undone with reflinks
    from companion.drift.detect import detect_drift
    from companion.ladder.heal import heal_from_supply
    from companion.ladder.sources import supply_for
    from companion.ladder.zones import keep_zones
    from companion.locate import catalog_meta
    from companion.store import Store

    home, data, tid, good = setup(tmp_path, btrfs, "off")
    cat = Catalog(home / "catalog.sqlite")
    store = Store.open(home / "store", cat)
    meta, save_path = catalog_meta(cat, tid)
    keep_zones(store, cat, meta, save_path)
    movie = data / "show" / "e01.mkv"
    for grow, aligned in ((65536, True), (4000, False)):
        body = movie.read_bytes()
        movie.write_bytes(body[:100] + b"\0" * grow + body[100:])  # the header grows by `grow` bytes
        found = detect_drift(cat, tid)
        supply = supply_for(cat, store, meta, save_path, found.damages)
        assert supply.complete, supply.missing
        before = used(btrfs)
        heal_from_supply(meta, save_path, found.damages, supply, home / "quarantine")
        assert sha(movie) == good["e01.mkv"]
        if aligned:
            assert supply.cloned >= movie.stat().st_size - 3 * 65536  # all but the header's pieces
            assert used(btrfs) - before < 2 * MiB  # the moved 24 MiB shared with the quarantined copy
        else:
            assert supply.cloned == 0  # a shift of 4,000 bytes moves every byte off the blocks: written
        from companion.catalog import drift as drift_rows
        from companion.scan import FileStat

        drift_rows.update_file_stat(cat, tid, found.damages[0].entry.index, FileStat.of(os.lstat(movie)))
    cat.close()


def test_a_resized_header_heals_by_cloning_the_read_only_snapshots_copy(tmp_path, btrfs):
    from companion.drift.detect import detect_drift
    from companion.ladder.heal import heal_from_supply
    from companion.ladder.sources import supply_for
    from companion.locate import catalog_meta
    from companion.store import Store

    home, data, tid, good = setup(tmp_path, btrfs, "always")
    seedward("snapshot", tid, home=home, check=True)
    movie = data / "show" / "e01.mkv"
    body = movie.read_bytes()
    movie.write_bytes(body[:100] + b"T" * 4000 + body[100:])  # 4,000 bytes: no block-aligned shift to clone
    cat = Catalog(home / "catalog.sqlite")
    store = Store.open(home / "store", cat)
    meta, save_path = catalog_meta(cat, tid)
    found = detect_drift(cat, tid)
    supply = supply_for(cat, store, meta, save_path, found.damages)
    assert set(supply.summary()) == {"fs-snapshot"} and supply.cloned >= movie.stat().st_size - 2 * 65536
    heal_from_supply(meta, save_path, found.damages, supply, home / "quarantine")
    assert sha(movie) == good["e01.mkv"]
    cat.close()
