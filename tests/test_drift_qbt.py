"""Drift, quarantine and heal end to end: a real qbittorrent-nox, real files, real inotify, the
real store. Every case: detected, stopped, healed, complete (100%) in qBittorrent and seeding
again, with the drifted bytes kept in the quarantine folder."""

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from companion.catalog import drift as drift_rows
from companion.catalog import snapshots as snap_rows
from companion.catalog import trust
from companion.config import Policy, Settings
from companion.drift.service import install
from companion.drift.heal import bad_pieces
from companion.home import Home
from companion.ltsession import add_params, isolated_session
from companion.scan import Scanner
from companion.service import Service
from companion.store import Store
from companion.store.pack import pack_name
from companion.torrent import load_torrent

from .helpers import flip_byte, make_torrent, wait_until
from .qbt import seed_sample

pytestmark = pytest.mark.qbt

SEEDING = {"uploading", "stalledUP", "forcedUP", "queuedUP"}

CASES = {
    "Flip": {"track.flac": 90_000, "cover.jpg": 10_000},
    "Retag": {"song.mp3": 120_000},
    "Trunc": {"movie.mkv": 100_000},
    "Gone": {"x.bin": 50_000, "y.bin": 30_000},
    "Swap": {"ep.mkv": 70_000},
    "Linked": {"lib.flac": 64_000},
    "Rot": {"r.bin": 50_000},
    "Alerted": {"a.ogg": 40_000},
    "Swarm": {"s.flac": 80_000},
    "Lonely": {"l.flac": 40_000},
    "Leased": {"cover.png": 30_000},
    "Held": {"h.flac": 50_000},
}
CATEGORY = {"Alerted": "alert-only", "Swarm": "catalog-only", "Lonely": "catalog-only", "Held": "quarantine-only"}


def settings_for(qbt) -> Settings:
    s = Settings()
    s.qbittorrent.url, s.qbittorrent.username, s.qbittorrent.password = qbt.url, qbt.username, qbt.password
    s.qbittorrent.poll_seconds = 0.2
    s.scrub.interval_hours = 0  # scrub runs are triggered by the tests
    s.protection.categories = {"alert-only": Policy(response="alert"), "catalog-only": Policy(level="catalog"),
                               "quarantine-only": Policy(response="quarantine")}
    return s


class World:
    def __init__(self, qbt, root: Path):
        self.qbt, self.root = qbt, root
        self.ids: dict[str, str] = {}
        self.torrents: dict[str, Path] = {}
        self.original: dict[Path, bytes] = {}

    def path(self, name: str, file: str) -> Path:
        return self.root / "dl" / name / file

    def heal_after(self, tid: str, last: int, outcome: str = "healed") -> dict:
        """Wait for the first response to this torrent after heal id `last`; returns it."""
        def done():
            rows = [r for r in drift_rows.heals(self.service.catalog, tid) if r["id"] > last and r["finished_at"]]
            return dict(rows[-1]) if rows else None

        row = wait_until(done, 60, 0.05, f"a finished response for {tid[:12]}")
        assert row["outcome"] == outcome, row
        return row

    def last_heal(self, tid: str) -> int:
        rows = drift_rows.heals(self.service.catalog, tid, limit=1)
        return rows[0]["id"] if rows else 0

    def assert_seeding_again(self, tid: str) -> dict:
        """qBittorrent seeds it complete, seedward says protected, and the tags agree (all at once:
        qBittorrent briefly runs a stopped torrent for a recheck, before seedward starts it)."""
        def seeding():
            t = self.qbt.client.torrents_info(torrent_hashes=tid)[0]
            tags = {x.strip() for x in t["tags"].split(",")}
            together = (t["progress"] >= 1 and t["state"] in SEEDING
                        and self.service.catalog.get_torrent(tid)["protection"] == "protected"
                        and "seedward:protected" in tags and not tags & {"seedward:damaged", "seedward:healing"}
                        and trust.get_hold(self.service.catalog, tid) is None)  # nothing left held
            return t if together else None

        return wait_until(seeding, 60, 0.1, f"{tid[:12]} seeding again, protected")


def start_service(w: World) -> Service:
    from companion.store.job import register as register_snapshots

    service = Service(Home(w.root / "home"), settings_for(w.qbt))
    register_snapshots(service)
    w.component = install(service)
    w.service = service.start()
    return service


@pytest.fixture(scope="module")
def world(qbt, tmp_path_factory):
    root = tmp_path_factory.mktemp("drift")
    w = World(qbt, root)
    (root / "library").mkdir()
    made = qbt.client.torrents_categories()  # the session's qBittorrent: another file may have made one
    for category in sorted(set(CATEGORY.values()) - set(made)):
        qbt.client.torrents_create_category(name=category)
    for name, files in CASES.items():
        extra = {"category": CATEGORY[name]} if name in CATEGORY else {}
        tid, torrent = seed_sample(qbt, root / "dl", name, files, seed=len(name) * 7, kind="hybrid", **extra)
        w.ids[name], w.torrents[name] = tid, torrent
    os.link(w.path("Linked", "lib.flac"), root / "library" / "lib.flac")  # the library copy a tagger edits
    shared = root / "shared"
    shared.mkdir()
    for i, name in enumerate(("one.bin", "two.bin")):
        (shared / name).write_bytes(os.urandom(40_000 + i * 5_000))
        torrent = make_torrent(shared / name, piece_size=16384, kind="v1", out=root / f"{name}.torrent")
        w.ids[name] = qbt.add_torrent(torrent, shared)
        w.torrents[name] = torrent
    for p in list((root / "dl").rglob("*")) + list(shared.iterdir()):
        if p.is_file():
            w.original[p] = p.read_bytes()
    service = start_service(w)
    ids = list(w.ids.values())
    snapshotted = {w.ids[n] for n in w.ids if CATEGORY.get(n) != "catalog-only"}

    def ready():
        cat = service.catalog
        states = {r["id"]: r["protection"] for r in cat.list_torrents()}
        snaps = {r["torrent_id"] for r in snap_rows.list_snapshots(cat)}
        return (all(states.get(i) == "protected" for i in ids) and snapshotted <= snaps
                and not cat.pending_jobs() and set(ids) <= set(w.component.monitor.watch.tracked()))

    wait_until(ready, 60, 0.2, "every torrent protected, snapshotted and watched")
    yield w
    w.service.stop()
    qbt.client.torrents_delete(delete_files=False, torrent_hashes=ids)


def test_one_watch_per_directory_and_hardlinks_flagged(world):
    dirs, links = world.component.monitor.watch.watch_count()
    # One watch for each torrent's folder + one for the folder two single-file torrents share.
    assert dirs == len(CASES) + 1
    # every payload file is watched through its inode too (writes through other links, new links)
    assert links == len({p for files in world.component.monitor.watch.tracked().values() for p in files.values()})
    linked = world.service.catalog.get_files(world.ids["Linked"])[0]
    assert linked["nlink"] == 2
    flagged = [e for e in world.service.catalog.events(world.ids["Linked"], 50) if e["kind"] == "hardlinked"]
    assert len(flagged) == 1 and "lib.flac" in flagged[0]["message"]


def test_heal_action_through_the_control_socket(world):
    from companion.control import request

    tid = world.ids["Gone"]
    job = request(world.service.home, "action", action="heal", id=tid[:8])["job"]
    wait_until(lambda: world.service.catalog.one("SELECT state FROM queue WHERE id = ?", (job,))["state"] == "done",
               30, 0.1, "the heal job")
    assert any(e["kind"] == "intact" for e in world.service.catalog.events(tid, 10))


def test_flipped_byte_heals_one_piece_and_a_fresh_peer_gets_the_whole_payload(world, tmp_path):
    tid = world.ids["Flip"]
    target = world.path("Flip", "track.flac")
    last = world.last_heal(tid)
    flip_byte(target, 40_000)
    row = world.heal_after(tid, last)
    assert row["source"] == "snapshot" and not row["recheck"]
    assert len(json.loads(row["pieces"])) == 1 and row["bytes_written"] <= 16384
    assert target.read_bytes() == world.original[target]
    kept = Path(row["quarantine"])
    record = json.loads((kept / "drift.json").read_text())["files"][0]
    assert record["kind"] == "damaged"
    rng = record["ranges"][0]
    assert (kept / rng["file"]).read_bytes()[40_000 - rng["offset"]] == world.original[target][40_000] ^ 0xFF
    world.assert_seeding_again(tid)
    timings = json.loads(row["timings"])
    assert timings["stop"] is not None

    download_and_verify(world, "Flip", tmp_path)


def download_and_verify(world, name: str, dest: Path) -> None:
    """A separate libtorrent session on loopback downloads the whole payload from qBittorrent;
    it must verify against the torrent (qBittorrent serves the healed bytes, not stale ones)."""
    meta = load_torrent(world.torrents[name])
    ses = isolated_session()
    handle = ses.add_torrent(add_params(meta.raw, dest, stop_when_ready=False))
    handle.connect_peer(("127.0.0.1", world.qbt.peer_port))
    wait_until(lambda: handle.status().is_seeding, 60, 0.1, "the download from qBittorrent")
    # libtorrent hashes pieces from its write buffer and reports seeding before every byte is in the
    # files: wait for the files (a wrong heal never verifies, and times out here).
    wait_until(lambda: Scanner().full_scan(meta, dest).ok, 30, 0.2, "the downloaded files to verify")
    ses.remove_torrent(handle)


def test_tag_rewrite_at_the_start_of_a_media_file(world):
    tid = world.ids["Retag"]
    target = world.path("Retag", "song.mp3")
    last = world.last_heal(tid)
    with open(target, "r+b") as fh:  # a tagger rewriting the ID3 header in place
        fh.write(b"ID3\x04\x00\x00\x00\x00\x02\x00TIT2\x00\x00\x00\x10\x00\x00\x03Retagged by AI!")
    row = world.heal_after(tid, last)
    assert json.loads(row["pieces"]) == [0]
    assert target.read_bytes() == world.original[target]
    world.assert_seeding_again(tid)
    # qBittorrent's own full recheck agrees: every piece is there.
    assert world.qbt.client.torrents_properties(torrent_hash=tid)["pieces_have"] == -(-120_000 // 16384)


def test_truncation_is_rewritten_whole_and_rechecked(world):
    tid = world.ids["Trunc"]
    target = world.path("Trunc", "movie.mkv")
    last = world.last_heal(tid)
    os.truncate(target, 50_000)
    row = world.heal_after(tid, last)
    assert row["recheck"]  # sizes changed: qBittorrent's recheck confirmed 100% before resuming
    assert target.read_bytes() == world.original[target]
    kept = Path(row["quarantine"])
    assert (kept / "Trunc" / "movie.mkv").read_bytes() == world.original[target][:50_000]
    world.assert_seeding_again(tid)


def test_deleted_file_comes_back(world):
    tid = world.ids["Gone"]
    target = world.path("Gone", "y.bin")
    last = world.last_heal(tid)
    target.unlink()
    row = world.heal_after(tid, last)
    assert row["recheck"]
    drift = json.loads(row["drift"])
    assert drift["Gone/y.bin"]["kind"] == "missing"
    assert target.read_bytes() == world.original[target]
    world.assert_seeding_again(tid)


def test_replace_by_rename(world):
    tid = world.ids["Swap"]
    target = world.path("Swap", "ep.mkv")
    last = world.last_heal(tid)
    edited = bytearray(world.original[target])
    edited[30_000:30_010] = b"0123456789"
    tmp = target.with_name(".ep.mkv.part")
    tmp.write_bytes(edited)
    os.replace(tmp, target)
    row = world.heal_after(tid, last)
    assert json.loads(row["drift"])["Swap/ep.mkv"]["kind"] == "replaced"
    assert target.read_bytes() == world.original[target]
    assert (Path(row["quarantine"]) / "Swap" / "ep.mkv").read_bytes() == bytes(edited)
    world.assert_seeding_again(tid)


def test_hardlinked_file_edited_through_its_other_link(world, tmp_path):
    tid = world.ids["Linked"]
    target = world.path("Linked", "lib.flac")
    library = world.root / "library" / "lib.flac"
    last = world.last_heal(tid)
    with open(library, "r+b") as fh:  # the library copy, edited in place by a tagger
        fh.seek(20_000)
        fh.write(b"REPLAYGAIN_TRACK_GAIN=-6.2 dB")
    edited = library.read_bytes()
    row = world.heal_after(tid, last)
    assert json.loads(row["drift"])["Linked/lib.flac"]["hardlinked"]
    assert target.read_bytes() == world.original[target]
    assert library.read_bytes() == edited  # the seed got its own inode; the library keeps the edit
    assert os.stat(target).st_nlink == 1
    world.assert_seeding_again(tid)
    download_and_verify(world, "Linked", tmp_path)  # the new inode is what qBittorrent serves


def test_two_torrents_sharing_a_directory(world):
    one, two = world.ids["one.bin"], world.ids["two.bin"]
    last = {t: world.last_heal(t) for t in (one, two)}
    a, b = world.root / "shared" / "one.bin", world.root / "shared" / "two.bin"
    flip_byte(a, 100)
    flip_byte(b, 30_000)
    for tid in (one, two):
        world.heal_after(tid, last[tid])
        world.assert_seeding_again(tid)
    assert a.read_bytes() == world.original[a] and b.read_bytes() == world.original[b]


def test_reconcile_and_scrub_find_drift_made_while_unwatched(world):
    """A change the live watch did not see (written while the torrent was not watched) is found
    by the start-up reconciliation's stat comparison and by the scrub's quick verify."""
    from companion.drift.reconcile import find_suspects
    from companion.drift.scrub import run_scrub

    tid = world.ids["Flip"]
    target = world.path("Flip", "cover.jpg")
    monitor = world.component.monitor
    with monitor.claimed(tid) as mine:  # as if someone else worked on it: its events wait
        assert mine
        last = world.last_heal(tid)
        flip_byte(target, 5)
        time.sleep(0.5)  # let the events arrive (not an assertion)
        assert [(s.torrent_id, s.reason) for s in find_suspects(world.service.catalog)] == [(tid, "mtime")]
    report = run_scrub(monitor, 100.0, 0)
    assert report.damaged == [tid]
    world.heal_after(tid, last)
    assert target.read_bytes() == world.original[target]
    world.assert_seeding_again(tid)
    assert find_suspects(world.service.catalog) == []


def test_alert_policy_then_restore_through_the_service(world):
    """`alert` only records and tags; `seedward restore ID` then heals through the running service
    (stop, quarantine, write, resume)."""
    from .helpers import seedward

    tid = world.ids["Alerted"]
    target = world.path("Alerted", "a.ogg")
    last = world.last_heal(tid)
    flip_byte(target, 17_000)
    world.heal_after(tid, last, outcome="alerted")
    assert world.service.catalog.get_torrent(tid)["protection"] == "damaged"
    assert world.qbt.client.torrents_info(torrent_hashes=tid)[0]["state"] in SEEDING  # alert: not stopped
    r = seedward("restore", tid[:10], "--json", home=world.root / "home")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["via"] == "service" and report["outcome"] == "healed" and report["pieces"] == [1]
    assert target.read_bytes() == world.original[target]
    world.assert_seeding_again(tid)


def test_qbittorrents_own_recheck_agrees_after_the_heal(world):
    """`quarantine` stops the torrent and heals nothing. qBittorrent's own recheck then finds the
    damaged piece missing; after `seedward restore`, only qBittorrent's recheck can bring it back
    to 100% (no peer has the piece), and it does."""
    from .helpers import seedward

    tid = world.ids["Held"]
    target = world.path("Held", "h.flac")
    last = world.last_heal(tid)
    flip_byte(target, 40_000)
    row = world.heal_after(tid, last, outcome="damaged")
    assert row["response"] == "quarantine"
    info = lambda: world.qbt.client.torrents_info(torrent_hashes=tid)[0]  # noqa: E731
    wait_until(lambda: info()["state"].startswith(("paused", "stopped")), 10, 0.1, "the torrent stopped")
    world.qbt.client.torrents_recheck(torrent_hashes=tid)
    wait_until(lambda: info()["progress"] < 1 and not info()["state"].startswith("checking"), 30, 0.1,
               "qBittorrent's recheck to find the damaged piece")
    assert world.qbt.client.torrents_properties(torrent_hash=tid)["pieces_have"] == 3  # of 4
    r = seedward("restore", tid, "--json", home=world.root / "home")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["outcome"] == "healed" and report["recheck"] and report["pieces"] == [2]
    world.assert_seeding_again(tid)
    assert world.qbt.client.torrents_properties(torrent_hash=tid)["pieces_have"] == 4


def test_catalog_only_torrent_is_healed_by_the_swarm(world, tmp_path):
    tid = world.ids["Swarm"]
    target = world.path("Swarm", "s.flac")
    meta = load_torrent(world.torrents["Swarm"])
    (tmp_path / "Swarm").mkdir()
    (tmp_path / "Swarm" / "s.flac").write_bytes(world.original[target])
    ses = isolated_session()
    seeder = ses.add_torrent(add_params(meta.raw, tmp_path, seed_mode=True, stop_when_ready=False))
    last = world.last_heal(tid)
    with open(target, "r+b") as fh:
        fh.seek(33_000)
        fh.write(b"\0" * 2000)

    introduced = [0.0]

    def healed():
        info = world.qbt.client.torrents_info(torrent_hashes=tid)[0]
        if (info["state"] in ("stalledDL", "downloading") and not seeder.status().num_peers
                and time.monotonic() - introduced[0] > 5):
            # The swarm: one peer with every piece, met once qBittorrent looks for the missing ones.
            introduced[0] = time.monotonic()
            seeder.connect_peer(("127.0.0.1", world.qbt.peer_port))
        rows = [r for r in drift_rows.heals(world.service.catalog, tid) if r["id"] > last and r["finished_at"]]
        return rows[0] if rows else None

    row = wait_until(healed, 60, 0.3, "the swarm heal")
    ses.remove_torrent(seeder)
    assert row["outcome"] == "healed" and row["source"] == "swarm"
    assert target.read_bytes() == world.original[target]
    drifted = (Path(row["quarantine"]) / "Swarm" / "s.flac").read_bytes()
    assert drifted[33_000:35_000] == b"\0" * 2000
    world.assert_seeding_again(tid)


def test_catalog_only_torrent_without_peers_falls_back_to_alert(world):
    tid = world.ids["Lonely"]
    target = world.path("Lonely", "l.flac")
    world.component.responder.swarm_stall = 3.0
    last = world.last_heal(tid)
    flip_byte(target, 100)
    row = world.heal_after(tid, last, outcome="alerted")
    assert row["source"] == "swarm"
    assert world.service.catalog.get_torrent(tid)["protection"] == "damaged"
    assert any(e["kind"] == "alert" for e in world.service.catalog.events(tid, 10))
    assert (Path(row["quarantine"]) / "Lonely" / "l.flac").exists()


def test_a_write_under_a_lease_is_recataloged_not_healed(world):
    from companion import lease

    tid = world.ids["Leased"]
    target = world.path("Leased", "cover.png")
    cat = world.service.catalog
    lease.acquire(cat, target.parent, 120, "upscaler-bot")
    last = world.last_heal(tid)
    with open(target, "r+b") as fh:
        fh.write(b"\x89PNG upscaled by an agent")
    edited = target.read_bytes()
    wait_until(lambda: cat.get_torrent(tid)["protection"] == "baseline_bad", 30, 0.1, "the re-catalog")
    assert world.component.monitor.wait_idle(30)
    assert target.read_bytes() == edited  # intended: not healed back
    assert world.last_heal(tid) == last
    # The baseline stays the torrent's (quick and full verify agree the file differs from it).
    rows = {r["path"]: r["sha256"] for r in cat.get_files(tid)}
    assert rows["Leased/cover.png"] == hashlib.sha256(world.original[target]).hexdigest()
    assert any(e["kind"] == "intended" for e in cat.events(tid, 20))


def test_reconcile_at_start_heals_what_changed_while_the_service_was_down(world):
    tid = world.ids["Retag"]
    target = world.path("Retag", "song.mp3")
    last = world.last_heal(tid)
    world.service.stop()
    with open(target, "r+b") as fh:
        fh.seek(70_000)
        fh.write(b"edited while nobody watched")
    start_service(world)
    row = world.heal_after(tid, last)
    assert json.loads(row["pieces"]) == [70_000 // 16384]
    assert target.read_bytes() == world.original[target]
    world.assert_seeding_again(tid)
    assert any(e["kind"] == "reconcile" for e in world.service.catalog.events(None, 50))


def test_the_scheduled_scrub_also_reads_back_the_stores_new_packs(world):
    """First snapshots copy verified files unhashed (store/trusted.py): the scrub job then has
    every new pack read back from disk and checked against the chunk ids."""
    cat = world.service.catalog
    world.service.enqueue("scrub", None, reason="test")
    checked = wait_until(lambda: cat.query("SELECT * FROM events WHERE kind = 'store_checked'"), 60, 0.1,
                         "the store's new packs read back")
    detail = json.loads(checked[-1]["detail"])
    assert detail["packs"] >= 1 and detail["bytes"] > 0
    assert not cat.query("SELECT * FROM events WHERE kind = 'store_corrupt'")


def test_z_corrupted_pack_heal_refuses_and_names_the_chunk(world):
    tid = world.ids["Rot"]
    target = world.path("Rot", "r.bin")
    cat = world.service.catalog
    snap = snap_rows.list_snapshots(cat, tid)[-1]
    chunk = next(c for c in snap_rows.snapshot_chunks(cat, snap["id"])
                 if c["offset"] <= 20_000 < c["offset"] + c["length"])
    store = Store.open(world.root / "home" / "store", cat)
    (pack_id, at, _length), *_rest = store.locate(chunk["chunk_id"])  # the segment's bytes in its (content) chunk
    pack = store.backend.local_path(pack_name(pack_id))
    os.chmod(pack, 0o600)
    with open(pack, "r+b") as fh:  # rot inside the chunk's bytes in its pack
        fh.seek(at + 100)
        b = fh.read(1)
        fh.seek(at + 100)
        fh.write(bytes([b[0] ^ 0x55]))
    last = world.last_heal(tid)
    flip_byte(target, 20_000)
    damaged = target.read_bytes()
    row = world.heal_after(tid, last, outcome="failed")
    assert chunk["chunk_id"] in row["error"]
    assert target.read_bytes() == damaged  # nothing written
    assert cat.get_torrent(tid)["protection"] == "damaged"
    # Quarantined: stopped, not serving the bad piece (qBittorrent's WebUI shows it at its next refresh).
    wait_until(lambda: world.qbt.client.torrents_info(torrent_hashes=tid)[0]["state"].startswith(("paused", "stopped")),
               10, 0.1, "the torrent shown stopped")
    meta = load_torrent(world.torrents["Rot"])
    assert bad_pieces(meta, world.root / "dl", range(meta.num_pieces)) == [20_000 // 16384]
    # The store's scrub finds the rot too (this pack was read back clean before), and marks the
    # snapshot suspect until a drill proves it.
    found = store.scrub_packs(100.0)
    assert any(pack_id in e for e in found.errors)  # the (content) chunk holding the segment, in that pack
    assert snap["id"] in {r["snapshot_id"] for r in cat.query("SELECT snapshot_id FROM suspect_snapshots")}
