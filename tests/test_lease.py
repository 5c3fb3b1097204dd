"""Leases: the CLI, `valid_lease_for`, and a write under a lease versus one without, seen by the real
drift engine (watchdog/inotify, quick verify, heal from the store, real qbittorrent-nox)."""

import hashlib
import json

import pytest

from companion import lease
from companion.catalog import Catalog
from companion.config import Settings
from companion.drift.monitor import DriftMonitor
from companion.drift.respond import Responder
from companion.manifests import ManifestRepo
from companion.protect import catalog_torrent
from companion.qbt import Qbt
from companion.store import Store
from companion.torrent import load_torrent
from tests.helpers import seedward, wait_until
from tests.qbt import seed_sample


def test_lease_cli_acquire_list_release(tmp_path):
    home = tmp_path / "home"
    target = tmp_path / "media"
    target.mkdir()
    proc = seedward("lease", "acquire", target, "--ttl", "300", "--operator", "tagger-bot", home=home)
    assert proc.returncode == 0, proc.stderr
    token = proc.stdout.strip()
    assert token.startswith("swl_") and "\n" not in token
    listed = json.loads(seedward("lease", "list", "--json", home=home).stdout)["leases"]
    assert [(x["path"], x["operator"]) for x in listed] == [(str(target.resolve()), "tagger-bot")]
    assert token not in json.dumps(listed)  # only a digest of the token is kept
    released = seedward("lease", "release", "-", "--json", home=home, input=token + "\n")
    assert released.returncode == 0 and json.loads(released.stdout)["released_at"]
    assert json.loads(seedward("lease", "list", "--json", home=home).stdout)["leases"] == []

    bad = seedward("lease", "release", "swl_not-a-token", home=home)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    for args in (["--ttl", "0"], ["--ttl", "999999999"]):
        proc = seedward("lease", "acquire", target, *args, home=home)
        assert proc.returncode == 2 and "--ttl" in proc.stderr
    assert seedward("lease", "acquire", tmp_path / "absent", "--ttl", "5", home=home).returncode == 2


def test_valid_lease_for_covers_paths_and_ends(tmp_path):
    cat = Catalog(tmp_path / "catalog.sqlite")
    folder = tmp_path / "show"
    (folder / "season1").mkdir(parents=True)
    (folder / "season1" / "ep1.mkv").write_bytes(b"x")
    (tmp_path / "other.mkv").write_bytes(b"y")
    token, granted = lease.acquire(cat, folder, 300, "agent")
    assert lease.valid_lease_for(cat, folder / "season1" / "ep1.mkv") == granted
    assert lease.valid_lease_for(cat, folder) == granted
    assert lease.valid_lease_for(cat, tmp_path / "other.mkv") is None
    assert lease.valid_lease_for(cat, tmp_path / "show-extra") is None  # a prefix is not a parent
    lease.release(cat, token)
    assert lease.valid_lease_for(cat, folder / "season1" / "ep1.mkv") is None
    lease.acquire(cat, tmp_path / "other.mkv", 0.3, "agent")
    assert lease.valid_lease_for(cat, tmp_path / "other.mkv") is not None
    wait_until(lambda: lease.valid_lease_for(cat, tmp_path / "other.mkv") is None, 10, 0.05, "the lease to expire")
    cat.close()


@pytest.mark.qbt
def test_leased_write_is_intended_unleased_write_is_healed(qbt, tmp_path):
    root = tmp_path / "seed"
    tid, torrent = seed_sample(qbt, root, "album", {"a.flac": 60_000, "b.flac": 45_000}, seed=44)
    meta = load_torrent(torrent)
    cat = Catalog(tmp_path / "catalog.sqlite")
    manifests = ManifestRepo(tmp_path / "manifests")
    catalog_torrent(cat, manifests, meta, root, reason="test", torrent_file=str(torrent))
    store = Store.open(tmp_path / "store", cat)
    store.snapshot(meta, root, "manual")
    settings = Settings()
    adapter = Qbt(qbt.url, qbt.username, qbt.password)
    adapter.connect()
    responder = Responder(cat, settings, tmp_path / "quarantine", qbt=adapter, read_chunk=store.read_chunk)
    monitor = DriftMonitor(cat, responder, debounce=0.2)
    monitor.start(reconcile=False)
    a, b = root / "album" / "a.flac", root / "album" / "b.flac"
    original_a, original_b = a.read_bytes(), b.read_bytes()
    try:
        # Without a lease: drift, healed from the snapshot.
        with open(b, "r+b") as fh:
            fh.write(b"AI-RETAGGED")
        wait_until(lambda: b.read_bytes() == original_b, 60, 0.1, "the unleased write to be healed")
        wait_until(lambda: cat.get_torrent(tid)["protection"] == "protected", 60, 0.1, "protected again")

        # Under a lease: intended, not healed.
        _token, granted = lease.acquire(cat, root / "album", 120, "tagger-bot")
        with open(a, "r+b") as fh:
            fh.write(b"INTENDED-EDIT")
        wait_until(lambda: any(e["kind"] == "intended" for e in cat.events(tid)), 60, 0.1, "the intended event")
        assert monitor.wait_idle(60)
        assert a.read_bytes()[:13] == b"INTENDED-EDIT"
    finally:
        monitor.stop()
    # Recorded as intended (baseline_bad: no longer the torrent's bytes, not watched, not healed), while
    # the catalog keeps the torrent's own baseline: quick and full verification agree the file differs.
    assert lease.record_intended(cat, manifests, meta, root, granted, store=store) == "baseline_bad"
    assert a.read_bytes()[:13] == b"INTENDED-EDIT" and a.read_bytes() != original_a
    rows = {r["path"]: r["sha256"] for r in cat.get_files(tid)}
    assert rows["album/a.flac"] == hashlib.sha256(original_a).hexdigest()
    cat.close()
    qbt.client.torrents_delete(delete_files=False, torrent_hashes=tid)
