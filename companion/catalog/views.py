"""Read-only views of the catalog: what `status`, the TUI's screens and the CLI's listings show.

The one query module for reads. The service answers its control ops with these functions; with
no service running, the CLI calls them itself, and hands the TUI a `ReadOnly` connection's worth
(the TUI never imports the catalog). Every function takes a Catalog or a ReadOnly and never writes.

Just over 400 lines on purpose: it is the one read module (no SQL elsewhere for reads), so every
listing's query sits here; the job history and snapshot listings are the first to move out if it grows.
"""

import json
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .db import Catalog, CatalogError, is_url
from .fleet import fleet as fleet_members
from .fleet import own, owners
from .content import stored_bytes  # content chunks: one copy of a file, whatever torrents seed it
from . import trust
from .jobs import stored_outputs
from .queue import pending_jobs

# A torrent's drift_alerts counts its drift responses this recent.
DRIFT_ALERT_DAYS = 30
DETAIL_ROWS = 100  # events of one torrent in its detail; snapshots and drills: half
HISTORY_ROWS = 500  # AI jobs and queue rows in the job history


class ReadOnly:
    """The catalog opened read-only (SQLite `mode=ro`): no migration runs, nothing can be written.
    Has `query` and `one` like Catalog, so every view below takes either."""

    def __init__(self, path: Path):
        self.lock = threading.RLock()
        if is_url(path):  # a shared catalog on PostgreSQL: a read-only session (fleet)
            self.path, self.db = path, Catalog(path, readonly=True)
            return
        self.path = Path(path)
        if not self.path.exists():
            raise CatalogError(self.path, "no catalog yet")
        try:
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5, check_same_thread=False)
        except sqlite3.Error as exc:
            raise CatalogError(self.path, str(exc)) from exc
        self.db.row_factory = sqlite3.Row

    def query(self, sql: str, params=()) -> list[sqlite3.Row]:
        if isinstance(self.db, Catalog):
            return self.db.query(sql, params)
        with self.lock:
            try:
                return self.db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:  # busy, or an older catalog no service has migrated yet
                raise CatalogError(self.path, str(exc)) from exc

    def one(self, sql: str, params=()) -> sqlite3.Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    @contextmanager
    def snapshot(self):
        """Queries inside see one point in time (a read transaction; on a database server, each
        query is its own)."""
        with self.lock:
            if isinstance(self.db, Catalog):
                yield self
                return
            self.db.execute("BEGIN")
            try:
                yield self
            finally:
                self.db.execute("COMMIT")

    def close(self) -> None:
        with self.lock:
            self.db.close()


# -- status -------------------------------------------------------------------------------

def torrent_entries(cat, live: dict | None = None, now: datetime | None = None) -> list[dict]:
    """Every torrent of `seedward status --json`: the catalog's, overlaid with qBittorrent's live
    data (`live`: hash -> qBittorrent's fields), then the ones qBittorrent has and the catalog not yet."""
    return with_live(catalog_entries(cat, now), live or {}, set(owners(cat)))


class Entries(list):
    """The catalog's part of the status entries (what stays true until the catalog changes), with
    the pending jobs by torrent and the torrents that are only the store's record of job outputs."""

    jobs: dict
    outputs: set


def catalog_entries(cat, now: datetime | None = None) -> Entries:
    jobs: dict[str, list] = {}
    for j in pending_jobs(cat):
        if j["torrent_id"]:
            entry = {"id": j["id"], "kind": j["kind"], "state": j["state"]}
            if j["state"] == "queued" and j["not_before"]:  # put back: what it needs is out (jobs.py)
                entry.update(state="waiting", until=j["not_before"], why=j["error"])
            jobs.setdefault(j["torrent_id"], []).append(entry)
    extras = _latest(cat, now or datetime.now(timezone.utc))
    snapshot, drill, drift, companions = extras["snapshot"], extras["drill"], extras["drift"], extras["companions"]
    heal, bad_files = extras["heal"], extras["bad_files"]
    held = trust.status_fields(cat)  # seedward's holds and the user's stops; hard-linked files
    out = Entries()
    out.jobs, out.outputs = jobs, extras["job_outputs"]
    # Positional columns, not Row lookups by name: at 100,000 torrents that is seconds.
    for (tid, v1, v2, name, size, qbt_state, protection, verified, save_path, category, kind, policy,
         removed_at, owner, instance) in cat.query(f"SELECT {ENTRY_COLUMNS} FROM torrents ORDER BY name, id"):
        if protection == "protected" and tid in bad_files:
            # a file's last verdict is not ok: the torrent cannot be shown protected (the state must be true)
            protection = "damaged"
        out.append({
            "id": tid, "info_hash_v1": v1, "info_hash_v2": v2, "name": name, "size": size,
            "qbt_state": qbt_state or None, "protection": protection,
            "last_verified": verified, "save_path": save_path,
            "category": category, "kind": kind, "policy": policy or None, "removed_at": removed_at,
            "owner": owner,  # the service (host) whose qBittorrent has it; "" on a one-host catalog
            "instance": instance,  # this service's qBittorrent instance holding it ("": the only one)
            "jobs": jobs.get(tid, []), "snapshot": snapshot.get(tid), "last_drill": drill.get(tid),
            "drift_alerts": drift.get(tid, 0), "companions": companions.get(tid, []),
            "last_heal": heal.get(tid), "files_not_ok": bad_files.get(tid, 0),
            "stopped": held.get(tid, {}).get("stopped"), "hardlinked": held.get(tid, {}).get("hardlinked", []),
        })
    return out


def with_live(entries: Entries, live: dict, mine: set) -> list[dict]:
    """The entries (copies: `entries` stays as it was, so it can be kept) overlaid with qBittorrent's
    live fields, then the torrents qBittorrent has and the catalog not yet."""
    out, known = [], set()
    for cat_entry in entries:
        tid = cat_entry["id"]
        known.add(tid)
        # a shared catalog: this host's qBittorrent says nothing about another host's torrent
        here = live.get(tid) if cat_entry["owner"] in mine else None
        if tid in entries.outputs and not here and not cat_entry["qbt_state"]:
            continue  # the store's record of a job's outputs, never in qBittorrent: not a torrent anyone seeds
        entry = dict(cat_entry)
        if here:
            entry["qbt_state"] = here.get("state") or entry["qbt_state"]
            entry["save_path"] = here.get("save_path") or entry["save_path"]
            entry.update(_swarm(here))
        out.append(entry)
    for h, t in sorted(live.items(), key=lambda kv: kv[1].get("name", "")):
        if h not in known:
            out.append(_live_entry(h, t, entries.jobs))
    return out


def data_version(cat) -> int | None:
    """SQLite's count of commits by other connections (None where there is no such count): the
    same number means the catalog is as it was, so what was read from it still holds."""
    if not isinstance(cat, ReadOnly) or isinstance(cat.db, Catalog):
        return None
    return cat.one("PRAGMA data_version")[0]


ENTRY_COLUMNS = ("id, info_hash_v1, info_hash_v2, name, payload_size, qbt_state, protection, last_verified, save_path,"
                 " category, kind, policy, removed_at, owner, instance")


def _live_entry(h: str, t: dict, jobs: dict) -> dict:
    """A torrent qBittorrent has that the catalog does not know yet."""
    return {
        "id": h,
        "info_hash_v1": t.get("infohash_v1") or None,
        "info_hash_v2": t.get("infohash_v2") or None,
        "name": t.get("name", ""),
        "size": t.get("size", 0),
        "qbt_state": t.get("state"),
        "protection": "pending",
        "last_verified": None,
        "save_path": t.get("save_path"),
        "category": t.get("category", ""),
        "kind": None,
        "policy": None,
        "removed_at": None,
        "jobs": jobs.get(h, []),
        "snapshot": None,
        "last_drill": None,
        "drift_alerts": 0,
        "companions": [],
        **_swarm(t),
    }


def _swarm(live: dict | None) -> dict:
    if not live:
        return {}
    return {"seeds": live.get("num_seeds"), "peers": live.get("num_leechs"), "progress": live.get("progress")}


def _latest(cat, now: datetime) -> dict:
    """Per torrent: newest snapshot (suspect or not), newest finished drill, drift responses of the
    last DRIFT_ALERT_DAYS, companion torrents; one query each."""
    snaps = cat.query(
        "SELECT torrent_id, id, created_at, reason, COUNT(*) OVER (PARTITION BY torrent_id) AS n,"
        " ROW_NUMBER() OVER (PARTITION BY torrent_id ORDER BY created_at DESC, id DESC) AS k FROM snapshots")
    drills = cat.query(
        "SELECT torrent_id, state, finished_at, rto_seconds,"
        " ROW_NUMBER() OVER (PARTITION BY torrent_id ORDER BY started_at DESC, rowid DESC) AS k"
        " FROM drills WHERE state != 'running'")
    suspect = {r["snapshot_id"] for r in cat.query("SELECT snapshot_id FROM suspect_snapshots")}
    since = (now - timedelta(days=DRIFT_ALERT_DAYS)).isoformat(timespec="milliseconds")
    drift = {r["torrent_id"]: r["n"] for r in cat.query(
        "SELECT torrent_id, COUNT(*) AS n FROM heals WHERE started_at >= ? GROUP BY torrent_id", (since,))}
    companions: dict[str, list] = {}
    for r in cat.query("SELECT id, original_id, parity_at FROM companions ORDER BY created_at"):
        companions.setdefault(r["original_id"], []).append({"id": r["id"], "parity": bool(r["parity_at"])})
    heals = cat.query("SELECT torrent_id, outcome, started_at, finished_at FROM (SELECT torrent_id, outcome, started_at,"
                      " finished_at, ROW_NUMBER() OVER (PARTITION BY torrent_id ORDER BY id DESC) AS k FROM heals)"
                      " AS newest WHERE k = 1")
    outputs = stored_outputs(cat)
    return {
        "heal": {r["torrent_id"]: {"outcome": r["outcome"], "started_at": r["started_at"], "finished_at": r["finished_at"]}
                 for r in heals},
        "bad_files": files_not_ok(cat),
        "job_outputs": outputs,
        "snapshot": {r["torrent_id"]: {"id": r["id"], "created_at": r["created_at"], "reason": r["reason"],
                                       "count": r["n"], "suspect": r["id"] in suspect} for r in snaps if r["k"] == 1},
        "drill": {r["torrent_id"]: {"ok": r["state"] == "passed", "at": r["finished_at"],
                                    "rto_seconds": r["rto_seconds"]} for r in drills if r["k"] == 1},
        "drift": drift,
        "companions": companions,
    }


# A file's verdict: its last full scan (files.status), unless a check (file_checks) came after it.
_FILE_VERDICT = """CASE WHEN c.verified_at IS NOT NULL AND (t.last_verified IS NULL OR c.verified_at >= t.last_verified)
                        THEN CASE WHEN c.ok != 0 THEN 'ok' WHEN f.status = 'ok' THEN 'damaged' ELSE f.status END
                        ELSE f.status END"""


def files_not_ok(cat, torrent_id: str | None = None) -> dict[str, int]:
    """torrent id -> files whose last verdict is not ok (missing, size_mismatch, damaged, ...)."""
    where, params = ("AND f.torrent_id = ?", (torrent_id,)) if torrent_id else ("", ())
    rows = cat.query(f"SELECT f.torrent_id, COUNT(*) AS n FROM files f JOIN torrents t ON t.id = f.torrent_id"
                     f" LEFT JOIN file_checks c ON c.torrent_id = f.torrent_id AND c.file_index = f.file_index"
                     f" WHERE ({_FILE_VERDICT}) != 'ok' {where} GROUP BY f.torrent_id", params)
    return {r["torrent_id"]: r["n"] for r in rows}


def queue_counts(cat) -> dict:
    rows = cat.query("SELECT state, COUNT(*) AS n FROM queue WHERE state IN ('queued', 'running') GROUP BY state")
    counts = {"queued": 0, "running": 0}
    counts.update({r["state"]: r["n"] for r in rows})
    return counts


def store_summary(cat) -> dict:
    """Store bytes (distinct chunks) and logical bytes of the kept snapshots, and the last scrub.
    Reads every chunk record: callers cache it."""
    out: dict = {}
    usage = stored_bytes(cat)
    if usage["bytes"]:
        out["store"] = {"bytes": usage["bytes"], "logical_bytes": usage["logical_bytes"]}
    scrub = cat.one("SELECT MAX(verified_at) AS at FROM file_checks WHERE reason = 'scrub'")["at"]
    if scrub:
        out["last_scrub"] = scrub
    return out


def offline_status(cat, home_root) -> dict:
    """The status object without a running service: what the catalog knows."""
    return {
        "service": {"running": False, "home": str(home_root), "queue": queue_counts(cat),
                    "fleet": fleet_members(cat)},
        "torrents": torrent_entries(cat),
    }


# -- events, detail, pieces ---------------------------------------------------------------

def events(cat, since: int = 0, limit: int = 500, last: int = 0, torrent_id: str | None = None,
           after: str | None = None) -> list[dict]:
    """Events after `since`, oldest first, at most `limit`; `last`: the newest N instead;
    `after`: only those at or after this ISO time (the catalog's UTC form)."""
    where, params = "id > ?", [since]
    if torrent_id:
        where += " AND torrent_id = ?"
        params.append(torrent_id)
    if after:
        where += " AND at >= ?"
        params.append(after)
    if last > 0:
        rows = cat.query(f"SELECT * FROM events WHERE {where} ORDER BY id DESC LIMIT ?", (*params, last))[::-1]
    else:
        rows = cat.query(f"SELECT * FROM events WHERE {where} ORDER BY id LIMIT ?", (*params, limit))
    return [_decoded(r) for r in rows]


def detail(cat, torrent_id: str) -> dict:
    """One torrent's files, piece map, recent events, snapshots, drills and companions (with the
    AI job that made each: model, version, operator)."""
    row = cat.one("SELECT protection, last_verified FROM torrents WHERE id = ?", (torrent_id,))
    protection = row["protection"] if row else ""
    if protection == "protected" and files_not_ok(cat, torrent_id):
        protection = "damaged"  # as status says it: a file whose last verdict is not ok
    out = {
        "id": torrent_id,
        "protection": protection,
        "last_verified": row["last_verified"] if row else None,
        "files": _rows(cat, f"SELECT f.file_index, f.path, f.size, {_FILE_VERDICT} AS status FROM files f"
                            " JOIN torrents t ON t.id = f.torrent_id LEFT JOIN file_checks c ON c.torrent_id ="
                            " f.torrent_id AND c.file_index = f.file_index WHERE f.torrent_id = ? ORDER BY f.file_index",
                       (torrent_id,)),
        "pieces": pieces(cat, torrent_id, protection),
        "events": _rows(cat, "SELECT id, at, kind, level, message FROM events WHERE torrent_id = ?"
                             " ORDER BY id DESC LIMIT ?", (torrent_id, DETAIL_ROWS)),
        "snapshots": _rows(cat, "SELECT * FROM snapshots WHERE torrent_id = ? ORDER BY rowid DESC LIMIT ?",
                           (torrent_id, DETAIL_ROWS // 2)),
        "drills": _rows(cat, "SELECT * FROM drills WHERE torrent_id = ? ORDER BY rowid DESC LIMIT ?",
                        (torrent_id, DETAIL_ROWS // 2)),
        "companions": _rows(cat, "SELECT c.*, j.model_name AS model, j.model_version, j.operator FROM companions c"
                                 " LEFT JOIN jobs j ON j.id = c.job_id WHERE c.original_id = ?"
                                 " ORDER BY c.created_at DESC", (torrent_id,)),
    }
    for drill in out["drills"]:
        drill["ok"] = None if drill.get("state") == "running" else drill.get("state") == "passed"
    for comp in out["companions"]:
        comp["parity"] = bool(comp.get("parity_at"))
        comp["provenance"] = {"model": comp.get("model"), "model_version": comp.get("model_version")}
    return out


def pieces(cat, torrent_id: str, protection: str = "") -> str:
    """One char per piece: o ok, d damaged, h healing, u unverified. The last full verification,
    overlaid with the latest drift response that has not healed."""
    row = cat.one("SELECT num_pieces FROM torrents WHERE id = ?", (torrent_id,))
    if row is None:
        return ""
    bad = "h" if protection == "healing" else "d"
    cells = ["u"] * row["num_pieces"]
    for r in cat.query("SELECT piece, ok FROM pieces WHERE torrent_id = ?", (torrent_id,)):
        if 0 <= r["piece"] < len(cells):
            cells[r["piece"]] = "o" if r["ok"] else bad
    heal = cat.one("SELECT pieces, outcome FROM heals WHERE torrent_id = ? ORDER BY id DESC LIMIT 1", (torrent_id,))
    if heal is not None and heal["outcome"] != "healed":
        mark = "h" if heal["outcome"] == "running" and protection == "healing" else "d"
        try:
            found = json.loads(heal["pieces"] or "[]")
        except ValueError:
            found = []
        for piece in found:
            if isinstance(piece, int) and 0 <= piece < len(cells):
                cells[piece] = mark
    return "".join(cells)


# -- jobs and runs ------------------------------------------------------------------------

def job_history(cat, limit: int = HISTORY_ROWS) -> dict:
    """AI jobs (with output count and companion) and the service's work queue, newest first."""
    ai = _rows(cat, "SELECT j.id, j.torrent_id, j.state, j.model_name AS model, j.model_version, j.operator,"
                    " j.created_at, j.started_at, j.ended_at AS finished_at,"
                    " (SELECT COUNT(*) FROM job_outputs o WHERE o.job_id = j.id) AS outputs,"
                    " (SELECT c.id FROM companions c WHERE c.job_id = j.id LIMIT 1) AS companion"
                    " FROM jobs j ORDER BY j.created_at DESC LIMIT ?", (limit,))
    queue = _rows(cat, "SELECT id, kind, torrent_id, state, attempts, created_at, updated_at, error, not_before"
                       " FROM queue ORDER BY id DESC LIMIT ?", (limit,))
    for q in queue:
        until = q.pop("not_before")
        if q["state"] == "queued" and until:  # put back to wait for the store (service/jobs.py)
            q.update(state="waiting", until=until)
    return {"ai": ai, "queue": queue}


def ai_jobs(cat, limit: int = 200) -> list[dict]:
    """`seedward jobs`: every AI job, newest first, with its output count."""
    rows = cat.query("SELECT j.*, (SELECT COUNT(*) FROM job_outputs o WHERE o.job_id = j.id) AS outputs"
                     " FROM jobs j ORDER BY j.created_at DESC, j.rowid DESC LIMIT ?", (limit,))
    return [{"id": j["id"], "state": j["state"], "torrent_id": j["torrent_id"], "model": j["model_name"],
             "model_version": j["model_version"], "operator": j["operator"], "created_at": j["created_at"],
             "ended_at": j["ended_at"], "exit_code": j["exit_code"], "tainted": bool(j["tainted"]),
             "outputs": j["outputs"]} for j in rows]


def removed_torrents(cat) -> list:
    """Torrents removed from qBittorrent: (id, removed_at) rows (on a shared catalog: this service's)."""
    if hasattr(cat, "owners"):
        mine, keys = own(cat)
        return cat.query(f"SELECT id, removed_at FROM torrents WHERE removed_at IS NOT NULL AND {mine}", keys)
    return cat.query("SELECT id, removed_at FROM torrents WHERE removed_at IS NOT NULL")


def heal_of_quarantine(cat, folder) -> dict | None:
    """The newest drift response that kept its drifted bytes in `folder`."""
    row = cat.one("SELECT id, outcome, source, snapshot_id, finished_at FROM heals WHERE quarantine = ?"
                  " ORDER BY id DESC LIMIT 1", (str(folder),))
    return dict(row) if row is not None else None


def runs(cat, torrent_id: str, limit: int = 10) -> list[dict]:
    """A torrent's latest verification runs, newest first."""
    return [dict(r) for r in cat.query("SELECT * FROM runs WHERE torrent_id = ? ORDER BY id DESC LIMIT ?",
                                       (torrent_id, limit))]


def _decoded(row) -> dict:
    event = dict(row)
    try:
        event["detail"] = json.loads(event.get("detail") or "{}")
    except ValueError:
        pass
    return event


def _rows(cat, sql: str, params=()) -> list[dict]:
    out = []
    for row in cat.query(sql, params):
        item = dict(row)
        for key in ("detail", "provenance", "payload"):
            value = item.get(key)
            if isinstance(value, str) and value[:1] in "[{":
                try:
                    item[key] = json.loads(value)
                except ValueError:
                    pass
        out.append(item)
    return out


def offline_answer(catalog_path: Path, op: str, fields: dict) -> dict:
    """A read-only control op answered from the catalog itself, for when no service runs (the
    CLI hands this to the TUI). Raises CatalogError when the catalog cannot be read."""
    cat = ReadOnly(catalog_path)
    try:
        if op == "job_history":
            return job_history(cat)
        if op == "detail":
            return detail(cat, fields["id"])
        if op == "events":
            return {"events": events(cat, since=fields.get("since", 0), limit=fields.get("limit") or 500,
                                     last=fields.get("last", 0), torrent_id=fields.get("torrent_id"),
                                     after=fields.get("after"))}
        if op == "jobs":
            return {"jobs": [dict(r) for r in pending_jobs(cat)]}
        raise CatalogError(catalog_path, f"{op!r} needs the running service")
    finally:
        cat.close()
