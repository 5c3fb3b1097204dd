"""The quarantine end to end: real qbittorrent-nox, real inotify, the real store and heals. A
tagger's edits (in place, a grown header, write-and-rename, a deletion) are healed; `seedward
quarantine export` must give back exactly the bytes the tagger left, even though only the
changed ranges were kept; list/show/purge and the scheduled expiry work on the same folders."""

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from companion import quarantine
from companion.catalog import drift as drift_rows
from companion.catalog import snapshots as snap_rows
from companion.config import Settings
from companion.home import Home
from companion.retention import register as register_retention
from companion.service import Service

from .helpers import seedward, wait_until
from .qbt import seed_sample

pytestmark = [pytest.mark.qbt, pytest.mark.slow]

CASES = {
    "Retag": {"song.mp3": 90_000, "cover.jpg": 8_000},
    "Grow": {"track.flac": 70_000},
    "Swap": {"ep.mkv": 50_000},
    "Gone": {"x.bin": 30_000, "y.bin": 20_000},
    "Shotless": {"z.ogg": 40_000},
}


class World:
    def __init__(self, qbt, root: Path):
        self.qbt, self.root = qbt, root
        self.ids: dict[str, str] = {}
        self.home = root / "home"

    def path(self, name: str, file: str) -> Path:
        return self.root / "dl" / name / file

    def edit_and_heal(self, name: str, edit) -> tuple[quarantine.Entry, bytes | None]:
        """Run `edit()` (returns the bytes the tagger left, or None), wait for the heal; the entry."""
        tid = self.ids[name]
        cat = self.service.catalog
        last = max([r["id"] for r in drift_rows.heals(cat, tid)] or [0])
        tagged = edit()

        def healed():
            rows = [r for r in drift_rows.heals(cat, tid) if r["id"] > last and r["finished_at"]]
            return rows[0] if rows else None

        row = wait_until(healed, 60, 0.05, f"the heal of {name}")
        assert row["outcome"] == "healed", dict(row)
        wait_until(lambda: cat.get_torrent(tid)["protection"] == "protected", 60, 0.05, f"{name} protected again")
        return quarantine.read_entry(Path(row["quarantine"]), cat), tagged


@pytest.fixture(scope="module")
def world(qbt, tmp_path_factory):
    from companion.drift.service import install
    from companion.store.job import register as register_snapshots

    qbt.remove_all()
    root = tmp_path_factory.mktemp("quarantine")
    w = World(qbt, root)
    for i, (name, files) in enumerate(CASES.items()):
        w.ids[name], _ = seed_sample(qbt, root / "dl", name, files, seed=11 + i)
    s = Settings()
    s.qbittorrent.url, s.qbittorrent.username, s.qbittorrent.password = qbt.url, qbt.username, qbt.password
    s.qbittorrent.poll_seconds = 0.2
    s.scrub.interval_hours = 0
    service = Service(Home(w.home), s)
    register_snapshots(service)
    w.drift = install(service)
    register_retention(service)
    w.service = service.start()
    ids = set(w.ids.values())

    def ready():
        cat = service.catalog
        snapped = {r["torrent_id"] for r in snap_rows.list_snapshots(cat)}
        return (all(cat.get_torrent(t) and cat.get_torrent(t)["protection"] == "protected" for t in ids)
                and ids <= snapped and ids <= set(w.drift.monitor.watch.tracked()) and not cat.pending_jobs())

    wait_until(ready, 90, 0.2, "every torrent protected, snapshotted and watched")
    yield w
    if not service.stopping.is_set():
        service.stop()
    qbt.remove_all()


def export_cli(world: World, entry_id: str, dest: Path, *extra) -> dict:
    r = seedward("quarantine", "export", entry_id, dest, "--json", *extra, home=world.home)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_a_retag_in_place_keeps_ranges_and_export_gives_back_the_tagged_file(world, tmp_path):
    target = world.path("Retag", "song.mp3")

    def retag():
        with open(target, "r+b") as fh:
            fh.write(b"ID3\x04\x00" + b"TIT2 A New Title".ljust(120, b"\x00"))
        return target.read_bytes()

    entry, tagged = world.edit_and_heal("Retag", retag)
    record = entry.files[0]
    assert record["path"] == "Retag/song.mp3" and record["kind"] == "damaged" and "ranges" in record
    assert sum(r["length"] for r in record["ranges"]) < len(tagged)  # only changed ranges were kept
    assert target.read_bytes() != tagged  # healed: the torrent's bytes are back

    out = export_cli(world, entry.id, tmp_path / "out")
    (done,) = out["files"]
    assert done["base"].startswith("snapshot ") and Path(done["dest"]).read_bytes() == tagged
    assert Path(done["dest"]) == tmp_path / "out" / "Retag" / "song.mp3"
    # never over an existing file
    r = seedward("quarantine", "export", entry.id, tmp_path / "out", home=world.home)
    assert r.returncode == 2 and "exists" in r.stderr
    assert Path(done["dest"]).read_bytes() == tagged


def test_an_export_onto_a_full_disk_is_exit_6_and_leaves_nothing(world, tmp_path):
    """The rebuild's base (the snapshot's bytes) does not fit: one line naming the export folder and
    the room needed (it said "no source of the torrent's own bytes", exit 2: every source had failed
    on the same full disk), no folder left; with room the same export works."""
    from .test_disk_full import SmallDisk, _can_mount

    if not _can_mount(tmp_path):
        pytest.skip("needs root to mount a tmpfs of the test's own")
    entry = next(e for e in quarantine.entries(world.home / "quarantine", world.service.catalog)
                 if any("ranges" in f for f in e.files))
    disk = SmallDisk(tmp_path / "small", 32 << 10)
    try:
        r = seedward("quarantine", "export", entry.id, disk.path / "out", home=world.home)
        assert r.returncode == 6, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and str(disk.path / "out") in lines[0] and "no space left" in lines[0], r.stderr
        assert "no source" not in lines[0] and list(disk.path.iterdir()) == []
        disk.resize(4 << 20)
        assert export_cli(world, entry.id, disk.path / "out")["files"][0]["dest"]
    finally:
        disk.unmount()


def test_a_grown_header_shifts_everything_and_still_exports_exactly(world, tmp_path):
    target = world.path("Grow", "track.flac")

    def grow():
        original = target.read_bytes()
        with open(target, "r+b") as fh:  # in place, as taggers that pad the header do: every piece moves
            fh.write(b"fLaC" + os.urandom(3000) + original[4:])
        return target.read_bytes()

    entry, tagged = world.edit_and_heal("Grow", grow)
    record = entry.files[0]
    assert record["kind"] == "extended" and "ranges" in record
    out = export_cli(world, entry.id[:20], tmp_path / "out")
    assert Path(out["files"][0]["dest"]).read_bytes() == tagged


def test_write_and_rename_keeps_the_whole_file(world, tmp_path):
    target = world.path("Swap", "ep.mkv")

    def swap():
        tmp = target.with_name(".ep.mkv.tmp")
        tmp.write_bytes(target.read_bytes()[:20_000] + b"NEW CHAPTERS" + os.urandom(10_000))
        os.rename(tmp, target)
        return target.read_bytes()

    entry, tagged = world.edit_and_heal("Swap", swap)
    assert entry.files[0]["kind"] in ("replaced", "truncated") and "file" in entry.files[0]
    out = export_cli(world, world.ids["Swap"][:10], tmp_path / "out")  # a torrent id with one entry works too
    assert out["files"][0]["base"] == "kept whole" and Path(out["files"][0]["dest"]).read_bytes() == tagged


def test_a_deleted_file_has_nothing_to_export_and_says_so(world, tmp_path):
    entry, _ = world.edit_and_heal("Gone", lambda: world.path("Gone", "y.bin").unlink())
    r = seedward("quarantine", "show", entry.id, "--json", home=world.home)
    shown = json.loads(r.stdout)
    assert shown["files"][0]["kind"] == "missing" and not shown["files"][0]["exportable"]
    out = export_cli(world, entry.id, tmp_path / "out")
    assert out["files"][0]["dest"] is None and "not kept" in out["files"][0]["note"]
    assert not (tmp_path / "out" / "Gone").exists()


def test_without_a_snapshot_the_verified_payload_is_the_base(world, tmp_path):
    target = world.path("Shotless", "z.ogg")

    def retag():
        with open(target, "r+b") as fh:
            fh.seek(30_000)
            fh.write(b"VORBIS COMMENT=edited")
        return target.read_bytes()

    entry, tagged = world.edit_and_heal("Shotless", retag)
    store_snaps = snap_rows.list_snapshots(world.service.catalog, world.ids["Shotless"])
    r = seedward("forget", "--snapshot", *[s["id"] for s in store_snaps], home=world.home)
    assert r.returncode == 0, r.stderr
    out = export_cli(world, entry.id, tmp_path / "out")
    assert out["files"][0]["base"] == "payload (verified against the torrent)"
    assert Path(out["files"][0]["dest"]).read_bytes() == tagged


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 400), st.integers(0, 5000), st.booleans()), max_size=30),
       st.floats(0, 200), st.integers(0, 60_000))
def test_expiry_invariants(ages, keep_days, max_bytes):
    """expired() never removes an entry of a running heal, removes every settled entry older than
    keep_days, removes oldest first, and leaves the rest within max_bytes when it can."""
    now = datetime(2026, 6, 1, tzinfo=timezone.utc)
    found = [quarantine.Entry(f"e{i:03d}", Path(f"/q/e{i:03d}"), "ab" * 20, "", now - timedelta(days=age), None, [],
                              size, {"outcome": "running" if running else "healed"})
             for i, (age, size, running) in enumerate(ages)]
    out = quarantine.expired(found, now, keep_days, max_bytes)
    assert not [e for e in out if e.heal["outcome"] == "running"]
    settled = [e for e in found if e.heal["outcome"] != "running"]
    if keep_days > 0:
        assert {e.id for e in settled if now - e.created_at > timedelta(days=keep_days)} <= {e.id for e in out}
    kept = [e for e in found if e not in out]
    if max_bytes > 0:
        running_bytes = sum(e.bytes for e in found if e.heal["outcome"] == "running")
        assert sum(e.bytes for e in kept) <= max(max_bytes, running_bytes)
        by_age = sorted(settled, key=lambda e: (e.created_at, e.id))
        capped = [e for e in out if keep_days <= 0 or now - e.created_at <= timedelta(days=keep_days)]
        if capped:  # removed for size: every settled entry older than one removed for size went too
            newest = max(by_age.index(e) for e in capped)
            assert {e.id for e in by_age[:newest + 1]} <= {e.id for e in out}


def test_list_show_agree_with_the_heals_and_purge_removes_one(world, tmp_path):
    r = seedward("quarantine", "list", "--json", home=world.home)
    listed = json.loads(r.stdout)["entries"]
    heals = {r["quarantine"]: r for r in drift_rows.heals(world.service.catalog, limit=100) if r["quarantine"]}
    assert len(listed) == len(heals) >= 5
    for e in listed:  # the invariant: every entry is one heal's, and says what it can give back
        row = heals[e["folder"]]
        assert e["torrent_id"] == row["torrent_id"] and e["heal"]["outcome"] == row["outcome"] == "healed"
        assert all(f["exportable"] == (f["kept"] != "nothing (the file was gone)") for f in e["files"])
        assert e["bytes"] == sum(p.stat().st_size for p in Path(e["folder"]).rglob("*") if p.is_file())
    r = seedward("quarantine", "list", home=world.home)
    assert r.returncode == 0 and f"{len(listed)} entries" in r.stdout

    gone = [e for e in listed if e["torrent_id"] == world.ids["Gone"]][0]
    r = seedward("quarantine", "purge", gone["id"], "--dry-run", "--json", home=world.home)
    assert json.loads(r.stdout)["removed"] == [gone["id"]] and Path(gone["folder"]).exists()
    r = seedward("quarantine", "purge", gone["id"], "--json", home=world.home)
    assert json.loads(r.stdout) == {"removed": [gone["id"]], "kept": len(listed) - 1,
                                    "bytes_freed": gone["bytes"], "dry_run": False}
    assert not Path(gone["folder"]).exists()
    r = seedward("quarantine", "show", gone["id"], home=world.home)
    assert r.returncode == 2 and "no quarantine entry" in r.stderr


def test_expiry_is_pure_and_the_scheduled_job_removes_old_entries(world):
    root = world.home / "quarantine"
    found = quarantine.entries(root, world.service.catalog)
    now = datetime.now(timezone.utc)
    assert quarantine.expired(found, now, keep_days=90) == []
    assert quarantine.expired(found, now + timedelta(days=91), keep_days=90) == found
    biggest_last = quarantine.expired(found, now, keep_days=0, max_bytes=sum(e.bytes for e in found[1:]))
    assert biggest_last == found[:1]  # the oldest goes first, until the rest fit
    running = [quarantine.Entry(**{**vars(found[0]), "heal": {"outcome": "running"}})]
    assert quarantine.expired(running, now + timedelta(days=999), keep_days=1) == []

    world.service.settings.quarantine.keep_days = 1e-9  # everything is older than that
    job = world.service.enqueue("quarantine_expiry", None, reason="schedule")
    wait_until(lambda: world.service.catalog.one("SELECT state FROM queue WHERE id = ?", (job,))["state"] == "done",
               30, 0.05, "the expiry job")
    assert quarantine.entries(root) == []
    event = [e for e in world.service.catalog.events(None, 20) if e["kind"] == "quarantine_expired"][0]
    assert f"{len(found)} entries" in event["message"]


def test_z_no_source_left_is_a_clear_error_and_nothing_is_written(world, qbt, tmp_path):
    target = world.path("Retag", "song.mp3")

    def retag():
        with open(target, "r+b") as fh:
            fh.seek(50_000)
            fh.write(b"LYRICS")
        return target.read_bytes()

    world.service.settings.quarantine.keep_days = 90
    entry, _ = world.edit_and_heal("Retag", retag)
    world.service.stop()
    snaps = snap_rows.list_snapshots(Service(Home(world.home), Settings()).catalog, world.ids["Retag"])
    assert seedward("forget", "--snapshot", *[s["id"] for s in snaps], home=world.home).returncode == 0
    with open(target, "r+b") as fh:  # and the payload no longer verifies
        fh.write(b"XX")
    r = seedward("quarantine", "export", entry.id, tmp_path / "out", home=world.home)
    assert r.returncode == 2 and "cannot rebuild Retag/song.mp3" in r.stderr and "no longer verifies" in r.stderr
    assert not any(p.is_file() for p in (tmp_path / "out").rglob("*"))
