"""The service schedule's memory (issue 19): per `[schedule]` entry, the moment it last ran for,
the job it queued, and its retries."""

from .db_time import now_iso
from .schema import migration

migration(
    1902,
    """
CREATE TABLE schedule_runs (
    name TEXT PRIMARY KEY,            -- the [schedule] entry (archive_daily, ...)
    last_due TEXT NOT NULL,           -- the scheduled moment last handled (ISO, local time with offset)
    job_id INTEGER,                   -- the queued job of the current run, while it is queued or running
    attempt INTEGER NOT NULL DEFAULT 0,  -- tries of the current run so far
    next_try TEXT,                    -- when a failed run is tried again
    last_result TEXT,                 -- ok | failed (all retries spent)
    last_error TEXT,
    updated_at TEXT NOT NULL
);
""",
)

FIELDS = ("last_due", "job_id", "attempt", "next_try", "last_result", "last_error")


def get_run(cat, name: str) -> dict | None:
    row = cat.one("SELECT * FROM schedule_runs WHERE name = ?", (name,))
    return dict(row) if row else None


def save_run(cat, name: str, **fields) -> None:
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown schedule_runs fields {sorted(unknown)}")
    have = get_run(cat, name) or {"last_due": "", "job_id": None, "attempt": 0, "next_try": None,
                                  "last_result": None, "last_error": None}
    have.update(fields)
    with cat.tx() as db:
        db.execute(
            "INSERT INTO schedule_runs (name, last_due, job_id, attempt, next_try, last_result, last_error, updated_at)"
            " VALUES (:name, :last_due, :job_id, :attempt, :next_try, :last_result, :last_error, :now)"
            " ON CONFLICT(name) DO UPDATE SET last_due = :last_due, job_id = :job_id, attempt = :attempt,"
            " next_try = :next_try, last_result = :last_result, last_error = :last_error, updated_at = :now",
            {**{k: have[k] for k in FIELDS}, "name": name, "now": now_iso()},
        )


def list_runs(cat) -> list[dict]:
    return [dict(r) for r in cat.query("SELECT * FROM schedule_runs ORDER BY name")]


def job_outcome(cat, job_id: int) -> tuple[str, str | None] | None:
    """(state, error) of a queued job: queued | running | done | failed; None if it is gone."""
    row = cat.one("SELECT state, error FROM queue WHERE id = ?", (job_id,))
    return (row["state"], row["error"]) if row else None
