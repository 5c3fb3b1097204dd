"""The protection ladder's records: each torrent's kept zones (head and tail segments of its files,
stored as chunks) with the metadata extents found in each file, and sibling look-ups."""

import sqlite3

from .content import stored_bytes
from .db_time import now_iso
from .parity import parity_bytes
from .fleet import own
from .schema import migration

migration(
    1601,
    """
-- head and tail segments kept in the store for a torrent's files (ids: the segments' chunk ids)
CREATE TABLE zones (
    torrent_id TEXT NOT NULL,
    file_index INTEGER NOT NULL,
    piece INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    chunk_id TEXT NOT NULL,
    PRIMARY KEY (torrent_id, file_index, piece)
);
CREATE INDEX zones_chunk ON zones(chunk_id);

-- per file: what the zones were cut from (its size and SHA-256 then) and its metadata extents
CREATE TABLE zone_files (
    torrent_id TEXT NOT NULL,
    file_index INTEGER NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT,
    kind TEXT NOT NULL,               -- flac | mp3 | mp4 | mkv | '' (layout.py)
    head_extent INTEGER NOT NULL,     -- bytes of metadata found at the head
    tail_extent INTEGER NOT NULL,
    head_bytes INTEGER NOT NULL,      -- bytes kept at the head (whole segments)
    tail_bytes INTEGER NOT NULL,
    kept_at TEXT NOT NULL,
    PRIMARY KEY (torrent_id, file_index)
);
CREATE INDEX files_sha256 ON files(sha256);
CREATE INDEX files_v2_root ON files(v2_root);
""",
)


def set_zones(cat, torrent_id: str, files: list[dict], zones: list[tuple]) -> None:
    """Replace a torrent's zones. files: zone_files rows; zones: (file_index, piece, offset, length, chunk_id)."""
    now = now_iso()
    with cat.tx() as db:
        db.execute("DELETE FROM zones WHERE torrent_id = ?", (torrent_id,))
        db.execute("DELETE FROM zone_files WHERE torrent_id = ?", (torrent_id,))
        db.executemany("INSERT INTO zone_files VALUES (:torrent_id, :file_index, :size, :sha256, :kind, :head_extent,"
                       " :tail_extent, :head_bytes, :tail_bytes, :kept_at)",
                       [dict(f, torrent_id=torrent_id, kept_at=now) for f in files])
        db.executemany("INSERT INTO zones VALUES (?, ?, ?, ?, ?, ?)", [(torrent_id, *z) for z in zones])


def zones(cat, torrent_id: str) -> list[sqlite3.Row]:
    return cat.query("SELECT * FROM zones WHERE torrent_id = ? ORDER BY file_index, piece", (torrent_id,))


def zone_files(cat, torrent_id: str) -> dict[int, sqlite3.Row]:
    return {r["file_index"]: r for r in cat.query("SELECT * FROM zone_files WHERE torrent_id = ?", (torrent_id,))}


def zone_totals(cat) -> dict[str, int]:
    """torrent id -> bytes of zones kept (logical: before dedup in the store)."""
    return {r["torrent_id"]: r["n"] for r in cat.query("SELECT torrent_id, SUM(length) AS n FROM zones"
                                                       " GROUP BY torrent_id")}


def drop_zones(cat, torrent_id: str) -> None:
    with cat.tx() as db:
        db.execute("DELETE FROM zones WHERE torrent_id = ?", (torrent_id,))
        db.execute("DELETE FROM zone_files WHERE torrent_id = ?", (torrent_id,))


def same_files(cat, torrent_id: str, size: int, sha256: str | None, v2_root: str | None) -> list[sqlite3.Row]:
    """Files of other live torrents with the same content: same size and SHA-256, or same v2
    pieces root. Each row has the torrent's save_path and torrent_file."""
    if not sha256 and not v2_root:
        return []
    mine, keys = own(cat, "t")  # fleet: another host's files are not readable here
    return cat.query(
        """SELECT f.*, t.save_path, t.torrent_file, t.protection FROM files f JOIN torrents t ON t.id = f.torrent_id
           WHERE f.torrent_id != ? AND t.removed_at IS NULL AND f.status = 'ok' AND f.size = ?
             AND ((? IS NOT NULL AND f.sha256 = ?) OR (? IS NOT NULL AND f.v2_root = ?)) AND """ + mine + """
           ORDER BY f.torrent_id, f.file_index""",
        (torrent_id, size, sha256, sha256, v2_root, v2_root, *keys))


def holders(cat, device: int, inode: int) -> list[sqlite3.Row]:
    """(torrent_id, file_index, path) of every cataloged file on this inode (hard-linked cross-seeds)."""
    mine, keys = own(cat, "t")  # fleet: device and inode numbers mean something on one host only
    return cat.query("SELECT f.torrent_id, f.file_index, f.path FROM files f JOIN torrents t ON t.id = f.torrent_id"
                     f" WHERE f.device = ? AND f.inode = ? AND t.removed_at IS NULL AND {mine} ORDER BY f.torrent_id",
                     (device, inode, *keys))


def store_usage(cat) -> dict:
    """Bytes the store keeps for the ladder and snapshots (`bytes`: the distinct chunks of snapshots
    and zones, content chunks counted once whatever torrents share them, plus the PAR2 files), what
    they would take without dedup (`logical_bytes`), and the zones' and parity's shares."""
    usage = stored_bytes(cat, zones=True)
    zoned = cat.one("SELECT SUM(length) AS n FROM (SELECT chunk_id, MAX(length) AS length FROM zones"
                    " GROUP BY chunk_id)")["n"] or 0
    parity = parity_bytes(cat)
    payload = cat.one("SELECT SUM(payload_size) AS n FROM torrents WHERE removed_at IS NULL")["n"] or 0
    return {"bytes": usage["bytes"] + parity, "logical_bytes": usage["logical_bytes"] + parity,
            "dedup_saved_bytes": usage["dedup_saved_bytes"], "zone_bytes": zoned, "parity_bytes": parity,
            "payload_bytes": payload}


def latest_full_snapshot(cat, torrent_id: str) -> sqlite3.Row | None:
    """The newest snapshot of the torrent with its suspect mark (NULL when not suspect)."""
    return cat.one("SELECT s.*, m.reason AS suspect_reason FROM snapshots s LEFT JOIN suspect_snapshots m"
                   " ON m.snapshot_id = s.id WHERE s.torrent_id = ? ORDER BY s.created_at DESC, s.id DESC LIMIT 1",
                   (torrent_id,))


migration(
    1605,
    """
-- each torrent's coverage as the ladder last computed it (ladder/facts.py + coverage.py), for status
CREATE TABLE coverage (
    torrent_id TEXT PRIMARY KEY,
    survives INTEGER NOT NULL,        -- damage classes survived (of the seven)
    classes TEXT NOT NULL,            -- JSON {class: [tiers]} ([]: not covered)
    computed_at TEXT NOT NULL
);
""",
)


def set_coverage(cat, torrent_id: str, survives: int, classes: dict) -> None:
    import json

    with cat.tx() as db:
        db.execute("INSERT OR REPLACE INTO coverage VALUES (?, ?, ?, ?)",
                   (torrent_id, survives, json.dumps(classes, separators=(",", ":")), now_iso()))


def coverage_rows(cat) -> dict[str, sqlite3.Row]:
    return {r["torrent_id"]: r for r in cat.query("SELECT * FROM coverage")}


def stale_coverage(cat, limit: int) -> list[str]:
    """Live torrents whose coverage is oldest (or was never computed), at most `limit`."""
    return [r["id"] for r in cat.query(
        "SELECT t.id FROM torrents t LEFT JOIN coverage c ON c.torrent_id = t.id WHERE t.removed_at IS NULL"
        " AND t.protection NOT IN ('excluded', 'pending') ORDER BY c.computed_at IS NOT NULL, c.computed_at LIMIT ?",
        (limit,))]
