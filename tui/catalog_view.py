"""Read-only views of the catalog for what the control socket does not carry (per-torrent detail, jobs).

Opened with SQLite's `mode=ro`: the service stays the only writer. Called from thread workers only.
Tables added by later features (snapshots, drills, companions, jobs) are read when they exist.
"""

import json
import logging
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from .model import parse_status

log = logging.getLogger(__name__)


# The dashboard's "Drift" column counts drift responses this recent.
DRIFT_ALERT_DAYS = 30


def complete_status(raw: dict, catalog: "CatalogView", now: datetime):
    """(off the UI thread) The service's status, completed from the catalog where it leaves fields out."""
    since = (now - timedelta(days=DRIFT_ALERT_DAYS)).isoformat(timespec="milliseconds")
    try:
        extra = catalog.summaries(since)
        service = catalog.service_summary()
    except sqlite3.Error as exc:  # a catalog mid-migration: show what the service says
        log.debug("catalog summaries unavailable: %s", exc)
        extra, service = {}, {}
    if service:
        svc = dict(raw.get("service") or {})
        for key, value in service.items():
            if svc.get(key) is None:
                svc[key] = value
        raw = {**raw, "service": svc}
    return parse_status(raw, extra)


@dataclass
class Detail:
    files: list[dict] = field(default_factory=list)
    pieces: str = ""
    events: list[dict] = field(default_factory=list)
    snapshots: list[dict] = field(default_factory=list)
    drills: list[dict] = field(default_factory=list)
    companions: list[dict] = field(default_factory=list)


class CatalogView:
    # The store's totals read every chunk record: recomputed at most this often.
    SERVICE_SUMMARY_SECONDS = 60.0

    def __init__(self, path: Path):
        self.path = Path(path)
        self._service_summary: tuple[float, dict] | None = None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
        db.row_factory = sqlite3.Row
        return db

    def available(self) -> bool:
        return self.path.exists()

    def detail(self, torrent_id: str, protection: str = "") -> Detail:
        if not self.available():
            return Detail()
        with self._connect() as db:
            tables = _tables(db)
            out = Detail()
            if "files" in tables:
                out.files = _rows(db, "SELECT file_index, path, size, status FROM files WHERE torrent_id = ?"
                                      " ORDER BY file_index", (torrent_id,))
            out.pieces = _pieces(db, torrent_id, protection) if "pieces" in tables else ""
            if "events" in tables:
                out.events = _rows(db, "SELECT id, at, kind, level, message FROM events WHERE torrent_id = ?"
                                       " ORDER BY id DESC LIMIT 100", (torrent_id,))
            for name in ("snapshots", "drills"):
                if name in tables and "torrent_id" in _columns(db, name):
                    setattr(out, name, _rows(db, f"SELECT * FROM {name} WHERE torrent_id = ?"
                                                 " ORDER BY rowid DESC LIMIT 50", (torrent_id,)))
            for row in out.drills:
                if "ok" not in row:
                    row["ok"] = None if row.get("state") == "running" else row.get("state") == "passed"
            if "companions" in tables and "original_id" in _columns(db, "companions"):
                # a companion's provenance: the AI job (model, version, operator) that made it
                join = "jobs" in tables and "model_name" in _columns(db, "jobs")
                out.companions = _rows(db, (
                    "SELECT c.*, j.model_name AS model, j.model_version, j.operator FROM companions c"
                    " LEFT JOIN jobs j ON j.id = c.job_id" if join else "SELECT c.* FROM companions c")
                    + " WHERE c.original_id = ? ORDER BY c.created_at DESC", (torrent_id,))
                for row in out.companions:
                    row["parity"] = bool(row.get("parity_at"))
                    row["provenance"] = {"model": row.get("model"), "model_version": row.get("model_version")}
            return out

    def offline_status(self) -> dict:
        """A status object from the catalog alone (the service is not running)."""
        out = {"service": {"running": False}, "torrents": []}
        if not self.available():
            return out
        with self._connect() as db:
            if "torrents" not in _tables(db):
                return out
            for r in db.execute("SELECT * FROM torrents ORDER BY name, id"):
                out["torrents"].append({
                    "id": r["id"], "info_hash_v1": r["info_hash_v1"], "info_hash_v2": r["info_hash_v2"],
                    "name": r["name"], "size": r["payload_size"], "qbt_state": r["qbt_state"] or None,
                    "protection": r["protection"], "last_verified": r["last_verified"]})
        return out

    def summaries(self, since: str) -> dict[str, dict]:
        """Per torrent, what later features record but the status may not carry yet: latest snapshot,
        latest finished drill, companion torrents (with parity), drift responses since `since`."""
        if not self.available():
            return {}
        out: dict[str, dict] = {}
        with self._connect() as db:
            tables = _tables(db)
            if "snapshots" in tables:
                for tid, at in db.execute("SELECT torrent_id, MAX(created_at) FROM snapshots GROUP BY torrent_id"):
                    out.setdefault(tid, {})["last_snapshot"] = at
            if "drills" in tables and {"state", "rto_seconds", "finished_at"} <= _columns(db, "drills"):
                for tid, state, rto, at in db.execute(
                        "SELECT torrent_id, state, rto_seconds, MAX(finished_at) FROM drills"
                        " WHERE finished_at IS NOT NULL GROUP BY torrent_id"):
                    out.setdefault(tid, {})["last_drill"] = {"ok": state == "passed", "rto_seconds": rto,
                                                             "finished_at": at}
            if "companions" in tables and {"original_id", "parity_at"} <= _columns(db, "companions"):
                for tid, parity_at in db.execute("SELECT original_id, parity_at FROM companions"):
                    out.setdefault(tid, {}).setdefault("companions", []).append({"parity": bool(parity_at)})
            if "heals" in tables:
                out["*"] = {"drift_alerts": 0}  # drift is watched: no response recorded means none
                for tid, n in db.execute("SELECT torrent_id, COUNT(*) FROM heals WHERE started_at >= ?"
                                         " GROUP BY torrent_id", (since,)):
                    out.setdefault(tid, {})["drift_alerts"] = n
        return out

    def service_summary(self) -> dict:
        """Store bytes (distinct chunks) and logical bytes of the kept snapshots, and the last scrub."""
        now = time.monotonic()
        if self._service_summary and now - self._service_summary[0] < self.SERVICE_SUMMARY_SECONDS:
            return self._service_summary[1]
        out: dict = {}
        if self.available():
            with self._connect() as db:
                tables = _tables(db)
                if "snapshot_chunks" in tables:
                    logical = db.execute("SELECT SUM(length) FROM snapshot_chunks").fetchone()[0]
                    stored = db.execute("SELECT SUM(length) FROM (SELECT MAX(length) AS length FROM snapshot_chunks"
                                        " GROUP BY chunk_id)").fetchone()[0]
                    if stored:
                        out["store"] = {"bytes": stored, "logical_bytes": logical}
                if "file_checks" in tables:
                    scrub = db.execute("SELECT MAX(verified_at) FROM file_checks WHERE reason = 'scrub'").fetchone()[0]
                    if scrub:
                        out["last_scrub"] = scrub
        self._service_summary = (now, out)
        return out

    def pieces(self, torrent_id: str, protection: str = "") -> str:
        if not self.available():
            return ""
        with self._connect() as db:
            return _pieces(db, torrent_id, protection) if "pieces" in _tables(db) else ""

    def jobs(self) -> tuple[list[dict], list[dict]]:
        """(AI jobs newest first, the service's work queue newest first)."""
        if not self.available():
            return [], []
        with self._connect() as db:
            tables = _tables(db)
            ai = []
            if "jobs" in tables and "model_name" in _columns(db, "jobs"):
                outputs = "(SELECT COUNT(*) FROM job_outputs o WHERE o.job_id = j.id)" \
                    if "job_outputs" in tables else "NULL"
                companion = "(SELECT c.id FROM companions c WHERE c.job_id = j.id LIMIT 1)" \
                    if "companions" in tables else "NULL"
                ai = _rows(db, f"SELECT j.id, j.torrent_id, j.state, j.model_name AS model, j.model_version,"
                               f" j.operator, j.created_at, j.started_at, j.ended_at AS finished_at,"
                               f" {outputs} AS outputs, {companion} AS companion"
                               f" FROM jobs j ORDER BY j.created_at DESC LIMIT 500")
            queue = _rows(db, "SELECT id, kind, torrent_id, state, attempts, created_at, updated_at, error"
                              " FROM queue ORDER BY id DESC LIMIT 500") if "queue" in tables else []
            return ai, queue


def _tables(db) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _columns(db, table: str) -> set[str]:
    return {r[1] for r in db.execute(f"PRAGMA table_info({table})")}


def _rows(db, sql: str, params=()) -> list[dict]:
    out = []
    for row in db.execute(sql, params):
        item = dict(row)
        for key, value in item.items():
            if isinstance(value, str) and value[:1] in "[{" and key in ("detail", "provenance", "payload"):
                try:
                    item[key] = json.loads(value)
                except ValueError:
                    pass
        out.append(item)
    return out


def _pieces(db, torrent_id: str, protection: str) -> str:
    row = db.execute("SELECT num_pieces FROM torrents WHERE id = ?", (torrent_id,)).fetchone()
    if row is None:
        return ""
    bad = "h" if protection == "healing" else "d"
    cells = ["u"] * row["num_pieces"]
    for piece, ok in db.execute("SELECT piece, ok FROM pieces WHERE torrent_id = ?", (torrent_id,)):
        if 0 <= piece < len(cells):
            cells[piece] = "o" if ok else bad
    # drift found since the last full verify: the latest response says which pieces, and where it stands
    if "heals" in _tables(db):
        heal = db.execute("SELECT pieces, outcome FROM heals WHERE torrent_id = ? ORDER BY id DESC LIMIT 1",
                          (torrent_id,)).fetchone()
        if heal is not None and heal["outcome"] != "healed":
            mark = "h" if heal["outcome"] == "running" and protection == "healing" else "d"
            try:
                pieces = json.loads(heal["pieces"] or "[]")
            except ValueError:
                pieces = []
            for piece in pieces:
                if isinstance(piece, int) and 0 <= piece < len(cells):
                    cells[piece] = mark
    return "".join(cells)
