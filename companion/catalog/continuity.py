"""Read-only queries for seeding continuity (companion/continuity): the events that say a torrent's
state changed, the latest of each kind before a window, and the drift responses (heals)."""

import json

# What each kind of event speaks of (a torrent's protection, seedward's stop, the user's stop, the
# service, qBittorrent): the latest of each before a window is where that window starts.
_DIMENSION = """CASE WHEN kind IN ({p}) THEN 'p' WHEN kind IN ({h}) THEN 'h' WHEN kind IN ({u}) THEN 'u'
                     WHEN kind IN ({s}) THEN 's' WHEN kind IN ({q}) THEN 'q' END"""


def _marks(kinds) -> str:
    return ",".join("?" * len(kinds))


def _row(r) -> tuple:
    """(id, torrent_id, at, kind, value): a `state` event's new protection, a qBittorrent event's
    instance (several instances; None for the only one), from the event's detail."""
    value = None
    if r["kind"] == "state" or r["kind"].startswith("qbt_"):
        try:
            value = json.loads(r["detail"] or "{}").get("state" if r["kind"] == "state" else "instance")
        except (ValueError, AttributeError):
            value = None
    return r["id"], r["torrent_id"], r["at"], r["kind"], value


def events_since(cat, since: str, kinds, after_id: int = 0) -> list[tuple]:
    """Events of these kinds at or after `since` (ISO), with id > after_id, oldest first."""
    kinds = list(kinds)
    rows = cat.query(f"SELECT id, torrent_id, at, kind, detail FROM events WHERE id > ? AND at >= ?"
                     f" AND kind IN ({_marks(kinds)}) ORDER BY id", (after_id, since, *kinds))
    return [_row(r) for r in rows]


def latest_before(cat, before: str, dimensions: dict) -> list[tuple]:
    """The newest event of each dimension (name -> kinds: p, h, u, s, q) per torrent before `before`
    (torrent_id None: the service's own), oldest first."""
    groups = {k: list(dimensions[k]) for k in "phusq"}
    case = _DIMENSION.format(**{k: _marks(v) for k, v in groups.items()})
    every = [kind for k in "phusq" for kind in groups[k]]
    rows = cat.query(
        f"SELECT id, torrent_id, at, kind, detail FROM (SELECT id, torrent_id, at, kind, detail,"
        f" ROW_NUMBER() OVER (PARTITION BY torrent_id, {case} ORDER BY id DESC) AS k"
        f" FROM events WHERE at < ? AND kind IN ({_marks(every)})) AS latest WHERE k = 1 ORDER BY id",
        (*every, before, *every))
    return [_row(r) for r in rows]


def heals_since(cat, since: str) -> list[dict]:
    """Drift responses started at or after `since`: when, outcome, and the seconds they timed."""
    out = []
    for r in cat.query("SELECT id, torrent_id, started_at, finished_at, outcome, timings FROM heals"
                       " WHERE started_at >= ? ORDER BY id", (since,)):
        try:
            timings = json.loads(r["timings"] or "{}")
        except ValueError:
            timings = {}
        out.append({"id": r["id"], "torrent_id": r["torrent_id"], "started_at": r["started_at"],
                    "finished_at": r["finished_at"], "outcome": r["outcome"],
                    "timings": timings if isinstance(timings, dict) else {}})
    return out


def last_event_id(cat) -> int:
    row = cat.one("SELECT MAX(id) AS n FROM events")
    return int(row["n"] or 0) if row is not None else 0
