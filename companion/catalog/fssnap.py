"""Read-only filesystem snapshots (btrfs) the store uses as snapshots (store/fssnap.py): the ones
taken, and which store snapshot finds its torrent's files where in which of them."""

import sqlite3

from .db_time import now_iso
from .schema import migration

migration(
    1604,
    """
-- a read-only snapshot of a filesystem subvolume seedward took (and deletes once no snapshot uses it)
CREATE TABLE fs_taken (
    path TEXT PRIMARY KEY,            -- the read-only snapshot's folder
    kind TEXT NOT NULL,               -- btrfs
    subvolume TEXT NOT NULL,          -- the subvolume it is a snapshot of
    created_at TEXT NOT NULL
);
-- a store snapshot (layout 3) whose files are in such a snapshot, under `root`
CREATE TABLE fs_snapshots (
    snapshot_id TEXT PRIMARY KEY REFERENCES snapshots(id) ON DELETE CASCADE,
    path TEXT NOT NULL REFERENCES fs_taken(path),
    root TEXT NOT NULL                -- the torrent's save path inside the read-only snapshot
);
""",
)


def add_taken(cat, path: str, kind: str, subvolume: str) -> None:
    with cat.tx() as db:
        db.execute("INSERT OR IGNORE INTO fs_taken VALUES (?, ?, ?, ?)", (path, kind, subvolume, now_iso()))


def newest_taken(cat, subvolume: str) -> sqlite3.Row | None:
    return cat.one("SELECT * FROM fs_taken WHERE subvolume = ? ORDER BY created_at DESC, path DESC LIMIT 1",
                   (subvolume,))


def link(cat, snapshot_id: str, path: str, root: str) -> None:
    with cat.tx() as db:
        db.execute("INSERT INTO fs_snapshots VALUES (?, ?, ?)", (snapshot_id, path, root))


def of_snapshot(cat, snapshot_id: str) -> sqlite3.Row | None:
    return cat.one("SELECT f.*, t.kind, t.subvolume FROM fs_snapshots f JOIN fs_taken t ON t.path = f.path"
                   " WHERE f.snapshot_id = ?", (snapshot_id,))


def unused(cat) -> list[sqlite3.Row]:
    """Taken snapshots no store snapshot uses any more."""
    return cat.query("SELECT * FROM fs_taken WHERE path NOT IN (SELECT path FROM fs_snapshots) ORDER BY created_at")


def drop_taken(cat, path: str) -> None:
    with cat.tx() as db:
        db.execute("DELETE FROM fs_taken WHERE path = ?", (path,))


def locate_segment(cat, chunk_id: str) -> list[sqlite3.Row]:
    """Where filesystem-snapshot store snapshots hold a segment with this id: (its file's path in
    the read-only snapshot, offset, length, piece_length, segments of that file)."""
    return cat.query(
        """SELECT c.snapshot_id, c.file_index, c.offset, c.length, f.root, sf.path, t.piece_length,
                  (SELECT COUNT(*) FROM snapshot_chunks n WHERE n.snapshot_id = c.snapshot_id
                     AND n.file_index = c.file_index) AS segments
           FROM snapshot_chunks c JOIN fs_snapshots f ON f.snapshot_id = c.snapshot_id
           JOIN snapshot_files sf ON sf.snapshot_id = c.snapshot_id AND sf.file_index = c.file_index
           JOIN snapshots s ON s.id = c.snapshot_id LEFT JOIN torrents t ON t.id = s.torrent_id
           WHERE c.chunk_id = ? LIMIT 4""", (chunk_id,))


def copies(cat, sha256: str | None) -> list[sqlite3.Row]:
    """Copies of a file content in read-only filesystem snapshots (root + path), newest first."""
    if not sha256:
        return []
    return cat.query("SELECT f.root, sf.path FROM fs_snapshots f JOIN snapshot_files sf ON sf.snapshot_id = f.snapshot_id"
                     " JOIN snapshots s ON s.id = f.snapshot_id WHERE sf.sha256 = ? ORDER BY s.created_at DESC",
                     (sha256,))
