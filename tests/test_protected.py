""""Protected" must mean protected (issue 12): each case found, as a regression test against the
real qbittorrent-nox, real inotify and the real store, asserting bytes on disk, qBittorrent's
state and seedward's state together. Torrents are downloaded by qBittorrent from a real
libtorrent seeder (tests/swarm.py), as a seeder's downloads are."""

import json
import os
import random
import time
from pathlib import Path

import pytest

from companion.catalog import drift as drift_rows
from companion.catalog import snapshots as snap_rows
from companion.catalog import trust
from companion.home import Home
from companion.service import Service
from companion.service.features import install_features

from .helpers import flip_byte, wait_until
from .qbt import service_settings
from .swarm import Swarm

pytestmark = pytest.mark.qbt

SEEDING = {"uploading", "stalledUP", "forcedUP", "queuedUP"}
STATE_TAGS = {"seedward:pending", "seedward:protected", "seedward:damaged", "seedward:healing",
              "seedward:baseline-bad", "seedward:excluded"}


def settings_for(qbt, **extra):
    s = service_settings(qbt)
    s.scrub.interval_hours = 0
    s.drift.swarm_stall_seconds = 30.0
    for key, value in extra.items():
        section, name = key.split("__")
        setattr(getattr(s, section), name, value)
    return s


def start_service(qbt, home: Path, settings=None) -> Service:
    """The service as `seedward serve` builds it: every feature installed."""
    service = Service(Home(home), settings or settings_for(qbt))
    install_features(service)
    return service.start()


@pytest.fixture
def world(qbt, tmp_path):
    qbt.remove_all()
    swarm = Swarm(qbt, tmp_path)
    services = []

    class W:
        root = tmp_path
        dl = tmp_path / "dl"

        def serve(self, settings=None):
            service = start_service(qbt, tmp_path / "home", settings)
            services.append(service)
            return service

    W.swarm = swarm
    W.dl.mkdir()
    yield W()
    for service in services:
        service.stop()
    swarm.close()
    qbt.remove_all()


def info(qbt, tid: str) -> dict | None:
    found = qbt.client.torrents_info(torrent_hashes=tid)
    return dict(found[0]) if found else None


def tags_of(t: dict) -> set[str]:
    return {x.strip() for x in t["tags"].split(",") if x.strip()}


def settled(service, qbt, tid: str, files: dict[Path, bytes]) -> bool:
    """The end state a protected torrent must reach: every file equals its torrent, seedward says
    protected and holds nothing, qBittorrent has it complete and seeding, and the tags agree."""
    t = info(qbt, tid)
    row = service.catalog.get_torrent(tid)
    if t is None or row is None or row["protection"] != "protected":
        return False
    if t["progress"] < 1 or t["state"] not in SEEDING or trust.get_hold(service.catalog, tid) is not None:
        return False
    if tags_of(t) & STATE_TAGS != {"seedward:protected"}:
        return False
    return all(p.exists() and not p.is_symlink() and p.read_bytes() == data for p, data in files.items())


def explain(service, qbt, tids) -> str:
    """What each torrent looks like now (for a failed wait)."""
    lines = []
    for tid in tids:
        t = info(qbt, tid) or {}
        row = service.catalog.get_torrent(tid)
        lines.append(f"{tid[:12]}: {row['protection'] if row else None}, qBittorrent {t.get('state')} "
                     f"{t.get('progress')}, tags {t.get('tags')}, hold {trust.get_hold(service.catalog, tid)}")
        lines += [f"    {e['at'][11:23]} {e['kind']}: {e['message'][:160]}" for e in service.catalog.events(tid, 25)][::-1]
    return "\n".join(lines)


def wait_settled(service, qbt, files_by_tid: dict, timeout: float, what: str) -> None:
    try:
        wait_until(lambda: all(settled(service, qbt, tid, files) for tid, files in files_by_tid.items()),
                   timeout, 0.2, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{explain(service, qbt, list(files_by_tid))}") from None


def quarantined_bytes(home: Path, tid: str) -> list[bytes]:
    """Everything kept in the quarantine for a torrent: whole files and changed ranges."""
    out = []
    for folder in (home / "quarantine").glob(f"*-{tid[:12]}"):
        record = json.loads((folder / "drift.json").read_text())
        for f in record["files"]:
            if f.get("file") and not f.get("link"):
                out.append((folder / f["file"]).read_bytes())
            for r in f.get("ranges", []):
                out.append((folder / r["file"]).read_bytes())
    return out


def write_at(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


# 1. watched from the first second

@pytest.mark.slow
def test_writes_in_the_first_seconds_after_completion_are_healed(world, qbt):
    """qBittorrent downloads six torrents from a peer; a tagger writes into each at 0, 0.2, 0.5, 1, 2
    and 3 s after qBittorrent completed it, and into a seventh right after its first snapshot.
    Each write is found and healed (from the snapshot, or from the swarm when it landed before
    seedward's first verification), the drifted bytes are in the quarantine, and each torrent ends
    protected, seeding, byte for byte its torrent's."""
    service = world.serve()
    delays = (0.0, 0.2, 0.5, 1.0, 2.0, 3.0)
    torrents, writes = {}, {}
    for i, delay in enumerate(delays + ("snapshot",)):
        tid, torrent = world.swarm.torrent(f"t{i}", {"a.flac": 70_000, "b.jpg": 30_000}, seed=100 + i)
        world.swarm.download(torrent, world.dl, download_limit=60_000)  # ~2 s: seedward sees it downloading
        torrents[tid] = delay
    client = qbt.new_client()
    done_at: dict[str, float] = {}
    deadline = time.monotonic() + 90
    while len(writes) < len(torrents) and time.monotonic() < deadline:
        now = time.monotonic()
        states = {t["hash"]: t for t in client.torrents_info()}
        for tid, delay in torrents.items():
            if tid in writes:
                continue
            t = states.get(tid)
            if delay == "snapshot":
                ready = bool(snap_rows.list_snapshots(service.catalog, tid))
            else:
                if tid not in done_at and t is not None and t["progress"] >= 1:
                    done_at[tid] = now
                ready = tid in done_at and now - done_at[tid] >= delay
            if ready:
                target = world.dl / f"t{list(torrents).index(tid)}" / "a.flac"
                offset = random.Random(tid).randrange(0, 70_000 - 16)
                write_at(target, offset, b"TAGGED BY AN AI!")
                writes[tid] = (target, offset, time.monotonic() - done_at.get(tid, now))
        time.sleep(0.01)
    assert len(writes) == len(torrents), "every torrent completed and was written to"
    files = world.swarm.original
    wait_settled(service, qbt, {tid: {p: d for p, d in files.items() if p.parent.name == f"t{i}"}
                                for i, tid in enumerate(torrents)}, 150, "every torrent healed, protected and seeding")
    for tid, (target, offset, _after) in writes.items():
        heals = drift_rows.heals(service.catalog, tid)
        assert any(h["outcome"] == "healed" for h in heals), tid
        kept = quarantined_bytes(service.home.root, tid)
        assert any(b"TAGGED BY AN AI!" in blob for blob in kept), f"{tid[:12]}: the drifted bytes are kept"
        assert snap_rows.list_snapshots(service.catalog, tid), "protected with a snapshot in the end"


# 2. hard links followed as they appear

@pytest.mark.slow
def test_the_arr_flow_hardlink_then_edit_through_the_library_link(world, qbt):
    """Sonarr/Radarr/Lidarr: the torrent completes, the import hardlinks it into the library within
    100 ms, a tagger edits the library copy in place within 500 ms. The seed is stopped, healed
    (it gets its own inode, the library keeps the edit) and seeds again; the link was flagged
    (event, qBittorrent tag seedward:hardlinked). A second torrent, already protected, is
    hardlinked later: the link count change alone flags it within a second, and an edit through
    the library link is healed the same way."""
    service = world.serve()
    library = world.root / "library"
    library.mkdir()
    fresh, torrent = world.swarm.torrent("Fresh", {"ep.mkv": 90_000}, seed=7)
    world.swarm.download(torrent, world.dl, download_limit=60_000)
    client = qbt.new_client()
    wait_until(lambda: client.torrents_info(torrent_hashes=fresh)[0]["progress"] >= 1, 60, 0.01, "the download")
    seed_file = world.dl / "Fresh" / "ep.mkv"
    link = library / "Fresh - S01E01.mkv"
    os.link(seed_file, link)  # within a few ms of completion
    time.sleep(0.3)
    write_at(link, 10, b"tagged by the library's tagger")
    edited = link.read_bytes()

    old, torrent2 = world.swarm.torrent("Old", {"song.flac": 50_000}, seed=8)
    world.swarm.download(torrent2, world.dl)
    old_file = world.dl / "Old" / "song.flac"
    wait_settled(service, qbt, {old: {old_file: world.swarm.original[old_file]}}, 90, "the second torrent protected")
    old_link = library / "song.flac"
    os.link(old_file, old_link)
    wait_until(lambda: "seedward:hardlinked" in tags_of(info(qbt, old)), 10, 0.05, "the new link flagged")
    assert service.catalog.get_files(old)[0]["nlink"] == 2
    assert info(qbt, old)["state"] in SEEDING  # a link alone stops nothing
    write_at(old_link, 20_000, b"REPLAYGAIN_TRACK_GAIN=-3.1 dB")
    old_edited = old_link.read_bytes()

    wait_settled(service, qbt, {fresh: {seed_file: world.swarm.original[seed_file]},
                                old: {old_file: world.swarm.original[old_file]}}, 120, "both seeds healed and seeding")
    assert link.read_bytes() == edited and old_link.read_bytes() == old_edited  # the library keeps its edits
    for tid, path in ((fresh, seed_file), (old, old_file)):
        assert os.stat(path).st_nlink == 1  # the seed has its own inode now
        kinds = [e["kind"] for e in service.catalog.events(tid, 200)]
        assert "hardlinked" in kinds and "healed" in kinds
        wait_until(lambda: "seedward:hardlinked" not in tags_of(info(qbt, tid)), 10, 0.1, "the flag cleared")
