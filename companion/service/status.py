"""The `seedward status --json` object: the catalog, plus live qBittorrent data when the service runs."""

from ..catalog.queue import pending_jobs


def torrent_entry(row, live: dict | None, jobs: dict, extras: dict | None = None) -> dict:
    extras = extras or {}
    return {
        "id": row["id"],
        "info_hash_v1": row["info_hash_v1"],
        "info_hash_v2": row["info_hash_v2"],
        "name": row["name"],
        "size": row["payload_size"],
        "qbt_state": (live or {}).get("state") or row["qbt_state"] or None,
        "protection": row["protection"],
        "last_verified": row["last_verified"],
        "save_path": (live or {}).get("save_path") or row["save_path"],
        "category": row["category"],
        "kind": row["kind"],
        "policy": row["policy"] or None,
        "removed_at": row["removed_at"],
        "jobs": jobs.get(row["id"], []),
        "snapshot": extras.get("snapshot", {}).get(row["id"]),
        "last_drill": extras.get("drill", {}).get(row["id"]),
        **_swarm(live),
    }


def _latest(catalog) -> dict:
    """Newest snapshot (and whether a failed drill or store check made it suspect) and newest
    finished drill of every torrent, in three queries."""
    snaps = catalog.query(
        "SELECT torrent_id, id, created_at, reason, COUNT(*) OVER (PARTITION BY torrent_id) AS n,"
        " ROW_NUMBER() OVER (PARTITION BY torrent_id ORDER BY created_at DESC, id DESC) AS k FROM snapshots")
    drills = catalog.query(
        "SELECT torrent_id, state, finished_at, rto_seconds,"
        " ROW_NUMBER() OVER (PARTITION BY torrent_id ORDER BY started_at DESC, rowid DESC) AS k"
        " FROM drills WHERE state != 'running'")
    suspect = {r["snapshot_id"] for r in catalog.query("SELECT snapshot_id FROM suspect_snapshots")}
    return {
        "snapshot": {r["torrent_id"]: {"id": r["id"], "created_at": r["created_at"], "reason": r["reason"],
                                       "count": r["n"], "suspect": r["id"] in suspect} for r in snaps if r["k"] == 1},
        "drill": {r["torrent_id"]: {"ok": r["state"] == "passed", "at": r["finished_at"],
                                    "rto_seconds": r["rto_seconds"]} for r in drills if r["k"] == 1},
    }


def _swarm(live: dict | None) -> dict:
    if not live:
        return {}
    return {"seeds": live.get("num_seeds"), "peers": live.get("num_leechs"), "progress": live.get("progress")}


def live_entry(h: str, t: dict, jobs: dict) -> dict:
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
        **_swarm(t),
    }


def torrents(catalog, live: dict | None = None) -> list[dict]:
    jobs: dict[str, list] = {}
    for j in pending_jobs(catalog):
        if j["torrent_id"]:
            jobs.setdefault(j["torrent_id"], []).append({"id": j["id"], "kind": j["kind"], "state": j["state"]})
    out = []
    known = set()
    extras = _latest(catalog)
    for row in catalog.list_torrents(include_removed=True):
        known.add(row["id"])
        out.append(torrent_entry(row, (live or {}).get(row["id"]), jobs, extras))
    for h, t in sorted((live or {}).items(), key=lambda kv: kv[1].get("name", "")):
        if h not in known:
            out.append(live_entry(h, t, jobs))
    return out


def queue_counts(catalog) -> dict:
    rows = catalog.query("SELECT state, COUNT(*) AS n FROM queue WHERE state IN ('queued', 'running') GROUP BY state")
    counts = {"queued": 0, "running": 0}
    counts.update({r["state"]: r["n"] for r in rows})
    return counts


def offline_status(home, catalog) -> dict:
    """Status without a running service: what the catalog knows."""
    return {
        "service": {"running": False, "home": str(home.root), "queue": queue_counts(catalog)},
        "torrents": torrents(catalog),
    }
