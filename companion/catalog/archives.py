"""Archive sets made by `seedward archive create` (issues 8 and 19): what was made, where it went, its state."""

import json

from .db_time import now_iso
from .schema import migration

migration(
    801,
    """
CREATE TABLE archive_sets (
    set_id TEXT PRIMARY KEY,
    tier TEXT NOT NULL,               -- daily | weekly | monthly | yearly (after promotion)
    requested TEXT NOT NULL,          -- the tier asked for at creation
    full INTEGER NOT NULL,            -- 1 full, 0 incremental
    base_set TEXT,                    -- the previous set an incremental follows
    created_at TEXT NOT NULL,
    retain_until TEXT NOT NULL,
    remote TEXT NOT NULL,
    state TEXT NOT NULL,              -- local (waiting for upload) | uploaded | pruned
    manifests_commit TEXT,            -- the manifests repo HEAD the set covers
    bytes INTEGER NOT NULL,           -- payload bytes archived
    archive_bytes INTEGER NOT NULL,   -- volumes + par2 on the remote
    local_path TEXT,                  -- the outbox folder while state is local
    manifest TEXT NOT NULL,           -- the full set manifest (with member paths), JSON
    updated_at TEXT NOT NULL,
    error TEXT
);
CREATE INDEX archive_sets_created ON archive_sets(created_at);
""",
)

migration(
    1901,
    """
ALTER TABLE archive_sets ADD COLUMN locked_until TEXT;  -- S3 Object Lock retention end (NULL: not locked)
""",
)


def add_set(cat, row: dict) -> None:
    now = now_iso()
    with cat.tx() as db:
        db.execute(
            "INSERT INTO archive_sets (set_id, tier, requested, full, base_set, created_at, retain_until, remote,"
            " state, manifests_commit, bytes, archive_bytes, local_path, manifest, updated_at, locked_until)"
            " VALUES (:set_id, :tier, :requested, :full, :base_set, :created_at, :retain_until, :remote, :state,"
            " :manifests_commit, :bytes, :archive_bytes, :local_path, :manifest, :updated_at, :locked_until)",
            {"locked_until": None, **row, "manifest": json.dumps(row["manifest"], sort_keys=True), "updated_at": now},
        )


def update_set(cat, set_id: str, **fields) -> None:
    if "manifest" in fields:
        fields["manifest"] = json.dumps(fields["manifest"], sort_keys=True)
    fields["updated_at"] = now_iso()
    cols = ", ".join(f"{k} = :{k}" for k in fields)
    with cat.tx() as db:
        db.execute(f"UPDATE archive_sets SET {cols} WHERE set_id = :set_id", {**fields, "set_id": set_id})


def get_set(cat, set_id: str) -> dict | None:
    row = cat.one("SELECT * FROM archive_sets WHERE set_id = ?", (set_id,))
    return _row(row) if row else None


def find_sets(cat, prefix: str) -> list[dict]:
    """Sets whose id starts with prefix (any state)."""
    rows = cat.query("SELECT * FROM archive_sets WHERE set_id LIKE ? ESCAPE '\\' ORDER BY created_at",
                     (prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",))
    return [_row(r) for r in rows]


def list_sets(cat, states: tuple[str, ...] = ("local", "uploaded")) -> list[dict]:
    marks = ",".join("?" * len(states))
    rows = cat.query(f"SELECT * FROM archive_sets WHERE state IN ({marks}) ORDER BY created_at", states)
    return [_row(r) for r in rows]


def last_set(cat) -> dict | None:
    """The newest set of any tier that was made (uploaded or waiting): incrementals follow it."""
    row = cat.one("SELECT * FROM archive_sets WHERE state IN ('local', 'uploaded') ORDER BY created_at DESC LIMIT 1")
    return _row(row) if row else None


def _row(row) -> dict:
    out = dict(row)
    out["manifest"] = json.loads(out["manifest"])
    out["full"] = bool(out["full"])
    return out


def backup_catalog(cat, dest) -> None:
    """A consistent copy of the whole catalog as an SQLite file, for archive sets (SQLite's online
    backup; a shared PostgreSQL catalog is copied table by table in one snapshot: Catalog.backup)."""
    cat.backup(dest)
