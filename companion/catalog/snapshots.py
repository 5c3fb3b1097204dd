"""Snapshot records: which chunks make each file of a torrent at one point in time."""

import sqlite3

from .db_time import now_iso
from .schema import migration

migration(
    401,
    """
CREATE TABLE snapshots (
    id TEXT PRIMARY KEY,              -- 64 hex digits; any unique prefix is accepted
    torrent_id TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,         -- ISO 8601, UTC
    reason TEXT NOT NULL,             -- auto | preflight | manual
    job_id INTEGER,
    bytes INTEGER NOT NULL,           -- payload bytes the snapshot holds
    new_bytes INTEGER NOT NULL,       -- bytes of chunks this snapshot added to the store
    files INTEGER NOT NULL,
    save_path TEXT,
    tree TEXT NOT NULL                -- the snapshot tree in the store (store-relative name)
);
CREATE INDEX snapshots_torrent ON snapshots(torrent_id, created_at);

CREATE TABLE snapshot_files (
    snapshot_id TEXT NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
    file_index INTEGER NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER,
    inode INTEGER,
    device INTEGER,
    sha256 TEXT,
    PRIMARY KEY (snapshot_id, file_index)
);

-- the chunk map: file_index/piece -> chunk id
CREATE TABLE snapshot_chunks (
    snapshot_id TEXT NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
    file_index INTEGER NOT NULL,
    piece INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    chunk_id TEXT NOT NULL,
    xxh3 TEXT,                        -- quick-verify digest of the segment (finds damage vs this snapshot)
    PRIMARY KEY (snapshot_id, file_index, piece)
);
CREATE INDEX snapshot_chunks_chunk ON snapshot_chunks(chunk_id);
""",
)

migration(402, "ALTER TABLE snapshots ADD COLUMN cloned_bytes INTEGER NOT NULL DEFAULT 0;")
# job_id's INTEGER affinity turns an AI job's all-digit hex id into a number: keep ids as text.
migration(403, "ALTER TABLE snapshots ADD COLUMN job_ref TEXT;")
# A file's ctime and when the verifying read began: the store trusts a verified, unchanged file's
# catalog hashes for a first snapshot (borg's files cache; "racily clean" files are re-read).
# Rows not written by a full verifying scan keep NULLs: never trusted.
migration(404, "ALTER TABLE files ADD COLUMN ctime_ns INTEGER;\nALTER TABLE files ADD COLUMN verified_ns INTEGER;")
migration(405, "ALTER TABLE snapshots ADD COLUMN trusted_bytes INTEGER NOT NULL DEFAULT 0;")
# packs whose every chunk a check has read back and verified (new packs are read by the scrub)
migration(406, "CREATE TABLE pack_checks (pack TEXT PRIMARY KEY, checked_at TEXT NOT NULL, ok INTEGER NOT NULL);")
# A BEP 47 symlink entry is recorded as a link: its target (what readlink() must say), never bytes.
# NULL: a regular file (or a link in a snapshot taken before this column: restore asks the torrent).
migration(1501, "ALTER TABLE snapshot_files ADD COLUMN link TEXT;")


def checked_packs(cat) -> dict[str, str]:
    """pack id -> when a check last read it back."""
    return {r["pack"]: r["checked_at"] for r in cat.query("SELECT pack, checked_at FROM pack_checks")}


def record_pack_checks(cat, results: dict[str, bool]) -> None:
    """pack id -> every chunk read back and verified (True) or not."""
    now = now_iso()
    with cat.tx() as db:
        db.executemany("INSERT INTO pack_checks VALUES (?, ?, ?) ON CONFLICT(pack) DO UPDATE SET"
                       " checked_at = excluded.checked_at, ok = excluded.ok",
                       [(pack, now, int(ok)) for pack, ok in results.items()])


def snapshots_using(cat, chunk_ids) -> list[sqlite3.Row]:
    """(id, torrent_id) of the snapshots that use any of these chunks."""
    ids = sorted(set(chunk_ids))
    out = {}
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        marks = ",".join("?" * len(part))
        for r in cat.query(f"SELECT DISTINCT s.id, s.torrent_id FROM snapshot_chunks c JOIN snapshots s"
                           f" ON s.id = c.snapshot_id WHERE c.chunk_id IN ({marks})", tuple(part)):
            out[r["id"]] = r
    return list(out.values())


def add_snapshot(cat, row: dict, files: list[dict], chunks: list[tuple]) -> None:
    """Record one snapshot in one transaction. chunks: (file_index, piece, offset, length, chunk_id, xxh3)."""
    with cat.tx() as db:
        db.execute(
            "INSERT INTO snapshots (id, torrent_id, name, created_at, reason, job_ref, bytes, new_bytes, files,"
            " save_path, tree, cloned_bytes, trusted_bytes, layout) VALUES (:id, :torrent_id, :name, :created_at,"
            " :reason, :job_ref, :bytes, :new_bytes, :files, :save_path, :tree, :cloned_bytes, :trusted_bytes, :layout)",
            dict(row, job_ref=None if row.get("job_id") is None else str(row["job_id"]),
                 trusted_bytes=row.get("trusted_bytes", 0), layout=row.get("layout", 1)),
        )
        db.executemany(
            "INSERT INTO snapshot_files (snapshot_id, file_index, path, size, mtime_ns, inode, device, sha256, link)"
            " VALUES (:snapshot_id, :file_index, :path, :size, :mtime_ns, :inode, :device, :sha256, :link)",
            [dict(f, snapshot_id=row["id"], link=f.get("link")) for f in files],
        )
        db.executemany(
            "INSERT INTO snapshot_chunks VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(row["id"], *c) for c in chunks],
        )


def list_snapshots(cat, torrent_id: str | None = None) -> list[sqlite3.Row]:
    """Oldest first."""
    if torrent_id:
        return cat.query("SELECT * FROM snapshots WHERE torrent_id = ? ORDER BY created_at, id", (torrent_id,))
    return cat.query("SELECT * FROM snapshots ORDER BY created_at, id")


def get_snapshot(cat, snapshot_id: str) -> sqlite3.Row | None:
    return cat.one("SELECT * FROM snapshots WHERE id = ?", (snapshot_id,))


def resolve_snapshot(cat, prefix: str) -> list[str]:
    """Snapshot ids starting with `prefix`."""
    return [r["id"] for r in cat.query("SELECT id FROM snapshots WHERE id LIKE ?", (prefix.lower() + "%",))]


def snapshot_files(cat, snapshot_id: str) -> list[sqlite3.Row]:
    return cat.query("SELECT * FROM snapshot_files WHERE snapshot_id = ? ORDER BY file_index", (snapshot_id,))


def snapshot_chunks(cat, snapshot_id: str, file_index: int | None = None) -> list[sqlite3.Row]:
    if file_index is None:
        return cat.query("SELECT * FROM snapshot_chunks WHERE snapshot_id = ? ORDER BY file_index, piece",
                         (snapshot_id,))
    return cat.query("SELECT * FROM snapshot_chunks WHERE snapshot_id = ? AND file_index = ? ORDER BY piece",
                     (snapshot_id, file_index))


def referenced_chunks(cat) -> set[str]:
    """Every chunk id some snapshot (or a torrent's kept zones, catalog/ladder.py) still uses: a content
    snapshot's are its files' content chunks (catalog/content.py), an older one's its segments."""
    return {r[0] for r in cat.query(
        "SELECT c.chunk_id FROM snapshot_chunks c JOIN snapshots s ON s.id = c.snapshot_id WHERE s.layout = 1"
        " UNION SELECT chunk_id FROM zones UNION SELECT k.chunk_id FROM content_chunks k WHERE k.sha256 IN"
        " (SELECT f.sha256 FROM snapshot_files f JOIN snapshots s ON s.id = f.snapshot_id WHERE s.layout = 2)")}


def delete_snapshots(cat, ids: list[str]) -> None:
    with cat.tx() as db:
        db.executemany("DELETE FROM snapshots WHERE id = ?", [(i,) for i in ids])
