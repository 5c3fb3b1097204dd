"""The store's commands through the real `seedward` console script, and the service's job kind."""

import hashlib
import json

from companion.catalog import Catalog
from companion.config import Settings
from companion.home import Home
from companion.store import Store
from companion.store.job import register
from companion.torrent import load_torrent
from tests.helpers import flip_byte, make_torrent, seedward, write_payload

PIECE = 16384


def setup(tmp_path):
    home = tmp_path / "home"
    data = tmp_path / "data"
    write_payload(data / "show", {"e01.mkv": 20 * PIECE + 99, "e02.mkv": 6 * PIECE, "notes.txt": 300}, seed=7)
    torrent = make_torrent(data / "show", PIECE, "hybrid", out=tmp_path / "show.torrent")
    r = seedward("catalog", "add", torrent, data, "--json", home=home)
    assert r.returncode == 0, r.stderr
    return home, data, json.loads(r.stdout)["id"]


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_snapshot_restore_forget_prune_commands(tmp_path):
    home, data, tid = setup(tmp_path)
    r = seedward("snapshot", tid[:8], "--json", home=home)
    assert r.returncode == 0, r.stderr
    first = json.loads(r.stdout)["snapshots"][0]
    assert first["torrent_id"] == tid and first["new_bytes"] == first["bytes"] > 0
    r = seedward("snapshot", "--all", "--json", home=home)
    assert json.loads(r.stdout)["snapshots"][0]["new_bytes"] == 0
    listed = json.loads(seedward("snapshots", tid[:6], "--json", home=home, check=True).stdout)["snapshots"]
    assert [s["id"] for s in listed][0] == first["id"] and len(listed) == 2

    episode = data / "show" / "e01.mkv"
    good = sha(episode)
    flip_byte(episode, 5 * PIECE + 3)
    r = seedward("restore", tid, "--dry-run", "--json", home=home, check=True)
    plan = json.loads(r.stdout)
    assert plan["healed"] is None and [p for _f, p in plan["damage"]["segments"]] == [5]
    assert sha(episode) != good
    r = seedward("restore", tid, "--json", home=home, check=True)
    assert json.loads(r.stdout)["healed"]["bytes"] == PIECE and sha(episode) == good

    r = seedward("restore", tid, "--snapshot", first["id"][:10], "--to", tmp_path / "out", "--files",
                 "e02.mkv", home=home)
    assert r.returncode == 0, r.stderr
    assert sha(tmp_path / "out" / "show" / "e02.mkv") == sha(data / "show" / "e02.mkv")
    assert not (tmp_path / "out" / "show" / "e01.mkv").exists()

    r = seedward("forget", "--keep-last", "1", "--dry-run", "--json", home=home, check=True)
    assert json.loads(r.stdout)["removed"] == [first["id"]]
    assert len(json.loads(seedward("snapshots", "--json", home=home).stdout)["snapshots"]) == 2
    seedward("forget", "--keep-last", "1", "--prune", home=home, check=True)
    assert len(json.loads(seedward("snapshots", "--json", home=home).stdout)["snapshots"]) == 1
    r = seedward("prune", "--json", home=home, check=True)
    assert json.loads(r.stdout)["bytes_freed"] == 0


def test_bad_input_and_refusals(tmp_path):
    home, data, tid = setup(tmp_path)
    # --all follows the protection policy: a size cap below the payload leaves it out
    (home / "config.toml").write_text("[protection.default]\nsnapshot_max_bytes = 1000\n")
    r = json.loads(seedward("snapshot", "--all", "--json", home=home, check=True).stdout)
    assert r["snapshots"] == [] and r["skipped"][0]["id"] == tid and "snapshot_max_bytes" in r["skipped"][0]["reason"]
    (home / "config.toml").unlink()
    r = seedward("snapshot", "ffff0000", home=home)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "ffff0000" in r.stderr
    r = seedward("forget", home=home)
    assert r.returncode == 2 and "no policy" in r.stderr
    r = seedward("restore", tid, home=home)
    assert r.returncode == 2 and "no snapshot" in r.stderr
    flip_byte(data / "show" / "notes.txt", 10)
    r = seedward("snapshot", tid, home=home)
    assert r.returncode == 1 and "does not match its torrent" in r.stderr
    assert json.loads(seedward("snapshots", "--json", home=home).stdout)["snapshots"] == []
    flip_byte(data / "show" / "notes.txt", 10)
    seedward("snapshot", tid, home=home, check=True)
    # a corrupt pack: restore says which chunk and exits 5, writing nothing
    pack = next(p for p in (home / "store" / "data").rglob("*") if p.is_file())
    flip_byte(pack, 1000)
    r = seedward("restore", tid, "--to", tmp_path / "out", home=home)
    assert r.returncode == 5 and "chunk " in r.stderr and pack.name in r.stderr
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


class FakeService:
    """The service's extension surface (register_job, emit) around a real catalog and store."""

    def __init__(self, home, catalog):
        self.home, self.catalog, self.settings, self.scanner = home, catalog, Settings(), None
        self.jobs, self.events = {}, []

    def register_job(self, kind, fn):
        self.jobs[kind] = fn

    def emit(self, kind, torrent_id=None, message="", **data):
        self.events.append((kind, torrent_id, data))


def test_snapshot_job_kind(tmp_path):
    home, data, tid = setup(tmp_path)
    cat = Catalog(Home(home).catalog_db)
    service = FakeService(Home(home), cat)
    register(service)

    class Job:
        id, torrent_id, payload = 7, tid, {"reason": "hook"}  # as the protect job queues it

    service.jobs["snapshot"](service, Job)
    snap = Store.for_home(Home(home), Settings(), cat).latest(tid)
    assert snap.job_id == "7" and snap.reason == "auto"
    assert service.events[0][0] == "snapshot" and service.events[0][2]["snapshot"] == snap.id
    meta = load_torrent(tmp_path / "show.torrent")
    assert snap.bytes == meta.payload_size

    # after each scheduled scrub: the store's new packs are read back from disk
    service.jobs["verify_packs"](service, Job)
    kind, _tid, data = service.events[-1]
    assert kind == "store_checked" and data["bytes"] == snap.bytes
    cat.close()


def test_check_store_reads_back_new_packs_and_names_a_bad_chunk(tmp_path):
    home, data, tid = setup(tmp_path)
    snap = json.loads(seedward("snapshot", tid, "--json", home=home, check=True).stdout)["snapshots"][0]
    new = json.loads(seedward("check-store", "--new", "--json", home=home, check=True).stdout)
    assert new["ok"] and new["packs"] >= 1 and new["bytes_read"] == snap["bytes"]
    again = json.loads(seedward("check-store", "--new", "--json", home=home, check=True).stdout)
    assert again["packs"] == 0  # each pack is read back once by --new (the scrub's way)
    assert json.loads(seedward("check-store", "--metadata-only", "--json", home=home, check=True).stdout)["ok"]

    pack = next(p for p in (home / "store" / "data").rglob("*") if p.is_file())
    flip_byte(pack, 1000)
    r = seedward("check-store", home=home)
    assert r.returncode == 5 and "does not match its id" in r.stdout and pack.name in r.stdout
    cat = Catalog(home / "catalog.sqlite")
    suspect = cat.query("SELECT snapshot_id, drill_id FROM suspect_snapshots")
    assert [(s["snapshot_id"], s["drill_id"]) for s in suspect] == [(snap["id"], "store-check")]
    cat.close()
    status = json.loads(seedward("status", "--json", home=home, check=True).stdout)
    assert status["torrents"][0]["snapshot"]["suspect"] is True
    assert "SUSPECT" in seedward("status", home=home, check=True).stdout
