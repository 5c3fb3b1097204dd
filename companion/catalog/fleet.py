"""Several seedward services on one catalog (issue 20): who owns what, and who is alive.

Every torrent row has an `owner`: the key of the qBittorrent instance whose payload it describes
("" in the embedded single-host mode, the host's name on a shared catalog, "<host>/<instance>" for
more instances of one service). A service writes the rows of its own torrents and reads all of them;
every list it *acts* on (watching, scrubbing, healing, drilling, queue work, removal audits) is
filtered with `own(cat, alias)` or `not_elsewhere(cat, column)`. Queue rows belong to the service
that queued them: only it claims them (`FOR UPDATE SKIP LOCKED`, queue.py).

`services` holds one row per running service (owner): its heartbeat and a small summary, which
`seedward status` and the TUI show as the fleet. A service whose heartbeat is older than
STALE_SECONDS is shown as gone; its torrents stay its own until `seedward fleet adopt` hands them
to another host.
"""

import json
from datetime import datetime, timedelta, timezone

import hashlib

from ..errors import EXIT_LOCKED, Error, Locked
from .db_time import now_iso
from .schema import migration

HEARTBEAT_SECONDS = 10.0  # [catalog] heartbeat_seconds
STALE_BEATS = 4.5  # no heartbeat for this many beats: the service is shown as gone


def stale_seconds(cat) -> float:
    return STALE_BEATS * getattr(cat, "heartbeat_seconds", HEARTBEAT_SECONDS)

migration(
    2001,
    """
ALTER TABLE torrents ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE queue ADD COLUMN owner TEXT NOT NULL DEFAULT '';
CREATE INDEX torrents_owner ON torrents(owner);
CREATE INDEX queue_owner ON queue(owner, state, id);

-- one row per seedward service on this catalog: its heartbeat and what it reports
CREATE TABLE services (
    owner TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    version TEXT NOT NULL,
    started_at TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    stopped_at TEXT,
    summary TEXT NOT NULL DEFAULT '{}'   -- JSON: qBittorrent state, queue, torrents per state
);
""",
)


class NotOwner(Error):
    """{}: owned by {!r} in the shared catalog; this service ({!r}) does not write it"""

    exit_code = EXIT_LOCKED


def _marks(n: int) -> str:
    return ",".join("?" * n)


def owners(cat) -> tuple[str, ...]:
    return tuple(getattr(cat, "owners", None) or ("",))


def own(cat, alias: str = "") -> tuple[str, tuple]:
    """SQL (without AND) keeping the torrents rows of this service, and its parameters."""
    keys = owners(cat)
    col = f"{alias}.owner" if alias else "owner"
    return f"{col} IN ({_marks(len(keys))})", keys


def not_elsewhere(cat, column: str = "torrent_id") -> tuple[str, tuple]:
    """SQL (without AND) dropping rows whose torrent another service owns (rows of torrents the
    catalog does not know stay: they are this service's own work)."""
    keys = owners(cat)
    return (f"{column} NOT IN (SELECT id FROM torrents WHERE owner NOT IN ({_marks(len(keys))}))", keys)


def owner_of(cat, torrent_id: str) -> str | None:
    row = cat.one("SELECT owner FROM torrents WHERE id = ?", (torrent_id,))
    return row["owner"] if row is not None else None


def check_owner(db, cat, torrent_id: str) -> None:
    """Inside a write transaction: raise NotOwner unless this service may write the torrent. A row
    nobody owns ("") is adopted by the writer."""
    row = db.execute("SELECT owner, name FROM torrents WHERE id = ?", (torrent_id,)).fetchone()
    if row is None or row["owner"] in owners(cat):
        return
    if row["owner"] == "":
        db.execute("UPDATE torrents SET owner = ? WHERE id = ? AND owner = ''", (cat.owner, torrent_id))
        return
    raise NotOwner(row["name"] or torrent_id, row["owner"], cat.owner)


def set_owner(cat, torrent_ids, owner: str) -> int:
    """Hand torrents to another owner (`fleet adopt`). Returns how many rows changed."""
    ids = list(torrent_ids)
    changed = 0
    with cat.tx() as db:
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            changed += db.execute(f"UPDATE torrents SET owner = ? WHERE id IN ({_marks(len(part))})",
                                  (owner, *part)).rowcount
    return changed


def owned_torrents(cat, owner: str, include_removed: bool = False) -> list:
    where = "" if include_removed else " AND removed_at IS NULL"
    return cat.query(f"SELECT * FROM torrents WHERE owner = ?{where} ORDER BY name, id", (owner,))


def take_owner_lock(cat) -> None:
    """A service on a shared catalog holds its owner keys for the life of its catalog session (and
    takes them again after a reconnect); a second service started with the same key is refused.
    Nothing to do on SQLite (the home's service.lock already allows one service)."""
    if getattr(cat, "engine", "sqlite") != "postgresql":
        return
    for owner in owners(cat):
        key = int.from_bytes(hashlib.sha256(f"seedward-owner:{owner}".encode()).digest()[:8], "big", signed=True)
        got = cat.one("SELECT pg_try_advisory_lock(?) AS ok", (key,))
        if not got or not got["ok"]:
            live = live_service(cat, owner)
            holder = f"the service on {live['host']} (pid {live['pid']})" if live else "another seedward service"
            raise Locked(f"owner {owner!r} in the shared catalog {cat.where}", holder)
    hooks = cat.__dict__.setdefault("on_connect", [])
    if take_owner_lock not in hooks:
        hooks.append(take_owner_lock)


# -- services and their heartbeats ----------------------------------------------------------------

def heartbeat(cat, *, host: str, pid: int, version: str, started_at: str, summary: dict) -> None:
    now = now_iso()
    with cat.tx(serial=False) as db:
        db.execute(
            "INSERT INTO services (owner, host, pid, version, started_at, seen_at, stopped_at, summary)"
            " VALUES (?, ?, ?, ?, ?, ?, NULL, ?) ON CONFLICT(owner) DO UPDATE SET host = excluded.host,"
            " pid = excluded.pid, version = excluded.version, started_at = excluded.started_at,"
            " seen_at = excluded.seen_at, stopped_at = NULL, summary = excluded.summary",
            (cat.owner, host, pid, version, started_at, now, json.dumps(summary, sort_keys=True, default=str)))


def stopped(cat) -> None:
    with cat.tx(serial=False) as db:
        db.execute("UPDATE services SET stopped_at = ?, seen_at = ? WHERE owner = ?", (now_iso(), now_iso(), cat.owner))


def services(cat, now: datetime | None = None) -> list[dict]:
    """Every service that ever ran on this catalog, with `alive` (heartbeat fresh, not stopped)."""
    now = now or datetime.now(timezone.utc)
    out = []
    for r in cat.query("SELECT * FROM services ORDER BY owner"):
        seen = _parse(r["seen_at"])
        age = (now - seen).total_seconds() if seen else None
        try:
            summary = json.loads(r["summary"] or "{}")
        except ValueError:
            summary = {}
        out.append({"owner": r["owner"], "host": r["host"], "pid": r["pid"], "version": r["version"],
                    "started_at": r["started_at"], "seen_at": r["seen_at"], "stopped_at": r["stopped_at"],
                    "seen_seconds_ago": round(age, 1) if age is not None else None,
                    "alive": r["stopped_at"] is None and age is not None and age <= stale_seconds(cat),
                    "summary": summary})
    return out


def live_service(cat, owner: str, now: datetime | None = None) -> dict | None:
    for s in services(cat, now):
        if s["owner"] == owner and s["alive"]:
            return s
    return None


def torrents_by_owner(cat) -> dict[str, dict[str, int]]:
    """owner -> {protection state: torrents} (removed ones apart), for the fleet view."""
    out: dict[str, dict[str, int]] = {}
    for r in cat.query("SELECT owner, CASE WHEN removed_at IS NULL THEN protection ELSE 'removed' END AS state,"
                       " COUNT(*) AS n, COALESCE(SUM(payload_size), 0) AS bytes FROM torrents GROUP BY owner, state"):
        out.setdefault(r["owner"], {})[r["state"]] = r["n"]
    return out


def queue_by_owner(cat) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for r in cat.query("SELECT owner, state, COUNT(*) AS n FROM queue WHERE state IN ('queued', 'running')"
                       " GROUP BY owner, state"):
        out.setdefault(r["owner"], {})[r["state"]] = r["n"]
    return out


def fleet(cat, now: datetime | None = None) -> dict:
    """The fleet as `status` shows it: every owner with its service (if any), torrents and queue."""
    svc = {s["owner"]: s for s in services(cat, now)}
    torrents = torrents_by_owner(cat)
    queue = queue_by_owner(cat)
    out = []
    for owner in sorted(set(svc) | set(torrents) | set(queue)):
        s = svc.get(owner)
        out.append({"owner": owner, "host": s["host"] if s else None, "alive": bool(s and s["alive"]),
                    "seen_at": s["seen_at"] if s else None, "seen_seconds_ago": s["seen_seconds_ago"] if s else None,
                    "pid": s["pid"] if s else None, "version": s["version"] if s else None,
                    "qbittorrent": (s["summary"] or {}).get("qbittorrent") if s else None,
                    "torrents": torrents.get(owner, {}), "queue": {"queued": 0, "running": 0, **queue.get(owner, {})}})
    return {"members": out, "me": list(owners(cat))}


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def stale_before(seconds: float, now: datetime | None = None) -> str:
    return ((now or datetime.now(timezone.utc)) - timedelta(seconds=seconds)).isoformat(timespec="milliseconds")
