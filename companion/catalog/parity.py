"""The parity tier's records: each torrent's PAR2 recovery sets (which files, cut how, how much
recovery data) and where their files are in the store."""

import json
import sqlite3

from .db_time import now_iso
from .schema import migration

migration(
    1603,
    """
-- a PAR2 recovery set over some of a torrent's files (ladder/parity.py), its files kept in the store
CREATE TABLE parity_sets (
    torrent_id TEXT NOT NULL,
    name TEXT NOT NULL,
    files TEXT NOT NULL,              -- JSON [[file_index, path as PAR2 names it, size, sha256]]
    block_size INTEGER NOT NULL,
    source_blocks INTEGER NOT NULL,
    recovery_blocks INTEGER NOT NULL,
    bytes INTEGER NOT NULL,           -- the PAR2 files' bytes in the store
    percent REAL NOT NULL,            -- recovery blocks / source blocks, as asked
    objects TEXT NOT NULL,            -- JSON [store-relative names of the PAR2 files]
    created_at TEXT NOT NULL,
    PRIMARY KEY (torrent_id, name)
);
""",
)


def set_parity(cat, torrent_id: str, sets: list[dict]) -> None:
    """Replace a torrent's recovery sets (dicts with the table's columns but torrent_id/created_at)."""
    now = now_iso()
    with cat.tx() as db:
        db.execute("DELETE FROM parity_sets WHERE torrent_id = ?", (torrent_id,))
        db.executemany("INSERT INTO parity_sets VALUES (:torrent_id, :name, :files, :block_size, :source_blocks,"
                       " :recovery_blocks, :bytes, :percent, :objects, :created_at)",
                       [dict(s, torrent_id=torrent_id, created_at=now, files=json.dumps(s["files"]),
                             objects=json.dumps(s["objects"])) for s in sets])


def parity_sets(cat, torrent_id: str) -> list[dict]:
    out = []
    for r in cat.query("SELECT * FROM parity_sets WHERE torrent_id = ? ORDER BY name", (torrent_id,)):
        out.append({**dict(r), "files": json.loads(r["files"]), "objects": json.loads(r["objects"])})
    return out


def parity_totals(cat) -> dict[str, int]:
    """torrent id -> bytes of its PAR2 files in the store."""
    return {r["torrent_id"]: r["n"] for r in cat.query("SELECT torrent_id, SUM(bytes) AS n FROM parity_sets"
                                                       " GROUP BY torrent_id")}


def parity_bytes(cat) -> int:
    return cat.one("SELECT COALESCE(SUM(bytes), 0) AS n FROM parity_sets")["n"]


def objects(cat) -> set[str]:
    """Every store name a recovery set uses (prune keeps them)."""
    return {name for r in cat.query("SELECT objects FROM parity_sets") for name in json.loads(r["objects"])}


def drop_parity(cat, torrent_id: str) -> list[str]:
    """Forget a torrent's recovery sets; returns the store names they used."""
    rows: list[sqlite3.Row] = cat.query("SELECT objects FROM parity_sets WHERE torrent_id = ?", (torrent_id,))
    with cat.tx() as db:
        db.execute("DELETE FROM parity_sets WHERE torrent_id = ?", (torrent_id,))
    return [name for r in rows for name in json.loads(r["objects"])]
