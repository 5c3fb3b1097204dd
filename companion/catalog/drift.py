"""Drift: when each payload file was last verified (scrub order), file stats after a heal, heal records."""

import json
import sqlite3

from .db_time import now_iso
from .fleet import own
from .schema import migration

migration(
    451,
    """
-- the last verification of each payload file: the scrub takes the least recently verified first
CREATE TABLE file_checks (
    torrent_id TEXT NOT NULL REFERENCES torrents(id) ON DELETE CASCADE,
    file_index INTEGER NOT NULL,
    verified_at TEXT NOT NULL,
    kind TEXT NOT NULL,               -- quick | full
    reason TEXT NOT NULL,             -- drift | reconcile | scrub | verify | heal
    ok INTEGER NOT NULL,
    PRIMARY KEY (torrent_id, file_index)
);

-- one row per response to drift: what was found, what was done, how long each step took
CREATE TABLE heals (
    id INTEGER PRIMARY KEY,
    torrent_id TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    response TEXT NOT NULL,           -- alert | quarantine | heal
    source TEXT NOT NULL DEFAULT '',  -- snapshot | swarm | '' (none)
    snapshot_id TEXT,
    drift TEXT NOT NULL,              -- JSON: {path: {kind, pieces, hardlinked}}
    pieces TEXT NOT NULL DEFAULT '[]',
    bytes_written INTEGER NOT NULL DEFAULT 0,
    quarantine TEXT,                  -- folder holding the drifted bytes
    recheck INTEGER NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL DEFAULT 'running',  -- running | healed | damaged | alerted | failed
    error TEXT,
    timings TEXT NOT NULL DEFAULT '{}'        -- JSON: seconds per step
);
CREATE INDEX heals_torrent ON heals(torrent_id, id);
""",
)


def record_checks(cat, torrent_id: str, results: dict[int, bool], *, kind: str, reason: str) -> None:
    """Record that these files (file_index -> ok) were verified now."""
    now = now_iso()
    with cat.tx() as db:
        db.executemany(
            "INSERT INTO file_checks VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(torrent_id, file_index) DO UPDATE SET"
            " verified_at = excluded.verified_at, kind = excluded.kind, reason = excluded.reason, ok = excluded.ok",
            [(torrent_id, i, now, kind, reason, int(ok)) for i, ok in results.items()],
        )


def scrub_order(cat, states=("protected",)) -> list[sqlite3.Row]:
    """Every payload file of torrents in these states, least recently verified first (never first)."""
    marks = ",".join("?" * len(states))
    mine, keys = own(cat, "t")  # fleet: only this service's torrents
    return cat.query(
        f"""SELECT f.torrent_id, f.file_index, f.path, f.size,
                   COALESCE(c.verified_at, t.last_verified, '') AS verified_at
            FROM files f JOIN torrents t ON t.id = f.torrent_id
            LEFT JOIN file_checks c ON c.torrent_id = f.torrent_id AND c.file_index = f.file_index
            WHERE t.protection IN ({marks}) AND {mine} AND t.removed_at IS NULL
            ORDER BY verified_at, f.torrent_id, f.file_index""",
        (*states, *keys),
    )


def file_record(cat, torrent_id: str, file_index: int) -> sqlite3.Row | None:
    return cat.one("SELECT * FROM files WHERE torrent_id = ? AND file_index = ?", (torrent_id, file_index))


def update_file_stat(cat, torrent_id: str, file_index: int, stat) -> None:
    """The file's bytes still match its baseline (false alarm, heal): remember its new stat."""
    with cat.tx() as db:
        db.execute(
            "UPDATE files SET mtime_ns = ?, inode = ?, device = ?, nlink = ?, ctime_ns = NULL, verified_ns = NULL"
            " WHERE torrent_id = ? AND file_index = ?",
            (stat.mtime_ns, stat.inode, stat.device, stat.nlink, torrent_id, file_index),
        )


def baseline_hashes(cat, torrent_id: str) -> dict[int, dict[int, str]]:
    """file_index -> {piece: xxh3}: the quick-verify baseline."""
    out: dict[int, dict[int, str]] = {}
    for row in cat.query("SELECT file_index, piece, xxh3 FROM segments WHERE torrent_id = ?", (torrent_id,)):
        out.setdefault(row["file_index"], {})[row["piece"]] = row["xxh3"]
    return out


def start_heal(cat, torrent_id: str, response: str, drift: dict) -> int:
    with cat.tx() as db:
        cur = db.execute(
            "INSERT INTO heals (torrent_id, started_at, response, drift) VALUES (?, ?, ?, ?)",
            (torrent_id, now_iso(), response, json.dumps(drift, default=str)),
        )
        return cur.lastrowid


def finish_heal(cat, heal_id: int, *, outcome: str, source: str = "", snapshot_id: str | None = None,
                pieces=(), bytes_written: int = 0, quarantine: str | None = None, recheck: bool = False,
                error: str | None = None, timings: dict | None = None) -> None:
    with cat.tx() as db:
        db.execute(
            "UPDATE heals SET finished_at = ?, outcome = ?, source = ?, snapshot_id = ?, pieces = ?, bytes_written = ?,"
            " quarantine = ?, recheck = ?, error = ?, timings = ? WHERE id = ?",
            (now_iso(), outcome, source, snapshot_id, json.dumps(sorted(pieces)), bytes_written, quarantine,
             int(recheck), error, json.dumps(timings or {}), heal_id),
        )


def heals(cat, torrent_id: str | None = None, limit: int = 50) -> list[sqlite3.Row]:
    if torrent_id:
        return cat.query("SELECT * FROM heals WHERE torrent_id = ? ORDER BY id DESC LIMIT ?", (torrent_id, limit))
    return cat.query("SELECT * FROM heals ORDER BY id DESC LIMIT ?", (limit,))
