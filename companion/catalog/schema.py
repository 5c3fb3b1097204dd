"""Versioned migrations. Each is applied once, in version order, in its own transaction.

Versions are grouped by the issue that added them (issue N uses N*100 + k), so work in
parallel never collides; the runner applies every version it has not yet recorded.
"""

MIGRATIONS: dict[int, str] = {}


def migration(version: int, sql: str) -> None:
    if version in MIGRATIONS:
        raise RuntimeError(f"migration {version} defined twice")
    MIGRATIONS[version] = sql


migration(
    201,
    """
CREATE TABLE torrents (
    id TEXT PRIMARY KEY,              -- qBittorrent's torrent hash
    info_hash_v1 TEXT,
    info_hash_v2 TEXT,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,               -- v1 | v2 | hybrid
    piece_length INTEGER NOT NULL,
    num_pieces INTEGER NOT NULL,
    total_size INTEGER NOT NULL,      -- pad files included
    payload_size INTEGER NOT NULL,
    save_path TEXT,
    torrent_file TEXT,                -- the .torrent kept in the state home
    category TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '',
    protection TEXT NOT NULL DEFAULT 'pending',
    policy TEXT NOT NULL DEFAULT '',
    qbt_state TEXT NOT NULL DEFAULT '',
    added_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_verified TEXT,
    removed_at TEXT
);
CREATE INDEX torrents_v1 ON torrents(info_hash_v1);
CREATE INDEX torrents_v2 ON torrents(info_hash_v2);

CREATE TABLE files (
    torrent_id TEXT NOT NULL REFERENCES torrents(id) ON DELETE CASCADE,
    file_index INTEGER NOT NULL,      -- libtorrent's index (pad files have none here)
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    sha256 TEXT,
    v2_root TEXT,
    status TEXT NOT NULL,
    mtime_ns INTEGER,
    inode INTEGER,
    device INTEGER,
    nlink INTEGER,
    PRIMARY KEY (torrent_id, file_index)
);

-- piece-aligned segments: the part of one file inside one piece (the store's chunks)
CREATE TABLE segments (
    torrent_id TEXT NOT NULL REFERENCES torrents(id) ON DELETE CASCADE,
    file_index INTEGER NOT NULL,
    piece INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    xxh3 TEXT,
    chunk_id TEXT,                    -- SHA-256 merkle root of the segment's 16 KiB blocks
    PRIMARY KEY (torrent_id, file_index, piece)
);

CREATE TABLE pieces (
    torrent_id TEXT NOT NULL REFERENCES torrents(id) ON DELETE CASCADE,
    piece INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    verified_at TEXT NOT NULL,
    PRIMARY KEY (torrent_id, piece)
);

CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    torrent_id TEXT NOT NULL,
    kind TEXT NOT NULL,               -- full | quick
    reason TEXT NOT NULL,
    started_at TEXT NOT NULL,
    seconds REAL NOT NULL,
    bytes INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    bad_pieces TEXT NOT NULL          -- JSON list
);
CREATE INDEX runs_torrent ON runs(torrent_id, started_at);

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    torrent_id TEXT,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,               -- protected, baseline_bad, drift, heal, drill_failed, ...
    level TEXT NOT NULL DEFAULT 'info',
    message TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_torrent ON events(torrent_id, at);

-- the persistent work queue: every long job is a record, so workers can crash and resume
CREATE TABLE queue (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,               -- protect, snapshot, heal, drill, archive, ...
    torrent_id TEXT,
    payload TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL DEFAULT 'queued',  -- queued | running | done | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    error TEXT
);
CREATE UNIQUE INDEX queue_open ON queue(kind, torrent_id) WHERE state IN ('queued', 'running');
""",
)
