"""The catalog on a real PostgreSQL (issue 20): the SQLite dialect translated, the queue shared by
several services without a leader (FOR UPDATE SKIP LOCKED), ownership, the writer lock, reconnects,
read-only sessions, copies between engines, and `[catalog]` as a validated config key."""

import threading
from pathlib import Path

import pytest

from companion.catalog import Catalog, fleet, pg, views
from companion.catalog.db import CatalogError
from companion.errors import Locked
from companion.scan import Scanner
from companion.torrent import load_torrent
from tests.helpers import make_torrent, seedward, wait_until, write_payload
from tests.pgserver import pg_server, pg_url  # noqa: F401 - fixtures

# -- the translation (pure) ----------------------------------------------------------------------

SCHEMA = pg.Schema()
SCHEMA.columns = {"files": ["torrent_id", "file_index", "path", "offset"], "lease_snapshots":
                  ["lease_id", "torrent_id", "snapshot_id", "note"], "events": ["id", "at"]}
SCHEMA.primary = {"lease_snapshots": ["lease_id", "torrent_id"], "events": ["id"]}
SCHEMA.serial = {"events"}
SCHEMA.version = -1

CASES = [
    ("SELECT * FROM t WHERE a = ? AND b LIKE ?", "SELECT * FROM t WHERE a = %s AND b ILIKE %s"),
    ("SELECT * FROM q WHERE torrent_id IS ? AND x IS NOT ?",
     "SELECT * FROM q WHERE torrent_id IS NOT DISTINCT FROM %s AND x IS DISTINCT FROM %s"),
    ("UPDATE t SET v = :v WHERE k = :k", "UPDATE t SET v = %(v)s WHERE k = %(k)s"),
    ("SELECT 'a?b:c%' AS s, x % 2 FROM t", "SELECT 'a?b:c%%' AS s, x %% 2 FROM t"),
    ("SELECT a FROM t ORDER BY a, b DESC LIMIT ?", "SELECT a FROM t ORDER BY a NULLS FIRST, b DESC NULLS LAST LIMIT %s"),
    ("SELECT ROW_NUMBER() OVER (PARTITION BY t ORDER BY c DESC) AS k FROM s",
     "SELECT ROW_NUMBER() OVER (PARTITION BY t ORDER BY c DESC NULLS LAST) AS k FROM s"),
    ("SELECT SUM(n) FROM (SELECT MAX(l) AS n FROM c GROUP BY id) WHERE n > 0",
     "SELECT SUM(n) FROM (SELECT MAX(l) AS n FROM c GROUP BY id) AS _q1 WHERE n > 0"),
    ("SELECT f.offset, offset FROM files f LIMIT ? OFFSET ?", 'SELECT f."offset", "offset" FROM files f LIMIT %s OFFSET %s'),
    ("INSERT INTO files VALUES (?, ?, ?, ?)", 'INSERT INTO files (torrent_id, file_index, path, "offset") VALUES (%s, %s, %s, %s)'),
    ("INSERT OR REPLACE INTO lease_snapshots VALUES (?, ?, ?, ?)",
     "INSERT INTO lease_snapshots (lease_id, torrent_id, snapshot_id, note) VALUES (%s, %s, %s, %s)"
     " ON CONFLICT (lease_id, torrent_id) DO UPDATE SET snapshot_id = EXCLUDED.snapshot_id, note = EXCLUDED.note"),
    ("INSERT OR IGNORE INTO t (a) VALUES (?)", "INSERT INTO t (a) VALUES (%s) ON CONFLICT DO NOTHING"),
    ("INSERT INTO events (at) VALUES (?)", "INSERT INTO events (at) VALUES (%s) RETURNING id"),
    ("CREATE TABLE x (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, r REAL, t TEXT DEFAULT '')",
     'CREATE TABLE x (id BIGSERIAL PRIMARY KEY, n BIGINT NOT NULL, r DOUBLE PRECISION, t TEXT COLLATE "C" DEFAULT \'\''
     ', rowid BIGSERIAL)'),
    ("ALTER TABLE x ADD COLUMN full INTEGER;", 'ALTER TABLE x ADD COLUMN "full" BIGINT'),
]


@pytest.mark.parametrize("sqlite_sql, postgres_sql", CASES)
def test_sqlite_statements_become_postgresql_ones(sqlite_sql, postgres_sql):
    assert pg.translate(sqlite_sql, SCHEMA).sql == postgres_sql


def test_row_locks_are_dropped_on_sqlite():
    assert pg.for_sqlite("SELECT * FROM q ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED") == \
        "SELECT * FROM q ORDER BY id LIMIT 1"


def test_passwords_never_shown():
    assert pg.redact("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"


# -- a real server -------------------------------------------------------------------------------

def torrent(tmp_path: Path, name: str = "t", size: int = 80_000):
    data = tmp_path / f"data-{name}"
    write_payload(data / name, {"a.bin": size, "b.bin": 3000})
    meta = load_torrent(make_torrent(data / name, 16384, "hybrid", out=tmp_path / f"{name}.torrent"))
    return meta, data


def test_a_scan_recorded_reads_back_the_same_on_both_engines(tmp_path, pg_url):
    meta, data = torrent(tmp_path)
    result = Scanner().full_scan(meta, data)
    got = []
    for target in (tmp_path / "catalog.sqlite", pg_url):
        cat = Catalog(target)
        cat.record_scan(result, reason="test", save_path=str(data))
        got.append(([dict(r) for r in cat.get_files(meta.id)], [tuple(r) for r in cat.get_segments(meta.id)],
                    cat.resolve_id(meta.id[:6]), cat.get_torrent(meta.id)["last_verified"] is not None))
        cat.close()
    assert got[0] == got[1]
    assert got[0][1] and got[0][2] == meta.id


def test_the_queue_is_shared_without_a_leader(pg_url):
    """Three services, six workers, 90 jobs: each job runs once, on the service that queued it."""
    cats = {o: Catalog(pg_url, owners=(o,)) for o in ("a", "b", "c")}
    queued = {o: [cats[o].enqueue("protect", f"{o}{i:039d}", n=i) for i in range(30)] for o in cats}
    claimed: list[tuple[str, int]] = []
    lock = threading.Lock()

    def work(owner):
        cat = Catalog(pg_url, owners=(owner,))  # a worker's own session, as another process would have
        while (row := cat.claim(("protect",))) is not None:
            with lock:
                claimed.append((owner, row["id"]))
            cat.finish(row["id"])
        cat.close()

    threads = [threading.Thread(target=work, args=(o,)) for o in cats for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    ids = [j for _, j in claimed]
    assert sorted(ids) == sorted(j for js in queued.values() for j in js)  # every job once, none twice
    assert all(j in queued[o] for o, j in claimed)  # each by its own service
    assert cats["a"].one("SELECT COUNT(*) AS n FROM queue WHERE state = 'done'")["n"] == 90
    for cat in cats.values():
        cat.close()


def test_check_then_write_is_safe_across_services(pg_url):
    """enqueue's 'already queued?' check and its insert run under the writer lock: 8 services
    racing to queue the same job make one job."""
    cats = [Catalog(pg_url, owners=(f"h{i}",)) for i in range(8)]
    barrier = threading.Barrier(len(cats))
    got = []

    def race(cat):
        barrier.wait()
        got.append(cat.enqueue("snapshot", "ab" * 20))

    threads = [threading.Thread(target=race, args=(c,)) for c in cats]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len([g for g in got if g is not None]) == 1
    for c in cats:
        c.close()


def test_each_service_acts_on_its_own_torrents_and_reads_all(tmp_path, pg_url):
    meta, data = torrent(tmp_path, "mine")
    a, b = Catalog(pg_url, owners=("a",)), Catalog(pg_url, owners=("b",))
    a.record_scan(Scanner().full_scan(meta, data), reason="t", save_path=str(data), protection="protected")
    assert [r["id"] for r in a.list_torrents()] == [meta.id]
    assert b.list_torrents() == [] and [r["id"] for r in b.list_torrents(fleet=True)] == [meta.id]
    from companion.catalog import trust

    assert trust.watched_files(a, ("protected",)) and trust.watched_files(b, ("protected",)) == []
    with pytest.raises(fleet.NotOwner, match="owned by 'a'"):
        b.record_scan(Scanner().full_scan(meta, data), reason="t", save_path=str(data))
    b.mark_removed(meta.id)
    assert a.get_torrent(meta.id)["removed_at"] is None
    job = a.enqueue("protect", meta.id)
    assert a.claim(("protect",))["id"] == job
    assert b.requeue_running() == 0 and a.requeue_running() == 1
    entries = {e["id"]: e for e in views.torrent_entries(b, live={meta.id: {"state": "stalledUP"}})}
    assert entries[meta.id]["owner"] == "a" and entries[meta.id]["qbt_state"] is None  # not b's qBittorrent's
    a.close()
    b.close()


def test_one_service_per_owner(pg_url):
    first, second = Catalog(pg_url, owners=("box",)), Catalog(pg_url, owners=("box",))
    fleet.take_owner_lock(first)
    with pytest.raises(Locked, match="owner 'box'"):
        fleet.take_owner_lock(second)
    first.close()  # the session ends: the key is free again (once the server has ended the session)
    wait_until(lambda: _takes(second), 30, 0.1, "the owner key freed")
    second.close()


def _takes(cat) -> bool:
    try:
        fleet.take_owner_lock(cat)
        return True
    except Locked:
        return False


def test_a_lost_connection_is_reconnected(pg_server, pg_url):
    cat = Catalog(pg_url)
    cat.add_event(None, "test", "before")
    pg_server.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{pg_url.rsplit('/', 1)[1]}'"
                   " AND pid <> pg_backend_pid()")
    assert cat.one("SELECT COUNT(*) AS n FROM events")["n"] == 1  # a read: reconnected, retried
    cat.add_event(None, "test", "after")  # a write: a new transaction on the new session
    assert [e["message"] for e in cat.events()] == ["after", "before"]
    cat.close()


def test_read_only_sessions_cannot_write(pg_url):
    Catalog(pg_url).close()
    ro = views.ReadOnly(pg_url)
    assert views.queue_counts(ro) == {"queued": 0, "running": 0}
    with pytest.raises(CatalogError, match="read-only"):
        ro.db.add_event(None, "x", "y")
    ro.close()


def test_an_embedded_catalog_joins_and_is_copied_back(tmp_path, pg_url):
    meta, data = torrent(tmp_path, "moved")
    local = Catalog(tmp_path / "catalog.sqlite")
    local.record_scan(Scanner().full_scan(meta, data), reason="t", save_path=str(data), protection="protected")
    local.add_event(meta.id, "protected", "m: protected")
    from companion.catalog.copy import copy_rows

    shared = Catalog(pg_url, owners=("box1",))
    copied = copy_rows(local, shared, owner="box1")
    assert copied["segments"] == len(local.get_segments(meta.id))
    assert [r["id"] for r in shared.list_torrents()] == [meta.id]
    new_event = shared.add_event(None, "x", "after the copy")  # the serial ids moved past the copied ones
    assert new_event > max(e["id"] for e in local.events())
    shared.backup(tmp_path / "copy.sqlite")
    back = Catalog(tmp_path / "copy.sqlite")
    assert [tuple(r) for r in back.get_segments(meta.id)] == [tuple(r) for r in local.get_segments(meta.id)]
    for c in (local, shared, back):
        c.close()


def test_catalog_keys_are_checked_by_every_verb_that_opens_it(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('[catalog]\nurl = "mysql://u:hunter2@db/seedward"\n')
    r = seedward("status", home=home)
    assert r.returncode == 2 and "catalog.url should be a postgresql://" in r.stderr and "hunter2" not in r.stderr
    (home / "config.toml").write_text('[catalog]\nulr = "postgresql://db/seedward"\n')
    r = seedward("status", home=home)
    assert r.returncode == 2 and "unknown key 'ulr'" in r.stderr


def test_an_unreachable_server_is_one_line_without_the_password(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    from companion.demo.private_qbt import free_port

    (home / "config.toml").write_text(f'[catalog]\nurl = "postgresql://u:hunter2@127.0.0.1:{free_port()}/db"\n')
    r = seedward("status", home=home)
    assert r.returncode == 2 and "hunter2" not in r.stderr + r.stdout
    assert len(r.stderr.strip().splitlines()) == 1 and "catalog postgresql://u:***@127.0.0.1" in r.stderr


def test_import_catalog_moves_an_embedded_catalog_into_the_fleet(tmp_path, pg_url):
    meta, data = torrent(tmp_path, "old")
    home = tmp_path / "home"
    home.mkdir()
    local = Catalog(home / "catalog.sqlite")
    local.record_scan(Scanner().full_scan(meta, data), reason="t", save_path=str(data), protection="protected")
    local.close()
    (home / "config.toml").write_text(f'[catalog]\nurl = "{pg_url}"\nowner = "box9"\n')
    import json

    out = json.loads(seedward("fleet", "import-catalog", "--json", home=home, check=True).stdout)
    assert out["owner"] == "box9" and out["rows"]["torrents"] == 1
    shared = Catalog(pg_url, owners=("box9",))
    assert [r["id"] for r in shared.list_torrents()] == [meta.id]
    shared.close()
    text = seedward("fleet", "status", home=home, check=True).stdout
    assert "box9" in text and "1 protected" in text


def test_the_tui_shows_the_fleet_from_the_status():
    from tui.model import service_view

    status = {"service": {"running": True, "fleet": {"me": ["a"], "members": [
        {"owner": "a", "alive": True, "torrents": {"protected": 3, "damaged": 1}},
        {"owner": "b", "alive": False, "torrents": {"protected": 2, "removed": 4}}]}}}
    assert service_view(status).fleet == (("a", True, 3, 4), ("b", False, 2, 2))
    one = {"service": {"running": True, "fleet": {"me": [""], "members": [{"owner": "", "alive": False,
                                                                           "torrents": {}}]}}}
    assert service_view(one).fleet == ()  # one embedded host: nothing to show
