"""Notifications: what the daily digest has covered (the events themselves are the events table)."""

import json

from .schema import migration

migration(
    1701,
    """
-- small named marks of the notifier: the last event a digest covered, the day it was sent
CREATE TABLE notify_marks (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
""",
)


def get_mark(cat, key: str) -> str | None:
    row = cat.one("SELECT value FROM notify_marks WHERE key = ?", (key,))
    return row["value"] if row else None


def set_marks(cat, **marks) -> None:
    with cat.tx() as db:
        db.executemany("INSERT INTO notify_marks VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                       [(k, str(v)) for k, v in marks.items()])


def last_event_id(cat) -> int:
    row = cat.one("SELECT MAX(id) AS id FROM events")
    return int(row["id"] or 0) if row else 0


def events_after(cat, event_id: int, kinds, limit: int = 100_000) -> list[dict]:
    """Events of these kinds after `event_id`, oldest first, as the bus publishes them
    ({"event", "id", "torrent_id", "at", "level", "message", **detail})."""
    kinds = sorted(set(kinds))
    marks = ",".join("?" * len(kinds))
    rows = cat.query(f"SELECT * FROM events WHERE id > ? AND kind IN ({marks}) ORDER BY id LIMIT ?",
                     (event_id, *kinds, limit))
    out = []
    for r in rows:
        try:
            detail = json.loads(r["detail"] or "{}")
        except ValueError:
            detail = {}
        out.append({**(detail if isinstance(detail, dict) else {}), "event": r["kind"], "id": r["id"],
                    "torrent_id": r["torrent_id"], "at": r["at"], "level": r["level"], "message": r["message"]})
    return out


def state_counts(cat) -> dict[str, int]:
    """Torrents per protection state (removed ones apart)."""
    rows = cat.query("SELECT CASE WHEN removed_at IS NULL THEN protection ELSE 'removed' END AS state, COUNT(*) AS n"
                     " FROM torrents GROUP BY state")
    return {r["state"]: r["n"] for r in rows}


def torrent_names(cat, ids) -> dict[str, str]:
    ids = sorted({i for i in ids if i})
    out = {}
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        marks = ",".join("?" * len(part))
        out.update({r["id"]: r["name"] for r in cat.query(f"SELECT id, name FROM torrents WHERE id IN ({marks})", part)})
    return out
