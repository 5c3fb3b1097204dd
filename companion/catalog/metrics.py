"""The figures the Prometheus endpoint exports, read from the catalog (reads only)."""

from .content import stored_bytes  # content chunks: one copy of a file, whatever torrents seed it
from .drills import last_drill_per_torrent
from .jobs import STORED_OUTPUTS


def torrents_by_state(cat) -> list[tuple[str, int, int]]:
    """(state, torrents, payload bytes); removed torrents count as `removed`; a job's stored,
    unpublished outputs are not a torrent (never `pending`)."""
    rows = cat.query("SELECT CASE WHEN removed_at IS NULL THEN protection ELSE 'removed' END AS state,"
                     " COUNT(*) AS n, COALESCE(SUM(payload_size), 0) AS bytes FROM torrents"
                     f" WHERE id NOT IN ({STORED_OUTPUTS}) GROUP BY state")
    return [(r["state"], r["n"], r["bytes"]) for r in rows]


def snapshot_protected_bytes(cat) -> int:
    """Payload bytes of protected torrents that have at least one snapshot."""
    row = cat.one("SELECT COALESCE(SUM(payload_size), 0) AS b FROM torrents t WHERE t.protection = 'protected'"
                  " AND t.removed_at IS NULL AND EXISTS (SELECT 1 FROM snapshots s WHERE s.torrent_id = t.id)")
    return row["b"]


def zones_protected_bytes(cat) -> tuple[int, int]:
    """(payload bytes of protected torrents with kept zones, bytes of the zones kept)."""
    row = cat.one("SELECT COALESCE(SUM(payload_size), 0) AS b FROM torrents t WHERE t.protection = 'protected'"
                  " AND t.removed_at IS NULL AND EXISTS (SELECT 1 FROM zones z WHERE z.torrent_id = t.id)")
    kept = cat.one("SELECT COALESCE(SUM(length), 0) AS n FROM zones")
    return row["b"], kept["n"]


def archive_bytes_by_tier(cat) -> list[tuple[str, int, int, int]]:
    """(tier, uploaded sets, payload bytes archived, bytes on the remote) of the uploaded sets."""
    rows = cat.query("SELECT tier, COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b, COALESCE(SUM(archive_bytes), 0) AS ab"
                     " FROM archive_sets WHERE state = 'uploaded' GROUP BY tier")
    return [(r["tier"], r["n"], r["b"], r["ab"]) for r in rows]


def heal_counts(cat) -> list[tuple[str, str, int]]:
    """(outcome, source, finished responses to drift)."""
    rows = cat.query("SELECT outcome, source, COUNT(*) AS n FROM heals WHERE finished_at IS NOT NULL"
                     " GROUP BY outcome, source")
    return [(r["outcome"], r["source"] or "none", r["n"]) for r in rows]


def _histogram(cat, value_sql: str, where: str, bounds) -> tuple[list[int], int, float]:
    cases = ", ".join(f"SUM(CASE WHEN v <= {float(b)!r} THEN 1 ELSE 0 END)" for b in bounds)
    row = cat.query(f"SELECT {cases}, COUNT(v), COALESCE(SUM(v), 0) FROM"
                    f" (SELECT {value_sql} AS v FROM heals WHERE {where}) WHERE v IS NOT NULL")[0]
    values = list(row)
    return [int(v or 0) for v in values[:len(bounds)]], int(values[len(bounds)] or 0), float(values[-1] or 0)


def heal_durations(cat, bounds) -> tuple[list[int], int, float]:
    """Cumulative bucket counts, count and sum of the healed responses' seconds from detection to healed."""
    return _histogram(cat, "json_extract(timings, '$.total')", "outcome = 'healed'", bounds)


def detection_latencies(cat, bounds) -> tuple[list[int], int, float]:
    """Seconds from a file's first change event to drift confirmed (debounce and quick verify):
    `total - respond` of each response's timings."""
    return _histogram(cat, "json_extract(timings, '$.total') - json_extract(timings, '$.respond')",
                      "finished_at IS NOT NULL AND json_extract(timings, '$.respond') IS NOT NULL", bounds)


def store_usage(cat) -> tuple[int, int, int]:
    """(snapshots, logical payload bytes they hold, bytes of the distinct chunks they use)."""
    row = cat.one("SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b FROM snapshots")
    return row["n"], row["b"], stored_bytes(cat)["bytes"]


def last_drills(cat) -> list[dict]:
    """The newest finished drill of each torrent, with the torrent's name."""
    names = {r["id"]: r["name"] for r in cat.query("SELECT id, name FROM torrents")}
    return [{"torrent_id": r["torrent_id"], "name": names.get(r["torrent_id"], ""), "state": r["state"],
             "finished_at": r["finished_at"] or r["started_at"], "rto_seconds": r["rto_seconds"]}
            for r in last_drill_per_torrent(cat)]


def queue_counts(cat) -> dict[str, int]:
    return {r["state"]: r["n"] for r in cat.query("SELECT state, COUNT(*) AS n FROM queue GROUP BY state")}
