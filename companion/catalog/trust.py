"""What seedward does to torrents in qBittorrent, and what the user chose (issue 12).

holds: a torrent seedward stopped, recorded before the stop is sent: since when, why, whether
to start it again, and the qBittorrent steps still to carry out in order (stop, recheck, start),
so a restart after kill -9 finishes them. user_stops: `seedward stop ID`, the user's choice, which
nothing in seedward undoes. lease_snapshots: the snapshot taken when a lease was granted
(`restore` undoes the leased edit from it).
"""

import json
import sqlite3

from .db_time import now_iso
from .fleet import not_elsewhere, own, owners
from .schema import migration

migration(
    1201,
    """
CREATE TABLE holds (
    torrent_id TEXT PRIMARY KEY,
    since TEXT NOT NULL,
    because TEXT NOT NULL,
    resume INTEGER NOT NULL DEFAULT 1,      -- start it again once handled (it was running)
    steps TEXT NOT NULL DEFAULT '[]',       -- JSON: qBittorrent steps not yet done, in order
    stage TEXT NOT NULL DEFAULT 'stopping', -- stopping | stopped | rechecking | resuming
    settled INTEGER NOT NULL DEFAULT 0,     -- the payload is handled: once the steps are done, the hold ends
    error TEXT,                             -- the last qBittorrent error, while it lasts
    updated_at TEXT NOT NULL
);

CREATE TABLE user_stops (
    torrent_id TEXT PRIMARY KEY,
    since TEXT NOT NULL,
    operator TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT ''
);

CREATE TABLE lease_snapshots (
    lease_id TEXT NOT NULL,
    torrent_id TEXT NOT NULL,
    snapshot_id TEXT,                       -- NULL: none could be taken (note says why)
    note TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (lease_id, torrent_id)
);
""",
)


def _hold(row) -> dict:
    out = dict(row)
    out["steps"] = json.loads(out["steps"] or "[]")
    out["resume"] = bool(out["resume"])
    out["settled"] = bool(out["settled"])
    return out


def get_hold(cat, torrent_id: str) -> dict | None:
    row = cat.one("SELECT * FROM holds WHERE torrent_id = ?", (torrent_id,))
    return _hold(row) if row else None


def holds(cat) -> dict[str, dict]:
    mine, keys = not_elsewhere(cat)  # fleet: only this service's torrents
    return {r["torrent_id"]: _hold(r) for r in cat.query(f"SELECT * FROM holds WHERE {mine} ORDER BY since, torrent_id",
                                                         keys)}


def put_hold(cat, torrent_id: str, *, because: str, resume: bool, steps: list[str], stage: str = "stopping",
             settled: bool = False) -> None:
    """Record (or replace) a hold. The first `since` is kept while the hold lasts."""
    now = now_iso()
    with cat.tx() as db:
        db.execute(
            "INSERT INTO holds (torrent_id, since, because, resume, steps, stage, settled, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(torrent_id) DO UPDATE SET because = excluded.because,"
            " resume = excluded.resume, steps = excluded.steps, stage = excluded.stage, settled = excluded.settled,"
            " error = NULL, updated_at = excluded.updated_at",
            (torrent_id, now, because, int(resume), json.dumps(steps), stage, int(settled), now),
        )


def update_hold(cat, torrent_id: str, **fields) -> None:
    allowed = {"because", "resume", "steps", "stage", "settled", "error"}
    sets, params = [], []
    for key, value in fields.items():
        if key not in allowed:
            raise ValueError(key)
        if key == "steps":
            value = json.dumps(value)
        elif key in ("resume", "settled"):
            value = int(value)
        sets.append(f"{key} = ?")
        params.append(value)
    with cat.tx() as db:
        db.execute(f"UPDATE holds SET {', '.join(sets)}, updated_at = ? WHERE torrent_id = ?",
                   (*params, now_iso(), torrent_id))


def drop_hold(cat, torrent_id: str) -> None:
    with cat.tx() as db:
        db.execute("DELETE FROM holds WHERE torrent_id = ?", (torrent_id,))


def user_stop(cat, torrent_id: str, operator: str = "", note: str = "") -> None:
    with cat.tx() as db:
        db.execute("INSERT INTO user_stops VALUES (?, ?, ?, ?) ON CONFLICT(torrent_id) DO NOTHING",
                   (torrent_id, now_iso(), operator, note))


def user_start(cat, torrent_id: str) -> None:
    with cat.tx() as db:
        db.execute("DELETE FROM user_stops WHERE torrent_id = ?", (torrent_id,))


def user_stops(cat) -> dict[str, sqlite3.Row]:
    mine, keys = not_elsewhere(cat)
    return {r["torrent_id"]: r for r in cat.query(f"SELECT * FROM user_stops WHERE {mine}", keys)}


def is_user_stopped(cat, torrent_id: str) -> bool:
    return cat.one("SELECT 1 FROM user_stops WHERE torrent_id = ?", (torrent_id,)) is not None


def add_lease_snapshot(cat, lease_id: str, torrent_id: str, snapshot_id: str | None, note: str = "") -> None:
    with cat.tx() as db:
        db.execute("INSERT OR REPLACE INTO lease_snapshots VALUES (?, ?, ?, ?)", (lease_id, torrent_id, snapshot_id, note))


def lease_snapshots(cat, lease_id: str | None = None, torrent_id: str | None = None) -> list[sqlite3.Row]:
    where, params = [], []
    if lease_id:
        where.append("lease_id = ?")
        params.append(lease_id)
    if torrent_id:
        where.append("torrent_id = ?")
        params.append(torrent_id)
    sql = "SELECT * FROM lease_snapshots" + (" WHERE " + " AND ".join(where) if where else "")
    return cat.query(sql + " ORDER BY rowid", tuple(params))


def watched_files(cat, states, *, after: tuple | None = None, limit: int = 0) -> list[sqlite3.Row]:
    """The cataloged payload files of torrents in these states, with the torrent's save path, in
    (torrent, file) order: all of them (start-up reconciliation), or `limit` after `after` (the
    rolling stat sweep)."""
    marks = ",".join("?" * len(states))
    mine, keys = own(cat, "t")
    params = [*states, *keys]
    where = ""
    if after is not None:
        where = " AND (f.torrent_id > ? OR (f.torrent_id = ? AND f.file_index > ?))"
        params += [after[0], after[0], after[1]]
    sql = (f"""SELECT f.torrent_id, f.file_index, f.path, f.size, f.mtime_ns, f.inode, f.device, f.nlink, t.save_path
            FROM files f JOIN torrents t ON t.id = f.torrent_id
            WHERE t.protection IN ({marks}) AND {mine} AND t.removed_at IS NULL AND t.save_path IS NOT NULL{where}
            ORDER BY f.torrent_id, f.file_index""")
    if limit:
        sql += " LIMIT ?"
        params.append(limit)
    return cat.query(sql, tuple(params))


def set_nlink(cat, torrent_id: str, file_index: int, nlink: int) -> None:
    """A link count change (a hard link made or removed): the file's bytes, size, mtime and
    inode are what the last verification saw; the trusted-snapshot stat (ctime) no longer
    matches, so a snapshot hashes the file again."""
    with cat.tx() as db:
        db.execute("UPDATE files SET nlink = ? WHERE torrent_id = ? AND file_index = ?", (nlink, torrent_id, file_index))


def hardlinked(cat) -> dict[str, list[str]]:
    """torrent id -> paths of its files that have other hard links."""
    out: dict[str, list[str]] = {}
    mine, keys = not_elsewhere(cat)
    for r in cat.query(f"SELECT torrent_id, path FROM files WHERE nlink > 1 AND {mine} ORDER BY torrent_id, file_index",
                       keys):
        out.setdefault(r["torrent_id"], []).append(r["path"])
    return out


def hardlinked_of(cat, torrent_ids) -> dict[str, list[str]]:
    """hardlinked() for these torrents only."""
    ids = list(torrent_ids)
    out: dict[str, list[str]] = {}
    for at in range(0, len(ids), 500):
        part = ids[at:at + 500]
        marks = ",".join("?" * len(part))
        for r in cat.query(f"SELECT torrent_id, path FROM files WHERE nlink > 1 AND torrent_id IN ({marks})"
                           " ORDER BY torrent_id, file_index", tuple(part)):
            out.setdefault(r["torrent_id"], []).append(r["path"])
    return out


def interrupted_heals(cat) -> list[sqlite3.Row]:
    mine, keys = not_elsewhere(cat)
    return cat.query(f"SELECT * FROM heals WHERE outcome = 'running' AND {mine} ORDER BY id", keys)


def finish_interrupted_heals(cat, error: str) -> int:
    mine, keys = not_elsewhere(cat)
    with cat.tx() as db:
        cur = db.execute("UPDATE heals SET outcome = 'interrupted', finished_at = ?, error = ? WHERE outcome = 'running'"
                         f" AND {mine}", (now_iso(), error, *keys))
        return cur.rowcount


def status_fields(cat) -> dict[str, dict]:
    """Per torrent, what `status` says from the catalog alone: "stopped" ({by, since, because}:
    a hold of seedward's, or the user's own stop) and "hardlinked" (paths with other links)."""
    out: dict[str, dict] = {}
    for tid, paths in hardlinked(cat).items():
        out.setdefault(tid, {})["hardlinked"] = paths
    for tid, row in user_stops(cat).items():
        why = "seedward stop" + (f" ({row['operator']})" if row["operator"] else "")
        out.setdefault(tid, {})["stopped"] = {"by": "user", "since": row["since"], "because": why}
    for tid, hold in holds(cat).items():
        out.setdefault(tid, {})["stopped"] = {"by": "seedward", "since": hold["since"], "because": hold["because"],
                                              "steps": hold["steps"], "resume": hold["resume"], "error": hold["error"]}
    return out


migration(
    1202,
    """
-- the few files with other hard links, found without reading every files row (status, invariants)
CREATE INDEX files_linked ON files(torrent_id, file_index) WHERE nlink > 1;
-- what changed since the drift monitor's last look (it follows the catalog incrementally)
CREATE INDEX torrents_updated ON torrents(updated_at);
""",
)


def torrents_changed(cat, since: str) -> list[sqlite3.Row]:
    """This service's torrents (removed ones too) whose row changed at or after `since` (ISO time)."""
    keys = set(owners(cat))  # (filtered here: the planner would rather walk the owner index than updated_at's)
    return [r for r in cat.query("SELECT * FROM torrents WHERE updated_at >= ? ORDER BY updated_at", (since,))
            if (r["owner"] if "owner" in r.keys() else "") in keys]


def torrent_states(cat) -> list[sqlite3.Row]:
    """id, protection, category, tags, save_path and torrent_file of this service's torrents (not
    removed): the columns the invariant checks and the monitor's full refresh read, nothing more."""
    mine, keys = own(cat)
    return cat.query(f"SELECT id, protection, category, tags, save_path, torrent_file, updated_at FROM torrents"
                     f" WHERE removed_at IS NULL AND {mine}", keys)
