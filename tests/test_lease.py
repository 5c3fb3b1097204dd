"""Leases: the CLI, `valid_lease_for`, and a write under a lease versus one without, seen by the real
drift engine (watchdog/inotify, quick verify, heal from the store, real qbittorrent-nox)."""

import hashlib
import json

import pytest

from companion import lease
from companion.catalog import Catalog, trust
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


@pytest.mark.qbt
@pytest.mark.slow
def test_a_leased_edit_is_undone_by_restore_exactly_or_refused_with_nothing_changed(qbt, make_service, tmp_path):
    """Found: `lease acquire FILE`, write the file, `restore ID` said "heal refused ... 99.0%", left the
    torrent stopped and the file cut to a prefix of the edit; a second restore said "intact", and
    `verify` said intact while `verify --full` said DAMAGED. Now: the lease snapshots the file when
    granted; after the edit quick and full verification agree the file differs; `restore` brings the
    torrent's bytes back exactly (protected, seeding); with its snapshot unreadable it refuses and
    changes nothing."""
    from companion.home import Home
    from companion.service.features import install_features

    from .helpers import seedward
    from .qbt import service_settings

    root = tmp_path / "dl"
    tid, _torrent = seed_sample(qbt, root, "Album", {"01.flac": 70_000, "cover.jpg": 20_000}, seed=91)
    target = root / "Album" / "01.flac"
    original = target.read_bytes()
    settings = service_settings(qbt)
    settings.scrub.interval_hours = 0
    service = make_service(settings=settings)  # (make_service adds no features: install them as serve does)
    install_features(service)
    home = service.home.root
    wait_until(lambda: (r := service.catalog.get_torrent(tid)) and r["protection"] == "protected"
               and not service.catalog.pending_jobs(), 60, 0.1, "protected")
    acquired = seedward("lease", "acquire", target, "--ttl", "300", "--operator", "tagger", "--json", home=home)
    assert acquired.returncode == 0, acquired.stderr
    undo = json.loads(acquired.stdout)["undo"]
    assert [(u["torrent_id"], bool(u["snapshot_id"])) for u in undo] == [(tid, True)]
    with open(target, "r+b") as fh:  # the leased edit: a longer header written in place, and a tag appended
        fh.write(b"ID3\x04" + b"NEW HEADER " * 400)
    with open(target, "ab") as fh:
        fh.write(b"TAG" + bytes(125))
    edited = target.read_bytes()
    wait_until(lambda: service.catalog.get_torrent(tid)["protection"] == "baseline_bad", 30, 0.1, "the intended edit")
    assert target.read_bytes() == edited  # intended: not healed

    quick = seedward("verify", tid[:10], "--json", home=home)
    full = seedward("verify", tid[:10], "--full", "--json", home=home)
    assert quick.returncode == full.returncode == 1, (quick.stderr, full.stderr)
    kinds = lambda r: {f["path"]: f["kind"] != "ok" for f in json.loads(r.stdout)["torrents"][0]["files"]}  # noqa: E731
    assert kinds(quick) == kinds(full) == {"Album/01.flac": True, "Album/cover.jpg": False}

    # Refused with nothing changed: the lease's snapshot cannot be read.
    data, away = home / "store" / "data", home / "store" / "data.away"
    data.rename(away)
    refused = seedward("restore", tid[:10], "--json", home=home)
    assert refused.returncode != 0
    assert target.read_bytes() == edited
    assert service.catalog.get_torrent(tid)["protection"] == "baseline_bad"
    wait_until(lambda: trust.get_hold(service.catalog, tid) is None
               and qbt.client.torrents_info(torrent_hashes=tid)[0]["state"] in ("uploading", "stalledUP"), 30, 0.1,
               "not left stopped by the refused restore")
    away.rename(data)

    restored = seedward("restore", tid[:10], "--json", home=home)
    assert restored.returncode == 0, restored.stderr
    report = json.loads(restored.stdout)
    assert report["outcome"] == "healed" and report["via"] == "service"
    assert target.read_bytes() == original
    wait_until(lambda: service.catalog.get_torrent(tid)["protection"] == "protected"
               and qbt.client.torrents_info(torrent_hashes=tid)[0]["state"] in ("uploading", "stalledUP"), 60, 0.1,
               "protected and seeding")
    again = seedward("restore", tid[:10], "--json", home=home)
    assert again.returncode == 0 and json.loads(again.stdout)["outcome"] == "intact"
    for mode in ((), ("--full",)):
        r = seedward("verify", tid[:10], *mode, "--json", home=home)
        assert r.returncode == 0 and json.loads(r.stdout)["ok"]
    assert service.catalog.get_torrent(tid)["last_verified"]  # verify --full recorded it
