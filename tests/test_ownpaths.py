"""seedward's own places are never payload (companion/ownpaths.py), on real folders and symlinks."""

import os

from companion.config import Settings
from companion.home import Home
from companion.ownpaths import reason


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
