"""catalog/views.py: the one read-only query module behind `status`, the TUI's screens and offline reads."""

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from companion.catalog import Catalog, views
from companion.catalog.db import CatalogError
from companion.manifests import ManifestRepo
from companion.protect import catalog_torrent
from companion.torrent import load_torrent
from tests.scan_cases import KIB, build, multi_layout
from tui.model import parse_status

NOW = datetime(2026, 11, 22, 20, 0, 0, tzinfo=timezone.utc)


def iso(delta: timedelta) -> str:
    return (NOW - delta).isoformat(timespec="milliseconds")


@pytest.fixture
def world(tmp_path):
    """A catalog with one real, verified torrent (files and pieces from a full scan)."""
    built = build(tmp_path, multi_layout(16 * KIB), 16 * KIB, "hybrid")
    meta = load_torrent(built.torrent)
    cat = Catalog(tmp_path / "catalog.sqlite")
    catalog_torrent(cat, ManifestRepo(tmp_path / "manifests"), meta, built.save, reason="manual")
    yield cat, meta
    cat.close()


def insert(cat, sql, params=()):
    with cat.tx() as db:
        db.execute(sql, params)


def test_status_carries_what_the_dashboard_shows(world):
    """Snapshot (and suspect mark), drift responses of the last 30 days only, companions with parity,
    store bytes and the last scrub: the TUI shows all of it from the status alone."""
    cat, meta = world
    tid = meta.id
    for sid, age in (("ab12", timedelta(hours=9)), ("cd34", timedelta(days=3))):
        insert(cat, "INSERT INTO snapshots (id, torrent_id, name, created_at, reason, bytes, new_bytes, files, tree)"
                    " VALUES (?, ?, 'x', ?, 'auto', 10, 10, 1, 't')", (sid, tid, iso(age)))
    for snap, piece, length, chunk in (("ab12", 0, 100, "c0"), ("ab12", 1, 50, "c1"), ("cd34", 0, 100, "c0"),
                                       ("cd34", 1, 50, "c2")):
        insert(cat, "INSERT INTO snapshot_chunks (snapshot_id, file_index, piece, offset, length, chunk_id)"
                    " VALUES (?, 0, ?, 0, ?, ?)", (snap, piece, length, chunk))
    insert(cat, "INSERT INTO suspect_snapshots VALUES ('ab12', ?, 'store-check', ?, 'bad chunk')", (tid, iso(timedelta())))
    for age in (timedelta(days=1), timedelta(days=2), timedelta(days=90)):  # the last is too old to count
        insert(cat, "INSERT INTO heals (torrent_id, started_at, response, drift) VALUES (?, ?, 'heal', '{}')",
               (tid, iso(age)))
    insert(cat, "INSERT INTO file_checks VALUES (?, 0, ?, 'quick', 'scrub', 1)", (tid, iso(timedelta(hours=4))))

    [entry] = views.torrent_entries(cat, now=NOW)
    assert entry["id"] == tid and entry["protection"] == "protected" and entry["drift_alerts"] == 2
    assert entry["snapshot"] == {"id": "ab12", "created_at": iso(timedelta(hours=9)), "reason": "auto", "count": 2,
                                 "suspect": True}
    assert entry["companions"] == [] and entry["last_drill"] is None
    summary = views.store_summary(cat)
    assert summary == {"store": {"bytes": 200, "logical_bytes": 300}, "last_scrub": iso(timedelta(hours=4))}

    shown = parse_status({"service": {"running": True, **summary}, "torrents": [entry]})
    assert shown.service.store_bytes == 200 and shown.service.dedup_ratio == 300 / 200
    assert shown.service.last_scrub == iso(timedelta(hours=4))
    view = shown.torrents[tid]
    assert view.snapshot_at == iso(timedelta(hours=9)) and view.snapshot_suspect and view.drift_alerts == 2


def test_live_torrents_overlay_and_join_the_catalog(world):
    cat, meta = world
    other = "ee" * 20
    live = {meta.id: {"state": "stalledUP", "num_seeds": 4, "num_leechs": 1, "progress": 1.0, "save_path": "/x"},
            other: {"name": "new one", "state": "downloading", "size": 5}}
    entries = {e["id"]: e for e in views.torrent_entries(cat, live)}
    assert entries[meta.id]["qbt_state"] == "stalledUP" and entries[meta.id]["seeds"] == 4
    assert entries[meta.id]["save_path"] == "/x"
    assert entries[other]["protection"] == "pending" and entries[other]["name"] == "new one"


def test_detail_pieces_and_history(world):
    cat, meta = world
    tid = meta.id
    cat.add_event(tid, "protected", "verified")
    detail = views.detail(cat, tid)
    assert [f["file_index"] for f in detail["files"]] == [e.index for e in meta.real_files]
    assert detail["pieces"] == "o" * meta.num_pieces
    assert detail["events"][0]["kind"] == "protected" and detail["snapshots"] == []
    # a drift response that has not healed marks its pieces
    insert(cat, "INSERT INTO heals (torrent_id, started_at, response, drift, pieces, outcome)"
                " VALUES (?, ?, 'heal', '{}', '[1]', 'failed')", (tid, iso(timedelta())))
    assert views.pieces(cat, tid, "damaged")[:3] == "odo"
    cat.enqueue("protect", tid, reason="test")
    history = views.job_history(cat)
    assert history["ai"] == [] and history["queue"][0]["kind"] == "protect"
    assert views.runs(cat, tid)[0]["ok"] == 1


def test_offline_answers_read_without_writing(world, tmp_path):
    """The TUI's reads with no service running: a read-only connection, nothing migrated or written."""
    cat, meta = world
    cat.enqueue("protect", meta.id, reason="test")
    path = cat.path
    before = {p.name: p.stat().st_mtime_ns for p in path.parent.glob("catalog.sqlite*")}
    assert views.offline_answer(path, "detail", {"id": meta.id})["pieces"] == "o" * meta.num_pieces
    assert views.offline_answer(path, "jobs", {})["jobs"][0]["kind"] == "protect"
    assert views.offline_answer(path, "job_history", {})["queue"]
    with pytest.raises(CatalogError, match="needs the running service"):
        views.offline_answer(path, "action", {})
    ro = views.ReadOnly(path)
    with pytest.raises(sqlite3.OperationalError):
        ro.db.execute("DELETE FROM torrents")
    ro.close()
    assert {p.name: p.stat().st_mtime_ns for p in path.parent.glob("catalog.sqlite*")} == before
    with pytest.raises(CatalogError, match="no catalog yet"):
        views.ReadOnly(tmp_path / "missing.sqlite")


def test_no_sql_outside_the_catalog_package():
    """Every SQL statement lives in companion/catalog/ (string literals starting with a SQL verb)."""
    import ast
    import re
    from pathlib import Path

    root = Path(__file__).parent.parent
    sql = re.compile(r"\s*(SELECT\b|INSERT INTO\b|UPDATE \w+ SET\b|DELETE FROM\b|CREATE (TABLE|INDEX)\b|PRAGMA \w)")
    found = []
    for folder in ("companion", "tui", "plugin"):
        for path in sorted((root / folder).rglob("*.py")):
            if path.parts[len(root.parts):len(root.parts) + 2] == ("companion", "catalog"):
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                        and sql.match(node.value):
                    found.append(f"{path.relative_to(root)}:{node.lineno}: {node.value.strip()[:60]}")
    assert not found, "SQL outside companion/catalog/:\n" + "\n".join(found)


def test_drill_candidates_and_last_drills(world):
    """Never drilled first, then least recently drilled; the newest finished drill per torrent
    (found by the fleet test: the candidates' query failed on PostgreSQL, so no host drilled)."""
    from companion.catalog.drills import drill_candidates, last_drill_per_torrent

    cat, meta = world
    ids = [meta.id] + [f"{n:040x}" for n in (0xD1, 0xD2, 0xD3)]
    for n, tid in enumerate(ids[1:]):
        insert(cat, "INSERT INTO torrents (id, name, kind, piece_length, num_pieces, total_size, payload_size,"
               " protection, added_at, updated_at) VALUES (?, ?, 'v1', 16384, 1, 1, ?, 'protected', ?, ?)",
               (tid, f"drill {n}", 100 + n, iso(timedelta(days=9)), iso(timedelta(days=9))))
    for tid in ids:
        insert(cat, "INSERT INTO snapshots (id, torrent_id, name, created_at, reason, bytes, new_bytes, files, tree)"
               " VALUES (?, ?, 'x', ?, 'auto', 1, 1, 1, 't')", (f"s{tid}", tid, iso(timedelta(days=8))))
    drills = [(ids[1], 3, "passed"), (ids[1], 1, "failed"), (ids[1], 0.5, "running"), (ids[2], 5, "passed")]
    for k, (tid, days, state) in enumerate(drills):
        insert(cat, "INSERT INTO drills (id, torrent_id, reason, state, started_at) VALUES (?, ?, 'schedule', ?, ?)",
               (f"{k:016x}", tid, state, iso(timedelta(days=days))))
    order = [r["torrent_id"] for r in drill_candidates(cat)]
    assert order == sorted([meta.id, ids[3]]) + [ids[2], ids[1]]
    last = {r["torrent_id"]: (r["state"], r["started_at"]) for r in last_drill_per_torrent(cat)}
    assert last == {ids[1]: ("failed", iso(timedelta(days=1))), ids[2]: ("passed", iso(timedelta(days=5)))}
