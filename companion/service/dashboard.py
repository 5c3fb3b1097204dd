"""The `dashboard` op: the status object as the TUI's dashboard needs it, a third of its size.

Every torrent is one array of plain values, in the order `fields` names (no repeated keys, no
nested objects, no field the dashboard does not show), so 20,000 torrents encode, cross the
socket and decode in a fraction of `status`'s time. The service part and the library's
continuity are `status`'s own. `seedward status --json` keeps the full object.
"""

FIELDS = ("id", "name", "size", "protection", "qbt_state", "info_hash_v1", "info_hash_v2", "seeds", "peers",
          "last_verified", "snapshot_at", "snapshot_suspect", "drill_ok", "drill_rto", "drill_at", "drift_alerts",
          "companions", "parity", "jobs", "continuity", "stopped_by", "stopped_since", "stopped_because",
          "heal_outcome", "heal_at", "coverage", "hardlinked")
CONTINUITY = ("intact_share", "interruptions", "median_heal_seconds", "longest_outage_seconds", "last_incident",
              "watched_seconds")


def compact(status: dict) -> dict:
    shared: dict = {}  # quiet torrents share one continuity object: its array is made once
    return {"service": status.get("service", {}), "continuity": status.get("continuity"), "fields": FIELDS,
            "window": (status.get("continuity") or {}).get("window", "7d"),
            "rows": [row(t, shared) for t in status.get("torrents", [])]}


def _continuity(cont, shared: dict) -> list | None:
    if not isinstance(cont, dict):
        return None
    found = shared.get(id(cont))
    if found is None:
        found = shared[id(cont)] = [cont.get(k) for k in CONTINUITY]
    return found


def row(t: dict, shared: dict | None = None) -> list:
    snap = t.get("snapshot") or t.get("last_snapshot") or {}
    drill = t.get("last_drill") or {}
    companions = t.get("companions") if isinstance(t.get("companions"), list) else None
    flags = [c.get("parity") for c in companions or () if isinstance(c, dict) and c.get("parity") is not None]
    cont = t.get("continuity")
    stopped = t.get("stopped") or {}
    heal = t.get("last_heal") or {}
    cover = t.get("coverage") or {}
    return [
        t["id"], t.get("name") or t["id"], t.get("size") or 0, t.get("protection") or "pending", t.get("qbt_state") or "",
        t.get("info_hash_v1") if t.get("info_hash_v1") != t["id"] else 1,  # 1: the same as the id (most torrents)
        t.get("info_hash_v2"), t.get("seeds"), t.get("peers"), t.get("last_verified"),
        snap.get("created_at"), bool(snap.get("suspect")),
        drill.get("ok"), drill.get("rto_seconds"), drill.get("at") or drill.get("finished_at"),
        t.get("drift_alerts"), None if companions is None else len(companions), any(flags) if flags else None,
        [[j.get("id"), j.get("kind"), j.get("state")] for j in t.get("jobs") or ()],
        _continuity(cont, {} if shared is None else shared),
        stopped.get("by"), stopped.get("since"), stopped.get("because"),
        heal.get("outcome"), heal.get("finished_at") or heal.get("started_at"),
        [cover.get("survives"), cover.get("of"), sorted(k for k, tiers in (cover.get("classes") or {}).items() if not tiers)]
        if cover.get("of") else None,
        t.get("hardlinked") or None,  # its files with other hard links
    ]
