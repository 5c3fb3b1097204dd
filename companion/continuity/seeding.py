"""Seeding continuity from the catalog's events (pure: no I/O, times in seconds since the epoch).

A torrent's time is cut into segments, each in one state:
  seeding      protected and not stopped: seeding its verified payload
  stopped      stopped by seedward (drift found, a heal waiting for qBittorrent, a job without a sandbox)
  damaged      drift found or a heal failed (or the payload never matched: baseline_bad)
  healing      damaged pieces being written back (and qBittorrent's recheck after)
  unreachable  its files are not where qBittorrent says
  paused       stopped by the user (`seedward stop`): their choice, not counted
  unwatched    not known to seedward yet, pending verification, excluded, removed, or the service or
               qBittorrent was down (nothing seedward could see): not counted
The intact share of a window is seeding time over counted time (seeding, stopped, damaged,
healing, unreachable). An interruption is a run of counted non-seeding time (unwatched gaps
inside it included) that ends when the torrent seeds again; its length is the outage. The heal
time of a drift response is from the drift found to seeding again; the detect time is from the
first write seen (inotify) to the drift found, where the heal record says (scrubs say nothing).
The share is of the time watched (`watched_seconds`, from `covered_from`): until a window is
(99 %) covered, the headline says the span watched ("100 % of the 10 s watched (window 7 d)"),
never the window. Limits: only what seedward recorded; a stop in qBittorrent's own UI is not an event, so it is not
seen here.

Just over 400 lines on purpose: the segment rules are one state machine over the events; split,
its states and transitions would live apart.
"""

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime, timezone
from statistics import median

from ..durations import seconds_text

WINDOWS = {"24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}
DEFAULT_WINDOW = "7d"
HORIZON = WINDOWS["30d"]  # the longest window: events older than this are only a starting state

COVERED = 0.99  # a window watched this much is "covered": the share then speaks for the window
COUNTED = ("seeding", "stopped", "damaged", "healing", "unreachable")
STATES = COUNTED + ("paused", "unwatched")

# Event kinds by what they say (the catalog's `kind`; `state` events carry detail.state).
PROTECTION_KINDS = {"state": None, "protected": "protected", "baseline_bad": "baseline_bad", "damaged": "damaged",
                    "excluded": "excluded", "removed": "removed", "drift": "damaged", "healing": "healing",
                    "heal_failed": "damaged", "unreachable": "unreachable", "healed": None}
HOLD_ON = {"stopped", "quarantined", "restopped", "job_paused_seeding"}
HOLD_OFF = {"resumed", "false_alarm", "intended"}
JOB_ENDS = ("job_done", "job_failed", "job_tainted", "job_refused", "job_interrupted", "job_cancelled")
USER_KINDS = {"user_stopped": True, "user_started": False}
# (a service that stopped answering its own status, service/watchdog.py, is not counted as watching)
SERVICE_KINDS = {"service_started": True, "service_stopping": False, "service_stuck": False, "service_answering": True}
QBT_KINDS = {"qbt_connected": True, "qbt_unreachable": False, "qbt_login_failed": False, "qbt_error": False,
             "qbt_not_answering": False}
TORRENT_KINDS = set(PROTECTION_KINDS) | HOLD_ON | HOLD_OFF | set(JOB_ENDS) | set(USER_KINDS)
GLOBAL_KINDS = set(SERVICE_KINDS) | set(QBT_KINDS)
ALL_KINDS = sorted(TORRENT_KINDS | GLOBAL_KINDS)


def epoch(value) -> float | None:
    """Seconds since the epoch from the catalog's ISO text (naive = UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Event:
    at: float
    kind: str
    state: str | None = None  # `state` events: the new protection
    id: int = 0


@dataclass
class Dims:
    """What the events said so far about one torrent (and the world)."""

    protection: str | None = None  # None: nothing said yet (not known: unwatched)
    held: bool = False
    held_by_job: bool = False
    user: bool = False

    def apply(self, e: Event) -> None:
        k = e.kind
        if k in PROTECTION_KINDS:
            if k == "state":
                self.protection = e.state or self.protection
            elif k == "healed":
                if self.protection in (None, "damaged", "healing") and not self.held:
                    self.protection = "protected"  # a heal that stopped nothing (job undo, no qBittorrent)
            else:
                self.protection = PROTECTION_KINDS[k]
            if self.protection == "protected" and k in ("state", "protected") and not self.held_by_job:
                self.held = False
        if k in HOLD_ON:
            self.held = True
            self.held_by_job = k == "job_paused_seeding"
        elif k in HOLD_OFF or (k in JOB_ENDS and self.held_by_job):
            self.held = self.held_by_job = False
        if k in USER_KINDS:
            self.user = USER_KINDS[k]


def state_of(d: Dims, watched: bool) -> str:
    """The segment state for these dimensions (`watched`: the service and qBittorrent were up)."""
    p = d.protection
    if p in (None, "pending", "excluded", "removed"):
        return "unwatched"
    if not watched:
        return "unwatched"
    if p in ("damaged", "baseline_bad"):
        return "damaged"
    if p == "healing":
        return "healing"
    if p == "unreachable":
        return "unreachable"
    if d.held:
        return "stopped"
    if d.user:
        return "paused"
    return "seeding" if p == "protected" else "unwatched"


@dataclass
class World:
    """When the service and each qBittorrent instance were up. A qBittorrent event without an
    instance (one instance) speaks for every torrent; with one (`Event.state` holds its name,
    several instances), for that instance's torrents. A torrent whose instance is not known
    counts as watched only while every instance is up."""

    service: bool | None = None
    qbt: dict = field(default_factory=dict)  # instance ("": the only one) -> up
    changes: list = field(default_factory=list)  # (at, service up?, {instance: up}) after each event

    def apply(self, e: Event) -> None:
        if e.kind in SERVICE_KINDS:
            self.service = SERVICE_KINDS[e.kind]
            if self.service:
                self.qbt = {}  # a service starts by connecting; its own events say if it cannot
        elif e.kind in QBT_KINDS:
            if e.state:
                self.qbt[e.state] = QBT_KINDS[e.kind]
            else:
                self.qbt = {"": QBT_KINDS[e.kind]}
        self.changes.append((e.at, self.service, dict(self.qbt)))

    @staticmethod
    def _watched(service, qbt: dict, instance: str) -> bool:
        if service is False:  # never a service event: the catalog alone (not down)
            return False
        if instance:
            return qbt.get(instance, qbt.get("", True))
        return all(qbt.values())

    @property
    def watched(self) -> bool:
        return self._watched(self.service, self.qbt, "")

    def at(self, t: float, instance: str = "") -> bool:
        i = bisect_right(self._times, t) - 1
        service, qbt = (self.changes[i][1], self.changes[i][2]) if i >= 0 else self._before
        return self._watched(service, qbt, instance)

    def times(self) -> list[float]:
        return self._times

    def freeze(self, before: bool | tuple) -> "World":
        """Ready to answer; `before`: watched before the first change (or (service, {instance: up}))."""
        self._times = [c[0] for c in self.changes]
        self._before = before if isinstance(before, tuple) else (None if before else False, {})
        return self


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    state: str


def timeline(events: list[Event], world: World, start: float, end: float, first: Dims | None = None,
             instance: str = "") -> list[Segment]:
    """A torrent's segments over [start, end]: its own events (oldest first, all at or after
    `start`) replayed over `first` (what older events said), cut by the world's up/down changes
    (the service's, and its qBittorrent instance's)."""
    dims = Dims(**vars(first)) if first else Dims()
    cuts = sorted([(e.at, 1, e) for e in events if start <= e.at <= end] +
                  [(at, 0, None) for at in world.times() if start < at <= end], key=lambda c: (c[0], c[1]))
    out: list[Segment] = []
    t, state = start, state_of(dims, world.at(start, instance))
    for at, _, e in cuts:
        if e is not None:
            dims.apply(e)
        new = state_of(dims, world.at(at, instance))
        if new != state:
            if at > t:
                out.append(Segment(t, at, state))
            t, state = max(t, at), new
    if end > t:
        out.append(Segment(t, end, state))
    return _merged(out)


def _merged(segments: list[Segment]) -> list[Segment]:
    out: list[Segment] = []
    for s in segments:
        if out and out[-1].state == s.state and out[-1].end >= s.start:
            out[-1] = Segment(out[-1].start, s.end, s.state)
        else:
            out.append(s)
    return out


@dataclass
class Interruption:
    start: float
    end: float | None  # None: not seeding again yet
    states: tuple


def interruptions(segments: list[Segment]) -> list[Interruption]:
    """Runs of counted non-seeding time, up to the next seeding (unwatched gaps inside included)."""
    out: list[Interruption] = []
    current: Interruption | None = None
    for s in segments:
        if s.state == "seeding":
            if current is not None:
                current.end = s.start
                out.append(current)
                current = None
        elif s.state in COUNTED:
            if current is None:
                current = Interruption(s.start, None, (s.state,))
            elif s.state not in current.states:
                current.states += (s.state,)
    if current is not None:
        out.append(current)
    return out


@dataclass(frozen=True)
class Heal:
    """A drift response (the catalog's heals row)."""

    torrent_id: str
    started: float
    finished: float | None
    outcome: str
    detect_seconds: float | None  # first write seen -> drift found; None when unknown (a scrub found it)


@dataclass
class Report:
    """Continuity over one window; `status --json` shows `short()`."""

    window: str
    seconds: dict  # state -> seconds in the window
    interruptions: int
    outages: list  # seconds of each interruption overlapping the window (ongoing: up to now)
    heal_seconds: list
    detect_seconds: list
    last_incident: float | None
    ongoing: bool = False  # an interruption lasts now
    covered_from: float | None = None  # the start of the first counted time in the window
    watched: float | None = None  # the library's: the longest any torrent was watched (None: counted)

    @property
    def counted(self) -> float:
        return sum(self.seconds.get(s, 0.0) for s in COUNTED)

    @property
    def watched_seconds(self) -> float:
        """Counted time in the window (the share is of it); the library's: its longest-watched torrent's."""
        return self.counted if self.watched is None else self.watched

    @property
    def intact_share(self) -> float:
        """Seeding over counted time; 0.0 when nothing was counted (nothing proven)."""
        counted = self.counted
        return self.seconds.get("seeding", 0.0) / counted if counted > 0 else 0.0

    def short(self) -> dict:
        return {
            "window": self.window,
            "intact_share": round(self.intact_share, 6),
            "interruptions": self.interruptions,
            "median_heal_seconds": _rounded(median(self.heal_seconds)) if self.heal_seconds else None,
            "longest_outage_seconds": _rounded(max(self.outages)) if self.outages else 0.0,
            "last_incident": iso(self.last_incident),
            "watched_seconds": _rounded(self.watched_seconds),
            "covered_from": iso(self.covered_from),
        }

    def full(self) -> dict:
        return {
            **self.short(),
            "seconds": {s: _rounded(self.seconds.get(s, 0.0)) for s in STATES},
            "observed_seconds": _rounded(self.counted),
            "stopped_by_seedward_seconds": _rounded(self.seconds.get("stopped", 0.0)),
            "heal_seconds": _spread(self.heal_seconds),
            "detect_seconds": _spread(self.detect_seconds),
            "ongoing": self.ongoing,
        }


def _rounded(x: float) -> float:
    return round(float(x), 3)


def _spread(values: list) -> dict:
    return {"count": len(values), "median": _rounded(median(values)) if values else None,
            "max": _rounded(max(values)) if values else None}


def report(segments: list[Segment], heals: list[Heal], window: str, now: float,
           last_incident: float | None = None) -> Report:
    """One torrent's report over the window ending now (segments: at least that span)."""
    start = now - WINDOWS[window]
    seconds: dict = {}
    covered_from = None
    for s in segments:
        lo, hi = max(s.start, start), min(s.end, now)
        if hi > lo:
            seconds[s.state] = seconds.get(s.state, 0.0) + hi - lo
            if s.state in COUNTED and (covered_from is None or lo < covered_from):
                covered_from = lo
    runs = interruptions(segments)
    inside = [r for r in runs if (r.end is None or r.end > start) and r.start < now]
    outages = [(r.end if r.end is not None else now) - r.start for r in inside]
    heal_s, detect_s = [], []
    for h in heals:
        if h.started < start or h.started > now:
            continue
        if h.detect_seconds is not None:
            detect_s.append(h.detect_seconds)
        back = _seeding_after(segments, h.started)
        if back is not None:
            heal_s.append(back - h.started)
    latest = max([r.start for r in runs] + ([last_incident] if last_incident is not None else []), default=None)
    return Report(window, seconds, len(inside), outages, heal_s, detect_s, latest,
                  ongoing=bool(runs) and runs[-1].end is None, covered_from=covered_from)


def _seeding_after(segments: list[Segment], t: float) -> float | None:
    for s in segments:
        if s.state == "seeding" and s.start >= t:
            return s.start
    return None


def combine(reports: list[Report], window: str) -> Report:
    """The library's report: time summed over torrents (so the share is time-weighted), every
    interruption and heal counted; watched: its longest-watched torrent's time, covered_from: the
    earliest."""
    seconds: dict = {}
    watched, covered_from = 0.0, None
    outages, heals, detects = [], [], []
    n, last, ongoing = 0, None, False
    for r in reports:
        for s, v in r.seconds.items():
            seconds[s] = seconds.get(s, 0.0) + v
        n += r.interruptions
        outages += r.outages
        heals += r.heal_seconds
        detects += r.detect_seconds
        if r.last_incident is not None and (last is None or r.last_incident > last):
            last = r.last_incident
        ongoing = ongoing or r.ongoing
        watched = max(watched, r.watched_seconds)
        if r.covered_from is not None and (covered_from is None or r.covered_from < covered_from):
            covered_from = r.covered_from
    return Report(window, seconds, n, outages, heals, detects, last, ongoing, covered_from, watched)


def percent(share: float) -> str:
    """99.98 %: rounded down, so any interruption shows (100 % only when nothing was lost)."""
    if share >= 1.0:
        return "100 %"
    return f"{min(int(share * 10000) / 100, 99.99):.2f} %"


def headline(short: dict | None) -> str:
    """'99.98 % seeding intact over 7 d · 3 incidents · median heal 0.4 s' (a status `continuity`)."""
    if not short:
        return "continuity: not reported"
    window = short["window"].replace("d", " d").replace("h", " h")
    n = short["interruptions"]
    if not n and not short["intact_share"]:
        return f"nothing watched seeding over {window} yet"
    parts = [f"{percent(short['intact_share'])} seeding intact {span(short)}",
             f"{n} incident{'' if n == 1 else 's'}"]
    if short.get("median_heal_seconds") is not None:
        parts.append(f"median heal {seconds_text(short['median_heal_seconds'])}")
    if short.get("longest_outage_seconds"):
        parts.append(f"longest outage {seconds_text(short['longest_outage_seconds'])}")
    return " · ".join(parts)


def span(short: dict) -> str:
    """'over 7 d' once the window is covered; until then the time watched: 'of the 10 s watched (window 7 d)'.
    A `continuity` without watched_seconds (an older service) says its window."""
    window = short["window"].replace("d", " d").replace("h", " h")
    watched = short.get("watched_seconds")
    if watched is None or watched >= COVERED * WINDOWS.get(short["window"], 0.0):
        return f"over {window}"
    return f"of the {seconds_text(watched)} watched (window {window})"
