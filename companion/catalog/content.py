"""The store's content chunks: each stored file content (keyed by its SHA-256) as file-relative
chunks, independent of any torrent's piece layout, so a file seeded by several torrents with
different piece sizes is stored once. Snapshots keep their torrent's piece-aligned segment rows
(snapshot_chunks) beside this; `layout` says which kind of chunk a snapshot's packs hold."""

import sqlite3

from .schema import migration

migration(
    1602,
    """
-- a stored file content as chunks: [offset, offset + length) of the file whose SHA-256 is sha256
CREATE TABLE content_chunks (
    sha256 TEXT NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    chunk_id TEXT NOT NULL,
    PRIMARY KEY (sha256, offset)
);
CREATE INDEX content_chunks_chunk ON content_chunks(chunk_id);
-- 1: the snapshot's chunks are its torrent's piece-aligned segments (stores before issue 16);
-- 2: its files are stored as content chunks (snapshot_chunks then only describes the pieces)
ALTER TABLE snapshots ADD COLUMN layout INTEGER NOT NULL DEFAULT 1;
CREATE INDEX snapshot_files_sha256 ON snapshot_files(sha256);
""",
)

LEGACY, CONTENT = 1, 2


def add(cat, rows: list[tuple[str, int, int, str]]) -> None:
    """(sha256, offset, length, chunk id) of stored file contents (kept when already known)."""
    with cat.tx() as db:
        db.executemany("INSERT OR IGNORE INTO content_chunks VALUES (?, ?, ?, ?)", rows)


def chunks_of(cat, sha256: str) -> list[sqlite3.Row]:
    """The content's chunks in file order (empty when it was never stored)."""
    return cat.query("SELECT offset, length, chunk_id FROM content_chunks WHERE sha256 = ? ORDER BY offset", (sha256,))


def chunks_in(cat, sha256: str, offset: int, length: int) -> list[sqlite3.Row]:
    """The content's chunks overlapping [offset, offset + length), in order."""
    return cat.query("SELECT offset, length, chunk_id FROM content_chunks WHERE sha256 = ? AND offset < ?"
                     " AND offset + length > ? ORDER BY offset", (sha256, offset + length, offset))


def locate_segment(cat, chunk_id: str) -> list[sqlite3.Row]:
    """Where content snapshots hold a segment with this id: (snapshot, torrent, file index, offset,
    length, sha256 of the file, piece_length of the torrent, segments of that file)."""
    return cat.query(
        """SELECT c.snapshot_id, s.torrent_id, c.file_index, c.offset, c.length, f.sha256, t.piece_length,
                  (SELECT COUNT(*) FROM snapshot_chunks n WHERE n.snapshot_id = c.snapshot_id
                     AND n.file_index = c.file_index) AS segments
           FROM snapshot_chunks c JOIN snapshots s ON s.id = c.snapshot_id
           JOIN snapshot_files f ON f.snapshot_id = c.snapshot_id AND f.file_index = c.file_index
           LEFT JOIN torrents t ON t.id = s.torrent_id
           WHERE c.chunk_id = ? AND s.layout = 2 LIMIT 4""", (chunk_id,))


def file_segments(cat, snapshot_id: str, file_index: int) -> list[sqlite3.Row]:
    return cat.query("SELECT piece, offset, length, chunk_id FROM snapshot_chunks WHERE snapshot_id = ? AND"
                     " file_index = ? ORDER BY piece", (snapshot_id, file_index))


def file_sha256(cat, snapshot_id: str, file_index: int) -> str | None:
    row = cat.one("SELECT sha256 FROM snapshot_files WHERE snapshot_id = ? AND file_index = ?", (snapshot_id, file_index))
    return row["sha256"] if row else None


def layout(cat, snapshot_id: str) -> int:
    row = cat.one("SELECT layout FROM snapshots WHERE id = ?", (snapshot_id,))
    return row["layout"] if row else LEGACY


def referenced(cat) -> set[str]:
    """The content chunk ids a kept snapshot uses (its files' contents)."""
    return {r[0] for r in cat.query(
        "SELECT DISTINCT k.chunk_id FROM content_chunks k WHERE k.sha256 IN (SELECT f.sha256 FROM snapshot_files f"
        " JOIN snapshots s ON s.id = f.snapshot_id WHERE s.layout = 2)")}


def drop_unreferenced(cat) -> int:
    """Forget the contents no kept snapshot holds (their chunks go at the next prune). Returns rows removed."""
    with cat.tx() as db:
        cur = db.execute("DELETE FROM content_chunks WHERE sha256 NOT IN (SELECT f.sha256 FROM snapshot_files f"
                         " JOIN snapshots s ON s.id = f.snapshot_id WHERE s.layout = 2 AND f.sha256 IS NOT NULL)")
        return cur.rowcount or 0


def snapshots_using(cat, chunk_ids) -> list[sqlite3.Row]:
    """(id, torrent_id) of the content snapshots whose files use any of these content chunks."""
    ids = sorted(set(chunk_ids))
    out = {}
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        marks = ",".join("?" * len(part))
        for r in cat.query(f"SELECT DISTINCT s.id, s.torrent_id FROM content_chunks k JOIN snapshot_files f"
                           f" ON f.sha256 = k.sha256 JOIN snapshots s ON s.id = f.snapshot_id"
                           f" WHERE s.layout = 2 AND k.chunk_id IN ({marks})", tuple(part)):
            out[r["id"]] = r
    return list(out.values())


def chunk_places(cat, chunk_ids) -> dict[str, list]:
    """content chunk id -> [(sha256, offset, length)]."""
    ids = sorted(set(chunk_ids))
    out: dict[str, list] = {}
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        marks = ",".join("?" * len(part))
        for r in cat.query(f"SELECT sha256, offset, length, chunk_id FROM content_chunks WHERE chunk_id IN ({marks})",
                           tuple(part)):
            out.setdefault(r["chunk_id"], []).append((r["sha256"], r["offset"], r["length"]))
    return out


def files_with(cat, sha256: str) -> list[sqlite3.Row]:
    """Cataloged files of live torrents with this content (payloads that may give its bytes back)."""
    return cat.query("SELECT f.torrent_id, f.file_index, f.size FROM files f JOIN torrents t ON t.id = f.torrent_id"
                     " WHERE f.sha256 = ? AND t.removed_at IS NULL ORDER BY f.torrent_id, f.file_index", (sha256,))


_USED = """SELECT c.chunk_id, c.length FROM snapshot_chunks c JOIN snapshots s ON s.id = c.snapshot_id
               WHERE s.layout = 1
           UNION ALL
           SELECT k.chunk_id, k.length FROM content_chunks k WHERE k.sha256 IN
               (SELECT f.sha256 FROM snapshot_files f JOIN snapshots s ON s.id = f.snapshot_id WHERE s.layout = 2)"""


def stored_bytes(cat, zones: bool = False) -> dict:
    """What the store keeps for snapshots (and with zones=True the ladder's zones too):
    `logical_bytes` (the payload bytes the snapshots hold, plus the zones' bytes), `bytes` (of the
    distinct chunks they use: content chunks are shared by every snapshot of the same file content,
    whatever its torrent's piece size; older snapshots' piece-aligned chunks by same-layout torrents
    only) and `dedup_saved_bytes`."""
    used = _USED + ("\n           UNION ALL SELECT chunk_id, length FROM zones" if zones else "")
    logical = cat.one("SELECT COALESCE(SUM(c.length), 0) AS n FROM snapshot_chunks c JOIN snapshots s"
                      " ON s.id = c.snapshot_id WHERE s.layout != 3")["n"]  # read-only filesystem snapshots: no store bytes
    if zones:
        logical += cat.one("SELECT COALESCE(SUM(length), 0) AS n FROM zones")["n"]
    stored = cat.one(f"SELECT COALESCE(SUM(length), 0) AS n FROM (SELECT chunk_id, MAX(length) AS length FROM ({used})"
                     " GROUP BY chunk_id)")["n"]
    return {"bytes": stored, "logical_bytes": logical, "dedup_saved_bytes": max(0, logical - stored)}


def torrent_dedup(cat) -> dict[str, dict]:
    """torrent id -> {bytes: payload bytes its latest snapshot holds, shared_bytes: of those, bytes
    another torrent's snapshot holds too (stored once)}."""
    rows = cat.query(
        """SELECT s.torrent_id, f.sha256, f.size FROM snapshot_files f JOIN snapshots s ON s.id = f.snapshot_id
           WHERE s.id = (SELECT id FROM snapshots x WHERE x.torrent_id = s.torrent_id
                         ORDER BY created_at DESC, id DESC LIMIT 1)""")
    holders: dict[str, set] = {}
    for r in rows:
        holders.setdefault(r["sha256"], set()).add(r["torrent_id"])
    out: dict[str, dict] = {}
    for r in rows:
        d = out.setdefault(r["torrent_id"], {"bytes": 0, "shared_bytes": 0})
        d["bytes"] += r["size"]
        if len(holders.get(r["sha256"], ())) > 1:
            d["shared_bytes"] += r["size"]
    return out
