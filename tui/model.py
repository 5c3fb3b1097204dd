"""What the screens show, built from the service's `status` object (pure: no I/O).

Fields added by later features (snapshots, drills, drift, companions, store, scrub, swarm counts)
are optional: a missing value is None and is shown as "-".
"""

from dataclasses import dataclass, field
from datetime import datetime, timezone

from companion.states import UNPROTECTED

# Severity order: what needs a seeder's eyes first sorts first.
PROTECTION_ORDER = ("damaged", "healing", "baseline_bad", "pending", "protected", "excluded", "removed")

# Glyph + word, so the state reads without color (16-color terminals, color-blind users).
PROTECTION_LABEL = {
    "protected": "✔ protected",
    "damaged": "✖ damaged",
    "healing": "⟳ healing",
    "pending": "… pending",
    "baseline_bad": "✖ baseline-bad",
    "excluded": "- excluded",
    "removed": "- removed",
}

# Filters the dashboard cycles through with `f`.
FILTERS = ("all", "attention", "protected", "damaged", "healing", "unprotected", "removed")

SORTS = ("protection", "name", "size", "verified", "snapshot", "qbt")


@dataclass(frozen=True)
class Drill:
    ok: bool | None
    rto_seconds: float | None
    at: str | None


@dataclass(frozen=True)
class TorrentView:
    """One dashboard row."""

    id: str
    name: str
    size: int
    protection: str
    qbt_state: str
    info_hash_v1: str | None = None
    info_hash_v2: str | None = None
    seeds: int | None = None
    peers: int | None = None
    last_verified: str | None = None
    snapshot_at: str | None = None
    snapshot_suspect: bool = False  # a failed drill or store check: not proven restorable
    drill: Drill | None = None
    drift_alerts: int | None = None
    companions: int | None = None
    parity: bool | None = None
    jobs: tuple = ()  # ((job id, kind, state), ...) queued or running for this torrent


@dataclass(frozen=True)
class ServiceView:
    running: bool
    qbt_state: str | None = None  # connecting | connected | unreachable | login_failed | error
    qbt_connected: bool | None = None
    qbt_error: str | None = None
    qbt_url: str | None = None
    store_bytes: int | None = None
    dedup_ratio: float | None = None
    last_scrub: str | None = None
    version: str | None = None
    fleet: tuple = ()  # (owner, alive, protected, torrents) of each service sharing the catalog (issue 20)


@dataclass(frozen=True)
class Totals:
    torrents: int = 0
    protected: int = 0
    damaged: int = 0
    healing: int = 0
    unprotected: int = 0
    payload_bytes: int = 0


@dataclass
class Status:
    service: ServiceView
    torrents: dict[str, TorrentView] = field(default_factory=dict)


def _first(d: dict, *keys, default=None):
    for key in keys:
        if d.get(key) is not None:
            return d[key]
    return default


def _int(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return len(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _when(value) -> str | None:
    """An ISO time, or the time inside a record ({"created_at": ...})."""
    if isinstance(value, dict):
        return _first(value, "created_at", "at", "finished_at", "started_at")
    return value if isinstance(value, str) else None


def _drill(value) -> Drill | None:
    if not isinstance(value, dict):
        return None
    ok = value.get("ok")
    if ok is None and "result" in value:
        ok = value["result"] in ("pass", "passed", "ok")
    rto = _first(value, "rto_seconds", "rto")
    return Drill(ok=None if ok is None else bool(ok), rto_seconds=None if rto is None else float(rto),
                 at=_first(value, "finished_at", "at", "created_at", "started_at"))


def _parity(t: dict, companions) -> bool | None:
    if t.get("parity") is not None:
        value = t["parity"]
        return bool(value.get("reached")) if isinstance(value, dict) else bool(value)
    if isinstance(companions, list) and companions:
        flags = [c.get("parity") for c in companions if isinstance(c, dict) and c.get("parity") is not None]
        if flags:
            return any(bool(f) for f in flags)
    return None


def torrent_view(t: dict) -> TorrentView:
    companions = t.get("companions")
    return TorrentView(
        id=t["id"],
        name=t.get("name") or t["id"],
        size=int(_first(t, "size", "payload_size", default=0)),
        protection=t.get("protection") or "pending",
        qbt_state=t.get("qbt_state") or "",
        info_hash_v1=t.get("info_hash_v1"),
        info_hash_v2=t.get("info_hash_v2"),
        seeds=_int(_first(t, "seeds", "num_seeds")),
        peers=_int(_first(t, "peers", "num_leechs", "leechers")),
        last_verified=t.get("last_verified"),
        snapshot_at=_when(_first(t, "last_snapshot", "snapshot_at", "snapshot")),
        snapshot_suspect=isinstance(t.get("snapshot"), dict) and bool(t["snapshot"].get("suspect")),
        drill=_drill(_first(t, "last_drill", "drill")),
        drift_alerts=_int(_first(t, "drift_alerts", "alerts")),
        companions=_int(companions),
        parity=_parity(t, companions),
        jobs=tuple((j.get("id"), j.get("kind"), j.get("state")) for j in t.get("jobs") or () if isinstance(j, dict)),
    )


def service_view(status: dict) -> ServiceView:
    svc = status.get("service") or {}
    qbt = _first(svc, "qbittorrent", "qbt", default={})
    if isinstance(qbt, bool):
        qbt = {"connected": qbt}
    elif isinstance(qbt, str):
        qbt = {"connected": qbt in ("connected", "ok", "online")}
    state = qbt.get("state")
    connected = _first(qbt, "connected", "ok")
    if connected is None and state is not None and state != "connecting":
        connected = state == "connected"
    store = _first(svc, "store", default=None) or status.get("store") or {}
    ratio = _first(store, "dedup_ratio", "dedup")
    if ratio is None and store.get("logical_bytes") and store.get("bytes"):
        ratio = store["logical_bytes"] / store["bytes"]
    scrub = _first(svc, "last_scrub", "scrub", default=None) or status.get("last_scrub")
    return ServiceView(
        running=bool(svc.get("running", False)),
        qbt_state=state,
        qbt_connected=None if connected is None else bool(connected),
        qbt_error=_first(qbt, "error", "reason"),
        qbt_url=qbt.get("url"),
        store_bytes=_int(_first(store, "bytes", "stored_bytes", "size")),
        dedup_ratio=None if ratio is None else float(ratio),
        last_scrub=_when(scrub),
        version=svc.get("version"),
        fleet=_fleet(svc.get("fleet")),
    )


def _fleet(fleet) -> tuple:
    members = (fleet or {}).get("members") if isinstance(fleet, dict) else None
    if not members or (len(members) < 2 and all(not m.get("owner") for m in members)):
        return ()
    return tuple((m.get("owner") or "", bool(m.get("alive")), int((m.get("torrents") or {}).get("protected", 0)),
                  sum(int(v) for k, v in (m.get("torrents") or {}).items() if k != "removed")) for m in members)


def parse_status(status: dict, extra: dict[str, dict] | None = None) -> Status:
    """`extra`: per-torrent fields from elsewhere (the catalog; key "*" for every torrent); the service's
    own fields win."""
    torrents = {}
    extra = extra or {}
    defaults = extra.get("*", {})  # for every torrent
    for t in status.get("torrents") or []:
        more = {**defaults, **extra.get(t.get("id"), {})}
        view = torrent_view({**more, **{k: v for k, v in t.items() if v is not None}} if more else t)
        torrents[view.id] = view
    return Status(service=service_view(status), torrents=torrents)


def totals(torrents) -> Totals:
    counts = {"protected": 0, "damaged": 0, "healing": 0, "unprotected": 0}
    live = payload = 0
    for t in torrents:
        if t.protection == "removed":
            continue
        live += 1
        payload += t.size
        if t.protection in counts:
            counts[t.protection] += 1
        elif t.protection in UNPROTECTED:
            counts["unprotected"] += 1
    return Totals(torrents=live, payload_bytes=payload, **counts)


def diff(old: dict[str, TorrentView], new: dict[str, TorrentView]) -> tuple[list, list, list]:
    """(added, changed, removed) ids between two states: the table updates only these rows."""
    added = [k for k in new if k not in old]
    removed = [k for k in old if k not in new]
    changed = [k for k, v in new.items() if k in old and old[k] != v]
    return added, changed, removed


def matches(t: TorrentView, filter_name: str, search: str) -> bool:
    if filter_name == "all":
        ok = t.protection != "removed"
    elif filter_name == "attention":
        ok = t.protection in ("damaged", "healing", "baseline_bad") or bool(t.drift_alerts) or (
            t.drill is not None and t.drill.ok is False) or t.snapshot_suspect
    elif filter_name == "unprotected":
        ok = t.protection in UNPROTECTED
    else:
        ok = t.protection == filter_name
    if not ok:
        return False
    if search:
        s = search.lower()
        return s in t.name.lower() or t.id.startswith(s) or (t.info_hash_v2 or "").startswith(s)
    return True


def sort_key(sort: str):
    severity = {p: i for i, p in enumerate(PROTECTION_ORDER)}
    keys = {
        "protection": lambda t: (severity.get(t.protection, 99), t.name.lower()),
        "name": lambda t: (t.name.lower(), t.id),
        "size": lambda t: (-t.size, t.name.lower()),
        # oldest (or never) first: what most needs attention
        "verified": lambda t: (t.last_verified or "", t.name.lower()),
        "snapshot": lambda t: (t.snapshot_at or "", t.name.lower()),
        "qbt": lambda t: (t.qbt_state, t.name.lower()),
    }
    return keys[sort]


def visible(torrents, filter_name: str, search: str, sort: str) -> list[TorrentView]:
    return sorted((t for t in torrents if matches(t, filter_name, search)), key=sort_key(sort))


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def age(value: str | None, now: datetime) -> str:
    """'42s', '5m', '3h', '2d' ago; '-' when unknown."""
    when = parse_time(value)
    if when is None:
        return "-"
    seconds = max(0, int((now - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def seconds_text(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 60:
        return f"{s:.1f}s"
    return f"{int(s // 60)}m{int(s % 60):02d}s"


def drill_text(d: Drill | None, now: datetime) -> str:
    if d is None:
        return "-"
    verdict = "-" if d.ok is None else ("pass" if d.ok else "FAIL")
    rto = f" {seconds_text(d.rto_seconds)}" if d.rto_seconds is not None else ""
    return f"{verdict}{rto} {age(d.at, now)}".strip()


def companions_text(t: TorrentView) -> str:
    if t.companions is None:
        return "-"
    if t.parity is None:
        return str(t.companions)
    return f"{t.companions} {'parity' if t.parity else 'no parity'}"


def swarm_text(t: TorrentView) -> str:
    if t.seeds is None and t.peers is None:
        return "-"
    return f"{'-' if t.seeds is None else t.seeds}/{'-' if t.peers is None else t.peers}"


# Piece map: one char per piece from the service (o ok, d damaged, h healing, u unverified).
PIECE_SEVERITY = {"d": 3, "h": 2, "u": 1, "o": 0}


def piece_cells(pieces: str, width: int) -> str:
    """Squeeze the per-piece string into `width` cells; a cell shows its worst piece, as qBittorrent does."""
    n = len(pieces)
    if n == 0 or width <= 0:
        return ""
    if n <= width:  # stretch, so the bar always spans the line
        return "".join(pieces[cell * n // width] for cell in range(width))
    out = []
    for cell in range(width):
        lo, hi = cell * n // width, max(cell * n // width + 1, (cell + 1) * n // width)
        chunk = pieces[lo:hi]
        out.append(max(chunk, key=lambda c: PIECE_SEVERITY.get(c, 1)))
    return "".join(out)


def piece_counts(pieces: str) -> dict[str, int]:
    return {name: pieces.count(ch) for ch, name in (("o", "ok"), ("d", "damaged"), ("h", "healing"),
                                                     ("u", "unverified"))}
