"""seedward's own places are never payload (companion/ownpaths.py), on real folders and symlinks."""

import os

import pytest

from companion.config import Settings
from companion.home import Home
from companion.ownpaths import reason
from tests.helpers import write_payload


def test_files_in_seedwards_places_are_named_with_the_place(tmp_path):
    home = Home(tmp_path / "home").ensure()
    (home.root / "config.toml").write_text("[jobs]\n")
    settings = Settings()
    settings.store.path = str(tmp_path / "elsewhere" / "store")
    settings.drill.scratch = str(tmp_path / "scratch-disk")
    for folder in (tmp_path / "elsewhere" / "store", tmp_path / "scratch-disk", tmp_path / "seed" / "show"):
        folder.mkdir(parents=True)
    # A one-file torrent "config.toml" saved into the home, a torrent "store" in the home.
    assert "state home" in reason(home, settings, [home.root / "config.toml"])
    assert "state home" in reason(home, settings, [home.root / "store" / "packs" / "x"])
    # The configured store and scratch elsewhere, and the quarantine (inside the home) by name.
    assert "snapshot store" in reason(home, settings, [tmp_path / "elsewhere" / "store" / "a.bin"])
    assert "scratch folder" in reason(home, settings, [tmp_path / "scratch-disk" / "drill" / "a.bin"])
    assert "quarantine" in reason(home, settings, [home.quarantine / "t" / "a.bin"])
    # Ordinary payloads, a sibling whose name only starts like the home's, a folder holding the home.
    assert reason(home, settings, [tmp_path / "seed" / "show" / "a.bin", tmp_path / "seed" / "b.bin"]) is None
    assert reason(home, settings, [tmp_path / "home2" / "a.bin"]) is None
    assert reason(home, settings, [tmp_path / "a.bin"]) is None
    # One file of many is enough; the reason names it.
    why = reason(home, settings, [tmp_path / "seed" / "show" / "a.bin", home.root / "catalog.sqlite"])
    assert str(home.root / "catalog.sqlite") in why


def test_symlinks_lead_where_the_bytes_are(tmp_path):
    home = Home(tmp_path / "home").ensure()
    os.symlink(home.root, tmp_path / "innocent-looking")
    settings = Settings()
    assert "state home" in reason(home, settings, [tmp_path / "innocent-looking" / "config.toml"])
    # A home reached through a symlink is resolved too.
    os.symlink(tmp_path / "home", tmp_path / "home-link")
    linked = Home(tmp_path / "home-link")
    assert "state home" in reason(linked, settings, [home.root / "config.toml"])


def test_companion_torrents_in_the_jobs_folder_are_payload(tmp_path):
    home = Home(tmp_path / "home").ensure()
    settings = Settings()
    content = home.root / "jobs" / "0123456789abcdef" / "show.seedward-01234567"
    assert reason(home, settings, [content / "output" / "a.srt", content / "provenance" / "a.srt.provenance.json"]) is None
    assert "state home" in reason(home, settings, [home.root / "jobs" / "0123456789abcdef" / "scratch" / "x"])


@pytest.mark.qbt
def test_the_service_excludes_torrents_inside_its_own_places(qbt, make_service, tmp_path):
    """A real qbittorrent-nox seeding a one-file torrent `config.toml` saved into the state home and a
    torrent `store` there: both `excluded` with the reason, never cataloged, snapshotted or healed."""
    from companion.service.features import install_features
    from tests.helpers import make_torrent, wait_until

    home = tmp_path / "home"
    config = home / "config.toml"
    write_payload(home, {"config.toml": b"# the user's settings\n" + b"#" * 40_000 + b"\n"})
    write_payload(home / "store", {"a.bin": 30_000, "b.bin": 20_000}, seed=4)
    torrents = [make_torrent(config, out=tmp_path / "config.torrent"),
                make_torrent(home / "store", out=tmp_path / "store.torrent")]
    service = make_service(home=home)
    install_features(service, ("companion.store.job", "companion.drift.service"))
    ids = [qbt.add_torrent(t, home) for t in torrents]

    def states():
        rows = {r["id"]: r["protection"] for r in service.catalog.list_torrents()}
        return [rows.get(h) for h in ids]

    wait_until(lambda: states() == ["excluded", "excluded"], 60, what="both torrents excluded")
    reasons = {e["torrent_id"]: e["message"] for e in service.catalog.events() if e["kind"] == "excluded"}
    assert "inside seedward's state home" in reasons[ids[0]] and str(config) in reasons[ids[0]]
    assert "inside seedward's snapshot store" in reasons[ids[1]]  # home/store is the store
    assert not service.catalog.get_files(ids[0]) and not service.catalog.get_files(ids[1])  # never cataloged
    # The user edits config.toml: it stays edited (no drift, no heal), and nothing was snapshotted.
    config.write_bytes(b"# the user's settings, edited\n")
    wait_until(lambda: service.sync.syncs > 5 and not service.catalog.pending_jobs(), 60, what="a few syncs")
    assert config.read_bytes() == b"# the user's settings, edited\n"
    assert states() == ["excluded", "excluded"]
    kinds = {e["kind"] for e in service.catalog.events() if e["torrent_id"] in ids}
    assert not kinds & {"protected", "drift", "damaged", "healing", "healed"}, kinds
    assert not (home / "store" / "snapshots").exists()
