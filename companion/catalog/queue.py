"""The persistent work queue: every long job is a row, so a crash loses nothing.

On a shared catalog each row belongs to the service that queued it (`owner`): only that service
claims it, with `FOR UPDATE SKIP LOCKED` so its workers (and nobody else) never wait on each other.
"""

import json
from datetime import datetime, timedelta, timezone

from .db_time import now_iso
from .fleet import own
from .schema import migration

migration(
    2401,
    """
-- a job put back to wait for something that is out (the store): not claimed before this time
ALTER TABLE queue ADD COLUMN not_before TEXT;
""",
)


def enqueue(cat, kind: str, torrent_id: str | None, **payload) -> int | None:
    """Queue a job unless the same kind is already queued or running for this torrent."""
    now = now_iso()
    with cat.tx() as db:
        row = db.execute(
            "SELECT id FROM queue WHERE kind = ? AND torrent_id IS ? AND state IN ('queued', 'running')",
            (kind, torrent_id),
        ).fetchone()
        if row:
            return None
        cur = db.execute(
            "INSERT INTO queue (kind, torrent_id, payload, created_at, updated_at, owner) VALUES (?, ?, ?, ?, ?, ?)",
            (kind, torrent_id, json.dumps(payload), now, now, cat.owner),
        )
        return cur.lastrowid


def claim(cat, kinds: tuple[str, ...] | None = None):
    """Take the oldest queued job (marks it running). Returns the row or None."""
    mine, keys = own(cat)
    due = "(not_before IS NULL OR not_before <= ?)"
    with cat.tx(serial=False) as db:
        if kinds:
            marks = ",".join("?" * len(kinds))
            row = db.execute(
                f"SELECT * FROM queue WHERE state = 'queued' AND {mine} AND {due} AND kind IN ({marks})"
                " ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED", (*keys, now_iso(), *kinds)
            ).fetchone()
        else:
            row = db.execute(f"SELECT * FROM queue WHERE state = 'queued' AND {mine} AND {due} ORDER BY id LIMIT 1"
                             " FOR UPDATE SKIP LOCKED", (*keys, now_iso())).fetchone()
        if row is None:
            return None
        db.execute(
            "UPDATE queue SET state = 'running', attempts = attempts + 1, not_before = NULL, updated_at = ?"
            " WHERE id = ?",
            (now_iso(), row["id"]),
        )
        return row


def finish(cat, job_id: int, error: str | None = None) -> None:
    with cat.tx(serial=False) as db:  # one row
        db.execute(
            "UPDATE queue SET state = ?, error = ?, not_before = NULL, updated_at = ? WHERE id = ?",
            ("failed" if error else "done", error, now_iso(), job_id),
        )


def defer(cat, job_id: int, seconds: float, why: str) -> str:
    """Put a running job back in the queue, not claimed for `seconds`: what it waits for is out.
    `why` is kept as its error until it runs again. Returns when it is tried again (ISO UTC)."""
    later = (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")
    with cat.tx(serial=False) as db:
        db.execute("UPDATE queue SET state = 'queued', error = ?, not_before = ?, updated_at = ?"
                   " WHERE id = ? AND state = 'running'", (why, later, now_iso(), job_id))
    return later


def requeue(cat, job_id: int) -> None:
    """Put one running job back in the queue (it was interrupted, not failed)."""
    with cat.tx() as db:
        db.execute("UPDATE queue SET state = 'queued', updated_at = ? WHERE id = ? AND state = 'running'",
                   (now_iso(), job_id))


def requeue_running(cat) -> int:
    """At start: jobs a crashed service (this one) left running go back to the queue."""
    mine, keys = own(cat)
    with cat.tx() as db:
        return db.execute(
            f"UPDATE queue SET state = 'queued', updated_at = ? WHERE state = 'running' AND {mine}", (now_iso(), *keys)
        ).rowcount


def try_now(cat, kind: str, torrent_id: str | None) -> int | None:
    """A job of `kind` for the torrent that waits (defer): due now, at the user's request. Its id, or None."""
    with cat.tx(serial=False) as db:
        row = db.execute("SELECT id FROM queue WHERE kind = ? AND torrent_id IS ? AND state = 'queued'"
                         " AND not_before IS NOT NULL", (kind, torrent_id)).fetchone()
        if row is None:
            return None
        db.execute("UPDATE queue SET not_before = NULL, updated_at = ? WHERE id = ?", (now_iso(), row["id"]))
        return row["id"]


def pending_jobs(cat) -> list:
    return cat.query("SELECT * FROM queue WHERE state IN ('queued', 'running') ORDER BY id")
