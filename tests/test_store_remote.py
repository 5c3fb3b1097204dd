"""The store on object storage (issue 20), against a real S3 server (`rclone serve s3`): snapshots,
dedup across hosts, restore and heal onto a new host, locks as objects with expiry, and the index
rebuilt from the packs."""

import hashlib
import json
import threading
import time
from pathlib import Path

import pytest

from companion.catalog import Catalog
from companion.catalog.torrents import upsert_torrent
from companion.config import Settings
from companion.errors import Locked
from companion.home import Home
from companion.store import Store
from companion.store.rebuild import rebuild_index
from companion.store.remote import RemoteBackend
from companion.torrent import load_torrent
from tests.helpers import flip_byte, make_torrent, wait_until, write_payload
from tests.s3server import s3_server  # noqa: F401 - fixture

PIECE = 32768


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def payload(tmp_path: Path, name: str = "album", seed: int = 1, kind: str = "hybrid"):
    data = tmp_path / f"data-{name}"
    write_payload(data / name, {"01.flac": 9 * PIECE + 1234, "02.flac": 3 * PIECE, "cover.jpg": 5000}, seed=seed)
    meta = load_torrent(make_torrent(data / name, PIECE, kind, out=tmp_path / f"{name}.torrent"))
    return meta, data


class Host:
    """One seedbox: its own home (catalog, staging) on the shared bucket."""

    def __init__(self, tmp_path: Path, server, bucket: str, name: str, expiry: float = 300.0, catalog=None):
        self.home = Home(tmp_path / name).ensure()
        conf = server.client_config(tmp_path / f"{name}-rclone.conf")
        server.bucket(bucket)
        self.settings = Settings()
        self.settings.store.remote = f"fleet:{bucket}/store"
        self.settings.store.rclone_config = str(conf)
        self.settings.store.lock_expiry_seconds = expiry
        self.settings.store.pack_size_mb = 1
        self.catalog = catalog or Catalog(self.home.catalog_db)
        self.store = Store.for_home(self.home, self.settings, self.catalog)

    def close(self):
        self.store.close()
        self.catalog.close()


def objects(server, bucket: str, folder: str) -> list[Path]:
    root = server.data / bucket / "store" / folder
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_snapshot_restore_and_heal_through_the_object_store(tmp_path, s3_server):
    meta, data = payload(tmp_path)
    a = Host(tmp_path, s3_server, "one", "a")
    snap = a.store.snapshot(meta, data, "manual")
    assert isinstance(a.store.backend, RemoteBackend) and objects(s3_server, "one", "data")
    assert snap.new_bytes == meta.payload_size and not list((a.home.scratch / "store-staging").glob("*.pack"))
    # the seedbox dies: a new host with a new disk restores from the object store and the shared catalog
    b = Host(tmp_path, s3_server, "one", "b", catalog=a.catalog)
    out = tmp_path / "restored"
    b.store.restore(snap.id, out)
    for f in meta.real_files:
        assert sha(out / f.path) == sha(data / f.path)
    # damage in place, healed from the object store
    target = data / meta.real_files[0].path
    good = sha(target)
    flip_byte(target, PIECE * 2 + 17)
    from companion.store.repair import find_damaged

    bad = find_damaged(b.store, snap.id, data)
    assert bad.segments == [(meta.real_files[0].index, 2)]
    b.store.heal(snap.id, data, bad.segments)
    assert sha(target) == good
    a.close()
    b.store.close()


def test_the_same_payload_on_two_hosts_is_stored_once(tmp_path, s3_server):
    meta, data = payload(tmp_path, "shared")
    a = Host(tmp_path, s3_server, "two", "a")
    b = Host(tmp_path, s3_server, "two", "b")
    first = a.store.snapshot(meta, data, "manual")
    packs = objects(s3_server, "two", "data")
    second = b.store.snapshot(meta, data, "manual")  # another host, its own catalog: same chunks
    assert first.new_bytes == meta.payload_size and second.new_bytes == 0
    assert objects(s3_server, "two", "data") == packs
    a.close()
    b.close()


@pytest.mark.slow
def test_locks_are_objects_that_exclude_and_expire(tmp_path, s3_server):
    a = Host(tmp_path, s3_server, "three", "a", expiry=10)
    b = Host(tmp_path, s3_server, "three", "b", expiry=10)
    with a.store.backend.lock(5, exclusive=False), b.store.backend.lock(5, exclusive=False):
        assert len(objects(s3_server, "three", "locks")) == 2  # shared locks coexist
        with pytest.raises(Locked, match="shared lock"):
            with a.store.backend.lock(1.0):
                pass
    assert objects(s3_server, "three", "locks") == []
    # a holder killed: its lock object stays, is not refreshed, and goes stale after the expiry
    stale = s3_server.data / "three" / "store" / "locks" / "exclusive-dead.json"
    a.store.backend.put_bytes("locks/exclusive-dead.json", json.dumps({"host": "gone", "pid": 1, "exclusive": True}).encode())
    with pytest.raises(Locked, match="host gone"):
        with b.store.backend.lock(1.0):
            pass
    t0 = time.monotonic()
    with b.store.backend.lock(60):
        waited = time.monotonic() - t0
    assert not stale.exists() and waited < 60
    a.close()
    b.close()


@pytest.mark.slow
def test_a_held_lock_is_kept_fresh_while_work_goes_on(tmp_path, s3_server):
    a = Host(tmp_path, s3_server, "four", "a", expiry=10)
    b = Host(tmp_path, s3_server, "four", "b", expiry=10)
    done = threading.Event()
    with a.store.backend.lock(5):
        first = objects(s3_server, "four", "locks")[0].stat().st_mtime
        wait_until(lambda: objects(s3_server, "four", "locks")[0].stat().st_mtime > first, 20, 0.2, "a refresh")
        with pytest.raises(Locked):
            with b.store.backend.lock(12):  # longer than the expiry: the refreshed lock is not stale
                done.set()
    assert not done.is_set()
    a.close()
    b.close()


def test_the_index_is_rebuilt_from_the_packs(tmp_path, s3_server):
    meta, data = payload(tmp_path, "lost")
    a = Host(tmp_path, s3_server, "five", "a")
    snap = a.store.snapshot(meta, data, "manual")
    for name in a.store.backend.list("index"):
        a.store.backend.delete(name)  # index files lost (or never written by a host that died after its packs)
    c = Host(tmp_path, s3_server, "five", "c", catalog=a.catalog)
    assert len(c.store.index.entries) == 0
    result = rebuild_index(c.store)
    assert result.packs == len(objects(s3_server, "five", "data")) and result.new_packs == result.packs
    assert not result.unreadable and len(objects(s3_server, "five", "index")) == 1
    out = tmp_path / "out"
    c.store.restore(snap.id, out)
    assert all(sha(out / f.path) == sha(data / f.path) for f in meta.real_files)
    a.close()
    c.store.close()


def test_an_unreachable_store_is_a_clear_error(tmp_path):
    """No server there: an error naming the store and why (rclone's own "is a file not a directory"
    for a folder it could not open is replaced by the listing's cause), not the store's corruption."""
    from companion.demo.private_qbt import free_port
    from companion.errors import EXIT_REMOTE, StoreCorrupt, StoreUnreachable

    conf = tmp_path / "rclone.conf"
    conf.write_text(f"[gone]\ntype = s3\nprovider = Rclone\nendpoint = http://127.0.0.1:{free_port()}\n"
                    "access_key_id = x\nsecret_access_key = y\n")
    home = Home(tmp_path / "h").ensure()
    settings = Settings()
    settings.store.remote = "gone:bucket/store"
    settings.store.rclone_config = str(conf)
    cat = Catalog(home.catalog_db)
    with pytest.raises(StoreUnreachable, match="gone:bucket/store") as err:
        Store.for_home(home, settings, cat)
    assert not isinstance(err.value, StoreCorrupt) and err.value.exit_code == EXIT_REMOTE
    assert "connection refused" in str(err.value) and "is a file not a directory" not in str(err.value)
    cat.close()


def test_a_remote_failing_mid_check_marks_nothing_bad(tmp_path):
    """The server refuses the store's keys (they were rotated) between two packs of a check: the
    check stops with the remote's error (exit 13), and no chunk is recorded bad, no snapshot suspect:
    the stored bytes were never read. With the keys back the same check passes; the CLI says the
    same in one line."""
    from companion.catalog.chunks import bad_chunk_rows
    from companion.catalog.drills import suspect_snapshots
    from companion.errors import StoreUnreachable
    from tests.helpers import seedward
    from tests.s3server import S3Server

    server = S3Server().start()  # its own server: this test takes it down
    try:
        host = Host(tmp_path, server, "six", "a")  # 1 MiB packs
        data = tmp_path / "data-six"
        write_payload(data / "six", {"a.bin": 1_300_000, "b.bin": 1_300_000}, seed=6)
        meta = load_torrent(make_torrent(data / "six", PIECE, "hybrid", out=tmp_path / "six.torrent"))
        snap = host.store.snapshot(meta, data, "manual")
        assert len(objects(server, "six", "data")) >= 2
        keys = server.keys

        def rotate_keys(done, total):  # after the first pack was read back
            if server.keys == keys:
                server.halt()
                server.keys = ("rotatedkey", "another-secret-0123456789")
                server.start()

        with pytest.raises(StoreUnreachable, match="six/store") as err:
            host.store.scrub_packs(share_percent=100, progress=rotate_keys)
        assert "403" in str(err.value)  # the server's refusal, as it said it
        assert bad_chunk_rows(host.catalog) == [] and suspect_snapshots(host.catalog) == []
        (host.home.root / "config.toml").write_text(
            f'[store]\nremote = "fleet:six/store"\nrclone_config = "{host.settings.store.rclone_config}"\n')
        proc = seedward("check-store", home=host.home.root)
        assert proc.returncode == 13, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "fleet:six/store" in lines[0] and "InvalidAccessKeyId" in lines[0], lines
        server.halt()
        server.keys = keys
        server.start()
        result = host.store.check(read_data=True)
        assert not result.errors and result.bytes_read >= meta.payload_size
        assert [s.id for s in host.store.snapshots()] == [snap.id] and suspect_snapshots(host.catalog) == []
        host.close()
    finally:
        server.stop()


def test_a_stopped_rclone_is_started_again(tmp_path, s3_server):
    """rclone rcd ends under the store (killed, out of memory): the next call starts another and
    answers, instead of every later job failing on a dead socket."""
    host = Host(tmp_path, s3_server, "eight", "a")
    meta, data = payload(tmp_path, "eight", seed=8)
    rc = host.store.backend.rc
    rc.proc.kill()
    rc.proc.wait(10)
    snap = host.store.snapshot(meta, data, "manual")
    assert rc.proc.poll() is None  # a new rcd
    assert [s.id for s in host.store.snapshots()] == [snap.id]
    host.close()


def test_a_snapshot_job_waits_for_a_store_that_is_down_and_runs_once_it_is_back(tmp_path, monkeypatch):
    """Found on a fleet under load: one refused connection failed the snapshot job for good, and the
    torrent was never snapshotted. A job that cannot reach the store now waits in the queue (said
    once, as `store_unreachable`, and as `waiting` with its reason in the catalog's view) and runs
    when the store answers again, or at once when it is asked for again. The store refuses its keys here (a refused connection is the same
    StoreUnreachable, test_an_unreachable_store_is_a_clear_error, but rclone retries it for a minute)."""
    from companion.catalog import views
    from companion.catalog.views import catalog_entries
    from companion.service import Service, jobs
    from companion.store import job as store_job
    from tests.s3server import S3Server
    from tests.test_notify import closed_port

    monkeypatch.setattr(jobs, "STORE_WAITS", (1, 3600))  # the waits themselves: test_store_waits_grow
    server = S3Server()
    conf = server.client_config(tmp_path / "rclone.conf")  # the store's keys...
    keys, server.keys = server.keys, ("otherkey", "another-secret-0123456789")  # ...which it refuses (403)
    server.bucket("nine")
    server.start()
    try:
        meta, data = payload(tmp_path, "nine", seed=9)
        settings = Settings()
        settings.qbittorrent.url = f"http://127.0.0.1:{closed_port()}"
        settings.qbittorrent.backoff_max_seconds = 1.0
        settings.store.remote = "fleet:nine/store"
        settings.store.rclone_config = str(conf)
        service = Service(Home(tmp_path / "home"), settings)
        store_job.register(service)
        upsert_torrent(service.catalog, meta, save_path=str(data), torrent_file=str(tmp_path / "nine.torrent"),
                       protection="protected")
        service.start()
        try:
            job = service.enqueue("snapshot", meta.id, reason="manual")
            wait_until(lambda: service.catalog.query("SELECT * FROM queue WHERE id = ? AND attempts >= 2", (job,)),
                       120, 0.2, "a second try of the snapshot job")
            row = service.catalog.one("SELECT * FROM queue WHERE id = ?", (job,))
            assert row["state"] in ("queued", "running") and "fleet:nine/store" in (row["error"] or "")
            waiting = wait_until(lambda: [j for j in catalog_entries(service.catalog).jobs.get(meta.id, [])
                                          if j["state"] == "waiting"], 60, 0.05, "the job shown waiting")
            assert waiting[0]["id"] == job and "fleet:nine/store" in waiting[0]["why"] and waiting[0]["until"]
            history = views.job_history(service.catalog)["queue"]  # the TUI's queue screen
            assert any(q["id"] == job and q["state"] in ("waiting", "running") for q in history)
            assert not service.catalog.query("SELECT * FROM snapshots")
            server.halt()
            server.keys = keys  # the store's keys are taken again
            server.start()
            wait_until(lambda: service.catalog.one("SELECT not_before FROM queue WHERE id = ?", (job,))["not_before"],
                       120, 0.2, "the second try failed: the job waits an hour")
            assert service.action("snapshot", meta.id)["job"] is None  # asked for again: the same job, tried now
            wait_until(lambda: service.catalog.query("SELECT * FROM snapshots WHERE torrent_id = ?", (meta.id,)),
                       120, 0.2, "the snapshot once the store answers")
            wait_until(lambda: service.catalog.one("SELECT state FROM queue WHERE id = ?", (job,))["state"] == "done",
                       30, 0.1, "the job done")
            said = service.catalog.query("SELECT * FROM events WHERE kind = 'store_unreachable'")
            assert len(said) == 1 and said[0]["torrent_id"] == meta.id  # once per job, not per try
            assert not service.catalog.query("SELECT * FROM events WHERE kind = 'job_failed'")
        finally:
            service.stop()
    finally:
        server.stop()


def test_store_waits_grow_to_a_bound():
    from companion.service.jobs import STORE_WAITS, store_wait

    waits = [store_wait(n) for n in range(1, 20)]
    assert waits == sorted(waits) and waits[0] == STORE_WAITS[0] and waits[-1] == STORE_WAITS[-1] == 900


def test_a_waiting_job_asked_for_again_is_tried_now(tmp_path):
    """`seedward snapshot` (or the TUI's action) on a torrent whose snapshot job waits for the store:
    the same job, due at once (not a second job, and not after its wait)."""
    from companion.catalog import queue as jobqueue

    cat = Catalog(tmp_path / "catalog.sqlite")
    tid = "cd" * 20
    job = jobqueue.enqueue(cat, "snapshot", tid, reason="auto")
    assert jobqueue.claim(cat)["id"] == job
    jobqueue.defer(cat, job, 3600, "store fleet:x: the remote cannot be reached or refused: down")
    assert jobqueue.claim(cat) is None  # waits an hour
    assert jobqueue.enqueue(cat, "snapshot", tid, reason="manual") is None  # the same job
    assert jobqueue.try_now(cat, "snapshot", tid) == job
    assert jobqueue.claim(cat)["id"] == job
    assert jobqueue.try_now(cat, "snapshot", tid) is None  # running: nothing to hurry
    cat.close()
