"""AI jobs, their outputs, leases, companion torrents and swarm observations."""

import json
import sqlite3

from .db_time import now_iso
from .fleet import not_elsewhere
from .schema import migration

migration(
    601,
    """
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    torrent_id TEXT NOT NULL,
    state TEXT NOT NULL,              -- preflight | running | collecting | done | failed | tainted | interrupted | refused
    command TEXT NOT NULL,            -- JSON argv
    scope TEXT NOT NULL,              -- JSON list of the torrent's file paths in scope
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    model_digest TEXT,
    prompt TEXT,
    params TEXT NOT NULL DEFAULT '{}',
    operator TEXT NOT NULL,
    sandbox TEXT,                     -- bwrap | copy
    workdir TEXT NOT NULL,
    preflight_snapshot TEXT,
    output_snapshot TEXT,
    exit_code INTEGER,
    tainted INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    manifest_commit TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    ended_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX jobs_torrent ON jobs(torrent_id, created_at);

CREATE TABLE job_outputs (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    path TEXT NOT NULL,               -- relative to the job's output folder
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    sidecar TEXT NOT NULL,            -- relative path of the provenance sidecar
    sidecar_sha256 TEXT NOT NULL,
    PRIMARY KEY (job_id, path)
);

CREATE TABLE leases (
    id TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,  -- the token itself is never stored
    path TEXT NOT NULL,
    operator TEXT NOT NULL,
    acquired_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    released_at TEXT
);
CREATE INDEX leases_path ON leases(path);

CREATE TABLE companions (
    id TEXT PRIMARY KEY,              -- the companion's torrent id (qBittorrent's hash)
    job_id TEXT NOT NULL REFERENCES jobs(id),
    original_id TEXT NOT NULL,
    info_hash_v1 TEXT,
    info_hash_v2 TEXT,
    kind TEXT NOT NULL,
    piece_length INTEGER NOT NULL,
    torrent_file TEXT NOT NULL,
    content_path TEXT NOT NULL,       -- the folder holding the companion's root
    seeded_by TEXT NOT NULL,          -- qbittorrent | embedded
    category TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    parity_at TEXT                    -- first time the companion reached K complete copies
);
CREATE INDEX companions_original ON companions(original_id);

CREATE TABLE swarms (
    torrent_id TEXT PRIMARY KEY,
    seeds INTEGER NOT NULL,           -- seeds in the swarm, as qBittorrent reports them
    peers INTEGER NOT NULL,
    completed INTEGER NOT NULL,       -- complete copies held elsewhere
    downloaded INTEGER,               -- trackers' "downloaded" counter, when known
    observed_at TEXT NOT NULL
);
""",
)

migration(
    602,
    """
ALTER TABLE jobs ADD COLUMN pid INTEGER;  -- the seedward process running it (stale-job recovery)
""",
)

JOB_COLUMNS = ("state", "sandbox", "preflight_snapshot", "output_snapshot", "exit_code", "tainted", "error",
               "manifest_commit", "started_at", "ended_at", "scope")


def add_job(cat, job_id: str, torrent_id: str, *, command: list[str], scope: list[str], model_name: str,
            model_version: str, model_digest: str | None, prompt: str | None, params: dict, operator: str,
            workdir: str, state: str = "preflight", pid: int | None = None) -> None:
    now = now_iso()
    with cat.tx() as db:
        db.execute(
            """INSERT INTO jobs (id, torrent_id, state, command, scope, model_name, model_version, model_digest,
                   prompt, params, operator, workdir, created_at, updated_at, pid)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (job_id, torrent_id, state, json.dumps(command), json.dumps(scope), model_name, model_version,
             model_digest, prompt, json.dumps(params, sort_keys=True), operator, workdir, now, now, pid),
        )


def update_job(cat, job_id: str, **fields) -> None:
    for column in fields:
        if column not in JOB_COLUMNS:
            raise ValueError(column)
    if "scope" in fields:
        fields["scope"] = json.dumps(fields["scope"])
    sets = ", ".join(f"{c} = ?" for c in fields)
    with cat.tx() as db:
        db.execute(f"UPDATE jobs SET {sets}, updated_at = ? WHERE id = ?", (*fields.values(), now_iso(), job_id))


def get_job(cat, job_id: str) -> sqlite3.Row | None:
    return cat.one("SELECT * FROM jobs WHERE id = ?", (job_id,))


def resolve_job(cat, prefix: str) -> str | None:
    """A job id from any unique prefix; None when nothing matches. Raises ValueError when ambiguous."""
    rows = cat.query("SELECT id FROM jobs WHERE id LIKE ? ORDER BY id LIMIT 6", (prefix.strip().lower() + "%",))
    if len(rows) > 1:
        raise ValueError(", ".join(r["id"] for r in rows[:5]))
    return rows[0]["id"] if rows else None


def open_jobs(cat) -> list[sqlite3.Row]:
    mine, keys = not_elsewhere(cat)  # fleet: another host's job processes are not ours to judge
    return cat.query(f"SELECT * FROM jobs WHERE state IN ('preflight', 'running', 'collecting') AND {mine}"
                     " ORDER BY created_at", keys)


def list_jobs(cat, limit: int = 200) -> list[sqlite3.Row]:
    return cat.query("SELECT * FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,))


# The torrents rows that are only the store's record of a job's outputs (a stored companion payload,
# not published: qBittorrent never had it): not a torrent anyone seeds, so never counted as one.
STORED_OUTPUTS = ("SELECT s.torrent_id FROM jobs j JOIN snapshots s ON s.id = j.output_snapshot"
                  " JOIN torrents t ON t.id = s.torrent_id WHERE COALESCE(t.qbt_state, '') = ''")


def stored_outputs(cat) -> set[str]:
    """Ids of the torrents rows that are only a job's stored, unpublished outputs (STORED_OUTPUTS)."""
    return {r["torrent_id"] for r in cat.query(STORED_OUTPUTS)}


def set_outputs(cat, job_id: str, outputs: list[dict]) -> None:
    with cat.tx() as db:
        db.execute("DELETE FROM job_outputs WHERE job_id = ?", (job_id,))
        db.executemany(
            "INSERT INTO job_outputs VALUES (?, ?, ?, ?, ?, ?)",
            [(job_id, o["path"], o["size"], o["sha256"], o["sidecar"], o["sidecar_sha256"]) for o in outputs],
        )


def get_outputs(cat, job_id: str) -> list[sqlite3.Row]:
    return cat.query("SELECT * FROM job_outputs WHERE job_id = ? ORDER BY path", (job_id,))


def add_lease(cat, lease_id: str, token_sha256: str, path: str, operator: str, expires_at: str) -> None:
    with cat.tx() as db:
        db.execute("INSERT INTO leases (id, token_sha256, path, operator, acquired_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                   (lease_id, token_sha256, path, operator, now_iso(), expires_at))


def release_lease(cat, token_sha256: str) -> sqlite3.Row | None:
    """Mark the lease released; returns its row (None when no lease has this token)."""
    with cat.tx() as db:
        row = db.execute("SELECT * FROM leases WHERE token_sha256 = ?", (token_sha256,)).fetchone()
        if row is not None and row["released_at"] is None:
            db.execute("UPDATE leases SET released_at = ? WHERE id = ?", (now_iso(), row["id"]))
        return row


def get_lease(cat, lease_id: str) -> sqlite3.Row | None:
    return cat.one("SELECT * FROM leases WHERE id = ?", (lease_id,))


def lease_by_token(cat, token_sha256: str) -> sqlite3.Row | None:
    return cat.one("SELECT * FROM leases WHERE token_sha256 = ?", (token_sha256,))


def open_leases(cat, now: str) -> list[sqlite3.Row]:
    return cat.query("SELECT * FROM leases WHERE released_at IS NULL AND expires_at > ? ORDER BY acquired_at", (now,))


def list_leases(cat, limit: int = 200) -> list[sqlite3.Row]:
    return cat.query("SELECT * FROM leases ORDER BY acquired_at DESC LIMIT ?", (limit,))


def add_companion(cat, *, companion_id: str, job_id: str, original_id: str, info_hash_v1: str | None,
                  info_hash_v2: str | None, kind: str, piece_length: int, torrent_file: str, content_path: str,
                  seeded_by: str, category: str) -> None:
    with cat.tx() as db:
        db.execute(
            """INSERT INTO companions (id, job_id, original_id, info_hash_v1, info_hash_v2, kind, piece_length,
                   torrent_file, content_path, seeded_by, category, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(id) DO UPDATE SET seeded_by = excluded.seeded_by, category = excluded.category""",
            (companion_id, job_id, original_id, info_hash_v1, info_hash_v2, kind, piece_length, torrent_file,
             content_path, seeded_by, category, now_iso()),
        )


def list_companions(cat, job_id: str | None = None, seeded_by: str | None = None) -> list[sqlite3.Row]:
    where, params = [], []
    if job_id:
        where.append("job_id = ?")
        params.append(job_id)
    if seeded_by:
        where.append("seeded_by = ?")
        params.append(seeded_by)
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    return cat.query(f"SELECT * FROM companions {clause} ORDER BY created_at", params)


def mark_parity(cat, companion_id: str) -> bool:
    """Record the first time parity was reached. True when this call recorded it."""
    with cat.tx() as db:
        return db.execute("UPDATE companions SET parity_at = ? WHERE id = ? AND parity_at IS NULL",
                          (now_iso(), companion_id)).rowcount == 1


def record_swarm(cat, torrent_id: str, seeds: int, peers: int, completed: int, downloaded: int | None) -> None:
    with cat.tx() as db:
        db.execute(
            """INSERT INTO swarms VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT(torrent_id) DO UPDATE SET seeds = excluded.seeds, peers = excluded.peers,
                   completed = excluded.completed, downloaded = excluded.downloaded, observed_at = excluded.observed_at""",
            (torrent_id, seeds, peers, completed, downloaded, now_iso()),
        )


def get_swarm(cat, torrent_id: str) -> sqlite3.Row | None:
    return cat.one("SELECT * FROM swarms WHERE torrent_id = ?", (torrent_id,))
