"""Stored chunks a check or scrub found bad: never reused by a snapshot, rewritten by a repair."""

import sqlite3

from .db_time import now_iso
from .schema import migration

migration(
    1291,
    """
-- a copy of a chunk (in one pack) whose bytes did not match its id when read back
CREATE TABLE bad_chunks (
    chunk_id TEXT NOT NULL,
    pack TEXT NOT NULL,
    found_at TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (chunk_id, pack)
);
""",
)


def add_bad_chunks(cat, found: list[tuple[str, str, str]]) -> None:
    """found: (chunk id, pack id, reason)."""
    now = now_iso()
    with cat.tx() as db:
        db.executemany("INSERT INTO bad_chunks VALUES (?, ?, ?, ?) ON CONFLICT(chunk_id, pack) DO UPDATE SET"
                       " found_at = excluded.found_at, reason = excluded.reason",
                       [(cid, pack, now, reason) for cid, pack, reason in found])


def bad_chunks(cat) -> dict[str, set[str]]:
    """chunk id -> the packs whose copy of it is bad."""
    out: dict[str, set[str]] = {}
    for r in cat.query("SELECT chunk_id, pack FROM bad_chunks"):
        out.setdefault(r["chunk_id"], set()).add(r["pack"])
    return out


def bad_chunk_rows(cat) -> list[sqlite3.Row]:
    return cat.query("SELECT * FROM bad_chunks ORDER BY found_at, chunk_id")


def forget_bad_copies(cat, copies: list[tuple[str, str]]) -> None:
    """(chunk id, pack): copies no index names any more (rewritten elsewhere, or the pack dropped)."""
    with cat.tx() as db:
        db.executemany("DELETE FROM bad_chunks WHERE chunk_id = ? AND pack = ?", copies)


def chunk_sources(cat, chunk_ids) -> dict[str, list]:
    """chunk id -> [(torrent id, file index, piece, offset, length)] from every snapshot using it."""
    out: dict[str, list] = {}
    ids = sorted(chunk_ids)
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        marks = ",".join("?" * len(part))
        for r in cat.query(
                f"SELECT DISTINCT s.torrent_id, c.file_index, c.piece, c.offset, c.length, c.chunk_id"
                f" FROM snapshot_chunks c JOIN snapshots s ON s.id = c.snapshot_id WHERE c.chunk_id IN ({marks})",
                tuple(part)):
            out.setdefault(r["chunk_id"], []).append((r["torrent_id"], r["file_index"], r["piece"], r["offset"],
                                                      r["length"]))
    return out
