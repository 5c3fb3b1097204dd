"""Drill records: every restore test of a snapshot, its timings and its verdict."""

import json
import sqlite3

from .db_time import now_iso
from .fleet import not_elsewhere, own
from .schema import migration

migration(
    501,
    """
CREATE TABLE drills (
    id TEXT PRIMARY KEY,              -- 16 hex digits
    torrent_id TEXT NOT NULL,
    snapshot_id TEXT NOT NULL DEFAULT '',  -- '' when no snapshot could be found
    reason TEXT NOT NULL,             -- manual | schedule | action
    state TEXT NOT NULL,              -- running | passed | failed
    swarm INTEGER NOT NULL DEFAULT 0,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    process TEXT,                     -- 'pid:start ticks' of the drilling process, to spot crashed drills
    restore_seconds REAL NOT NULL DEFAULT 0,
    verify_seconds REAL NOT NULL DEFAULT 0,
    recheck_seconds REAL NOT NULL DEFAULT 0,
    swarm_seconds REAL,
    rto_seconds REAL NOT NULL DEFAULT 0,   -- restore + verify + recheck
    rpo_seconds REAL,                 -- the payload's last known change minus the snapshot's time
    bytes INTEGER NOT NULL DEFAULT 0,
    bad_pieces TEXT NOT NULL DEFAULT '[]',
    bad_files TEXT NOT NULL DEFAULT '[]',
    error TEXT
);
CREATE INDEX drills_torrent ON drills(torrent_id, started_at);

-- snapshots a drill could not prove; a later passing drill of the same snapshot clears the mark
CREATE TABLE suspect_snapshots (
    snapshot_id TEXT PRIMARY KEY,
    torrent_id TEXT NOT NULL,
    drill_id TEXT NOT NULL,
    marked_at TEXT NOT NULL,
    reason TEXT NOT NULL
);
""",
)

RESULT_FIELDS = ("restore_seconds", "verify_seconds", "recheck_seconds", "swarm_seconds", "rto_seconds",
                 "rpo_seconds", "bytes", "error")


def start_drill(cat, drill_id: str, torrent_id: str, snapshot_id: str, reason: str, swarm: bool, process: str) -> None:
    with cat.tx() as db:
        db.execute(
            "INSERT INTO drills (id, torrent_id, snapshot_id, reason, state, swarm, started_at, process)"
            " VALUES (?, ?, ?, ?, 'running', ?, ?, ?)",
            (drill_id, torrent_id, snapshot_id or "", reason, int(swarm), now_iso(), process),
        )


def finish_drill(cat, drill_id: str, *, ok: bool, snapshot_id: str, bad_pieces: list[int], bad_files: list[str],
                 **results) -> None:
    unknown = set(results) - set(RESULT_FIELDS)
    if unknown:
        raise ValueError(f"unknown drill fields {sorted(unknown)}")
    with cat.tx() as db:
        db.execute(
            "UPDATE drills SET state = ?, snapshot_id = ?, finished_at = ?, bad_pieces = ?, bad_files = ? WHERE id = ?",
            ("passed" if ok else "failed", snapshot_id or "", now_iso(), json.dumps(bad_pieces),
             json.dumps(bad_files), drill_id),
        )
        for column, value in results.items():
            db.execute(f"UPDATE drills SET {column} = ? WHERE id = ?", (value, drill_id))


def fail_interrupted(cat, drill_ids: list[str], error: str) -> None:
    """Drills whose process died mid-way are recorded as failed."""
    with cat.tx() as db:
        db.executemany(
            "UPDATE drills SET state = 'failed', finished_at = ?, error = ? WHERE id = ? AND state = 'running'",
            [(now_iso(), error, i) for i in drill_ids],
        )


def running_drills(cat) -> list[sqlite3.Row]:
    mine, keys = not_elsewhere(cat)  # fleet: another host's drill process is not ours to judge
    return cat.query(f"SELECT * FROM drills WHERE state = 'running' AND {mine} ORDER BY started_at", keys)


def get_drill(cat, drill_id: str) -> sqlite3.Row | None:
    return cat.one("SELECT * FROM drills WHERE id = ?", (drill_id,))


def list_drills(cat, torrent_id: str | None = None, limit: int = 100) -> list[sqlite3.Row]:
    """Newest first."""
    if torrent_id:
        return cat.query("SELECT * FROM drills WHERE torrent_id = ? ORDER BY started_at DESC, rowid DESC LIMIT ?",
                         (torrent_id, limit))
    return cat.query("SELECT * FROM drills ORDER BY started_at DESC, rowid DESC LIMIT ?", (limit,))


def last_drill_per_torrent(cat) -> list[sqlite3.Row]:
    """The newest finished drill of every torrent that has one."""
    return cat.query(
        """SELECT d.* FROM drills d
           WHERE d.state != 'running' AND d.rowid = (
               SELECT d2.rowid FROM drills d2 WHERE d2.torrent_id = d.torrent_id AND d2.state != 'running'
               ORDER BY d2.started_at DESC, d2.rowid DESC LIMIT 1)
           ORDER BY d.started_at DESC"""
    )


def drill_candidates(cat) -> list[sqlite3.Row]:
    """Torrents with a snapshot, least recently drilled first (never drilled first of all)."""
    mine, keys = own(cat, "t")
    return cat.query(
        """SELECT t.id AS torrent_id, t.payload_size, MAX(d.started_at) AS last_drill
           FROM torrents t
           JOIN snapshots s ON s.torrent_id = t.id
           LEFT JOIN drills d ON d.torrent_id = t.id
           WHERE t.removed_at IS NULL AND {mine}
           GROUP BY t.id
           ORDER BY MAX(d.started_at) IS NOT NULL, MAX(d.started_at), t.id""".format(mine=mine), keys
        # (PostgreSQL takes an output name in ORDER BY only alone, not inside an expression)
    )


def mark_suspect(cat, snapshot_id: str, torrent_id: str, drill_id: str, reason: str) -> None:
    with cat.tx() as db:
        db.execute(
            "INSERT INTO suspect_snapshots VALUES (?, ?, ?, ?, ?) ON CONFLICT(snapshot_id) DO UPDATE SET"
            " drill_id = excluded.drill_id, marked_at = excluded.marked_at, reason = excluded.reason",
            (snapshot_id, torrent_id, drill_id, now_iso(), reason),
        )


def clear_suspect(cat, snapshot_id: str) -> None:
    with cat.tx() as db:
        db.execute("DELETE FROM suspect_snapshots WHERE snapshot_id = ?", (snapshot_id,))


def suspect_snapshots(cat, torrent_id: str | None = None) -> list[sqlite3.Row]:
    if torrent_id:
        return cat.query("SELECT * FROM suspect_snapshots WHERE torrent_id = ? ORDER BY marked_at", (torrent_id,))
    return cat.query("SELECT * FROM suspect_snapshots ORDER BY marked_at")


def is_suspect(cat, snapshot_id: str) -> bool:
    return cat.one("SELECT 1 FROM suspect_snapshots WHERE snapshot_id = ?", (snapshot_id,)) is not None


migration(
    502,
    """
-- when the service last queued its scheduled drills (one row)
CREATE TABLE drill_schedule (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_run TEXT NOT NULL
);
""",
)


def last_scheduled_run(cat) -> str | None:
    row = cat.one("SELECT last_run FROM drill_schedule WHERE id = 1")
    return row["last_run"] if row else None


def set_scheduled_run(cat, at: str) -> None:
    with cat.tx() as db:
        db.execute("INSERT INTO drill_schedule VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET last_run = excluded.last_run",
                   (at,))
