"""What the screens show, built from the service's `status` object (pure: no I/O).

Fields added by later features (snapshots, drills, drift, companions, store, scrub, swarm counts,
continuity, coverage, stops) are optional: a missing value is None and is shown as "-".

Attention first: `attention(t)` says why a torrent needs its seeder (damaged, a failed heal, stopped
by seedward, protected but not seeding, unreachable, baseline-bad, a suspect snapshot, a failed
drill, a coverage gap); such torrents sort to the top and are counted in the header. A drift that
was healed is history, not an alarm: it shows as "healed 2h ago", never as a red count.

Just over 400 lines on purpose: it is the one pure view model of the screens (the words and
figures are in tui/text.py); each screen's rows come from here.
"""

from dataclasses import dataclass, field
from operator import itemgetter

from companion.states import UNPROTECTED

# Severity order: what needs a seeder's eyes first sorts first.
PROTECTION_ORDER = ("damaged", "healing", "unreachable", "baseline_bad", "pending", "protected", "excluded", "removed")

# Why a torrent needs attention, most urgent first (the rank sorts the dashboard).
ATTENTION = ("damaged", "heal failed", "unreachable", "stopped by seedward", "not seeding", "baseline-bad",
             "suspect snapshot", "drill failed", "coverage gap")
# qBittorrent states in which a torrent is seeding (4.x and 5.x names).
SEEDING_STATES = frozenset({"uploading", "stalledUP", "queuedUP", "forcedUP", "checkingUP"})
HEALED_SHOWN_DAYS = 30  # a healed incident stays in the row this long, muted

# Glyph + word, so the state reads without color (16-color terminals, color-blind users).
PROTECTION_LABEL = {
    "protected": "✔ protected",
    "damaged": "✖ damaged",
    "healing": "⟳ healing",
    "pending": "… pending",
    "baseline_bad": "✖ baseline-bad",
    "unreachable": "? unreachable",
    "excluded": "- excluded",
    "removed": "- removed",
}

# Filters the dashboard cycles through with `f`.
FILTERS = ("all", "attention", "protected", "damaged", "healing", "unprotected", "removed")

SORTS = ("protection", "name", "size", "verified", "snapshot", "qbt")


@dataclass(slots=True)
class Drill:
    ok: bool | None
    rto_seconds: float | None
    at: str | None


@dataclass(slots=True)
class Continuity:
    """The service's `continuity` (issue 18's shape): the 7-day window."""

    window: str = "7d"
    intact_share: float = 0.0
    interruptions: int = 0
    median_heal_seconds: float | None = None
    longest_outage_seconds: float = 0.0
    last_incident: str | None = None
    watched_seconds: float | None = None  # counted time in the window (None: an older service)

    @property
    def watched(self) -> bool:
        """Anything counted: a share of 0 with no interruption means nothing was watched seeding yet."""
        return bool(self.interruptions or self.intact_share)


@dataclass(slots=True)
class TorrentView:
    """One dashboard row (treated as immutable: a change is a new view, dataclasses.replace)."""

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
    continuity: Continuity | None = None
    stopped_by: str | None = None  # seedward | user | qBittorrent
    stopped_since: str | None = None
    stopped_because: str | None = None
    heal_outcome: str | None = None  # the newest drift response: healed | failed | damaged | alerted | running
    heal_at: str | None = None
    coverage: tuple | None = None  # (damage classes survived, of how many, (classes not covered, ...))
    hardlinked: tuple = ()  # its files with other hard links (watched through their inodes)
    reason: str | None = field(default=None, compare=False, repr=False)  # attention(self), set once

    def __post_init__(self):
        self.reason = attention(self)  # the sort, the filter and the header all ask: computed once per view


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
    qbt_version: str | None = None


@dataclass(frozen=True)
class Totals:
    torrents: int = 0
    protected: int = 0
    damaged: int = 0
    healing: int = 0
    unprotected: int = 0
    payload_bytes: int = 0
    attention: int = 0  # torrents attention() names (the header's count)
    reasons: tuple = ()  # (reason, count), most urgent first


@dataclass
class Status:
    service: ServiceView
    torrents: dict[str, TorrentView] = field(default_factory=dict)
    continuity: Continuity | None = None  # the whole library's


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


def _continuity(value) -> Continuity | None:
    if not isinstance(value, dict):
        return None
    try:
        return Continuity(window=str(value.get("window") or "7d"), intact_share=float(value.get("intact_share") or 0.0),
                          interruptions=int(value.get("interruptions") or 0),
                          median_heal_seconds=None if value.get("median_heal_seconds") is None
                          else float(value["median_heal_seconds"]),
                          longest_outage_seconds=float(value.get("longest_outage_seconds") or 0.0),
                          last_incident=value.get("last_incident"),
                          watched_seconds=None if value.get("watched_seconds") is None
                          else float(value["watched_seconds"]))
    except (TypeError, ValueError):
        return None


def _coverage(value) -> tuple | None:
    """(damage classes survived, of how many, (the classes not covered, ...)) from the ladder's coverage."""
    if isinstance(value, dict) and value.get("of"):
        try:
            gaps = tuple(sorted(k for k, tiers in (value.get("classes") or {}).items() if not tiers))
            return int(value.get("survives") or 0), int(value["of"]), gaps
        except (TypeError, ValueError, AttributeError):
            return None
    return None


def torrent_view(t: dict) -> TorrentView:
    companions = t.get("companions")
    stopped = t.get("stopped") if isinstance(t.get("stopped"), dict) else {}
    heal = t.get("last_heal") if isinstance(t.get("last_heal"), dict) else {}
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
        continuity=_continuity(t.get("continuity")),
        stopped_by=stopped.get("by"), stopped_since=stopped.get("since"), stopped_because=stopped.get("because"),
        heal_outcome=heal.get("outcome"), heal_at=heal.get("finished_at") or heal.get("started_at"),
        coverage=_coverage(t.get("coverage")),
        hardlinked=tuple(str(x) for x in t.get("hardlinked") or () if x),
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
        qbt_version=qbt.get("version"),
    )


def _fleet(fleet) -> tuple:
    members = (fleet or {}).get("members") if isinstance(fleet, dict) else None
    if not members or (len(members) < 2 and all(not m.get("owner") for m in members)):
        return ()
    return tuple((m.get("owner") or "", bool(m.get("alive")), int((m.get("torrents") or {}).get("protected", 0)),
                  sum(int(v) for k, v in (m.get("torrents") or {}).items() if k != "removed")) for m in members)


def parse_dashboard(answer: dict) -> Status:
    """The service's `dashboard` answer (service/dashboard.py: one array of values per torrent, in
    the order its `fields` names) as a Status, without building a dict per torrent."""
    at = {name: i for i, name in enumerate(answer.get("fields") or ())}
    window = str(answer.get("window") or "7d")

    def col(name):
        i = at.get(name)
        return (lambda r: r[i]) if i is not None else (lambda r: None)

    get = {name: col(name) for name in ("id", "name", "size", "protection", "qbt_state", "info_hash_v1",
                                        "info_hash_v2", "seeds", "peers", "last_verified", "snapshot_at",
                                        "snapshot_suspect", "drill_ok", "drill_rto", "drill_at", "drift_alerts",
                                        "companions", "parity", "jobs", "continuity", "stopped_by", "stopped_since",
                                        "stopped_because", "heal_outcome", "heal_at", "coverage", "hardlinked")}
    g = get
    torrents = {}
    names = tuple(get)
    if all(n in at for n in names):  # every field there (the service's own answer): one C call per row
        pick = itemgetter(*(at[n] for n in names))
        for r in answer.get("rows") or ():
            (tid, name, size, protection, qbt_state, v1, v2, seeds, peers, verified, snap_at, suspect, ok, rto,
             drill_at, drift, companions, parity, jobs, cont, by, since, because, heal, heal_at, cover, linked) = pick(r)
            torrents[tid] = TorrentView(
                tid, name or tid, int(size or 0), protection or "pending", qbt_state or "", tid if v1 == 1 else v1,
                v2, seeds, peers, verified, snap_at, bool(suspect),
                None if ok is None and drill_at is None and rto is None else Drill(ok, rto, drill_at), drift,
                companions, parity, tuple(tuple(j) for j in jobs) if jobs else (),
                None if cont is None else Continuity(window, float(cont[0] or 0.0), int(cont[1] or 0), cont[2],
                                                     float(cont[3] or 0.0), cont[4], cont[5] if len(cont) > 5 else None),
                by, since, because, heal, heal_at, (cover[0], cover[1], tuple(cover[2])) if cover else None,
                tuple(linked) if linked else ())
        return Status(service=service_view(answer), torrents=torrents, continuity=_continuity(answer.get("continuity")))
    for r in answer.get("rows") or ():
        tid = g["id"](r)
        v1, ok, cont, cover = g["info_hash_v1"](r), g["drill_ok"](r), g["continuity"](r), g["coverage"](r)
        drill_at, rto = g["drill_at"](r), g["drill_rto"](r)
        torrents[tid] = TorrentView(
            tid, g["name"](r) or tid, int(g["size"](r) or 0), g["protection"](r) or "pending", g["qbt_state"](r) or "",
            tid if v1 == 1 else v1, g["info_hash_v2"](r), g["seeds"](r), g["peers"](r), g["last_verified"](r),
            g["snapshot_at"](r), bool(g["snapshot_suspect"](r)),
            None if ok is None and drill_at is None and rto is None else Drill(ok, rto, drill_at),
            g["drift_alerts"](r), g["companions"](r), g["parity"](r), tuple(tuple(j) for j in g["jobs"](r) or ()),
            None if cont is None else Continuity(window, float(cont[0] or 0.0), int(cont[1] or 0),
                                                 cont[2], float(cont[3] or 0.0), cont[4], cont[5] if len(cont) > 5 else None),
            g["stopped_by"](r), g["stopped_since"](r), g["stopped_because"](r), g["heal_outcome"](r), g["heal_at"](r),
            (cover[0], cover[1], tuple(cover[2] if len(cover) > 2 else ())) if cover else None,
            tuple(g["hardlinked"](r) or ()))
    return Status(service=service_view(answer), torrents=torrents, continuity=_continuity(answer.get("continuity")))


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
    return Status(service=service_view(status), torrents=torrents, continuity=_continuity(status.get("continuity")))


def attention(t: TorrentView) -> str | None:
    """Why this torrent needs its seeder now (one of ATTENTION), or None."""
    p = t.protection
    if p == "damaged":
        return "heal failed" if t.heal_outcome == "failed" else "damaged"
    if p == "unreachable":
        return "unreachable"
    if p in ("removed", "excluded"):
        return None
    if t.stopped_by == "seedward" and p != "healing":
        return "stopped by seedward"
    if p == "protected" and t.qbt_state and t.qbt_state not in SEEDING_STATES and t.stopped_by != "user":
        return "not seeding"
    if p == "baseline_bad":
        return "baseline-bad"
    if t.snapshot_suspect:
        return "suspect snapshot"
    if t.drill is not None and t.drill.ok is False:
        return "drill failed"
    if p == "protected" and t.coverage is not None and t.coverage[0] < t.coverage[1]:
        return "coverage gap"
    return None


_RANK = {reason: i for i, reason in enumerate(ATTENTION)}


def attention_rank(t: TorrentView) -> int:
    """The dashboard's first sort key: attention reasons in order, then healing, then the rest."""
    reason = t.reason
    if reason is not None:
        return _RANK[reason]
    return len(ATTENTION) if t.protection == "healing" else len(ATTENTION) + 1


def totals(torrents) -> Totals:
    counts = {"protected": 0, "damaged": 0, "healing": 0, "unprotected": 0}
    reasons: dict[str, int] = {}
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
        reason = t.reason
        if reason is not None:
            reasons[reason] = reasons.get(reason, 0) + 1
    ordered = tuple(sorted(reasons.items(), key=lambda kv: _RANK[kv[0]]))
    return Totals(torrents=live, payload_bytes=payload, attention=sum(reasons.values()), reasons=ordered, **counts)


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
        ok = t.reason is not None or t.protection == "healing"
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
        "protection": lambda t: (attention_rank(t), severity.get(t.protection, 99), t.name.lower()),
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
