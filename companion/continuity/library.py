"""Continuity for `status`: every torrent's, and the library's, from the catalog's events.

A Ledger reads the last 30 days of the events that matter (and the newest of each kind before
them: where the window starts) once, then only the events added since; the service keeps one,
a command makes one. Torrents with no event in 30 days share one computation per starting state,
so 100,000 quiet torrents cost little more than the few that had incidents.
"""

import threading
import time

from ..catalog import continuity as rows
from . import seeding
from .seeding import DEFAULT_WINDOW, HORIZON, Dims, Event, Heal, World, epoch, iso

RELOAD_SECONDS = 6 * 3600.0  # the 30-day horizon moves on: read it afresh this often


class Ledger:
    def __init__(self, clock=time.time):
        self.clock = clock
        self.lock = threading.RLock()  # the service's control threads share one
        self.loaded_at: float | None = None
        self.horizon: float = 0.0
        self.last_id = 0
        self.first: dict[str, Dims] = {}  # per torrent: what events before the horizon said
        self.world_before = (None, {})  # (service up?, {qBittorrent instance: up}) before the horizon
        self.events: dict[str, list[Event]] = {}
        self.world_events: list[Event] = []
        self.heals: dict[str, list[Heal]] = {}

    # -- reading the catalog --

    def refresh(self, cat) -> "Ledger":
        now = self.clock()
        if self.loaded_at is None or now - self.loaded_at > RELOAD_SECONDS:
            self._load(cat, now)
        else:
            self._add(rows.events_since(cat, iso(self.horizon), seeding.ALL_KINDS, self.last_id))
        self._heals(cat)
        return self

    def _load(self, cat, now: float) -> None:
        self.loaded_at, self.horizon = now, now - HORIZON
        self.first, self.events, self.world_events, self.last_id = {}, {}, [], 0
        service, qbt = None, {}
        dims = {"p": seeding.PROTECTION_KINDS, "h": seeding.HOLD_ON | seeding.HOLD_OFF | set(seeding.JOB_ENDS),
                "u": seeding.USER_KINDS, "s": seeding.SERVICE_KINDS, "q": seeding.QBT_KINDS}
        for _, tid, _, kind, state in rows.latest_before(cat, iso(self.horizon), dims):
            if tid is None:
                if kind in seeding.SERVICE_KINDS:
                    service = seeding.SERVICE_KINDS[kind]
                elif kind in seeding.QBT_KINDS:
                    qbt = {state or "": seeding.QBT_KINDS[kind]}  # (the newest of them, whichever instance)
                continue
            self.first.setdefault(tid, Dims()).apply(Event(self.horizon, kind, state))
        self.world_before = (service, qbt)
        self._add(rows.events_since(cat, iso(self.horizon), seeding.ALL_KINDS))

    def _add(self, new: list[tuple]) -> None:
        for eid, tid, at, kind, state in new:
            t = epoch(at)
            if t is None:
                continue
            e = Event(t, kind, state, eid)
            if tid is None:
                if kind in seeding.GLOBAL_KINDS:
                    self.world_events.append(e)
            elif kind in seeding.TORRENT_KINDS:
                self.events.setdefault(tid, []).append(e)
            self.last_id = max(self.last_id, eid)

    def _heals(self, cat) -> None:
        self.heals = {}
        for h in rows.heals_since(cat, iso(self.horizon)):
            started = epoch(h["started_at"])
            if started is None:
                continue
            t = h["timings"]
            detect = None
            if isinstance(t.get("total"), (int, float)) and isinstance(t.get("respond"), (int, float)):
                lag = float(t["total"]) - float(t["respond"])  # first write seen -> respond() began
                detect = round(lag, 4) if lag > 0 else None  # 0: no write was seen (scrub, reconcile)
            self.heals.setdefault(h["torrent_id"], []).append(
                Heal(h["torrent_id"], started, epoch(h["finished_at"]), h["outcome"], detect))

    # -- reports --

    def world(self) -> World:
        service, qbt = self.world_before
        w = World(service=service, qbt=dict(qbt))
        events = sorted(self.world_events, key=lambda e: (e.at, e.id))
        if service is None and events and events[0].kind == "service_started":
            service = False  # the first we hear of a service is it starting: it was not running before
        for e in events:
            w.apply(e)
        return w.freeze((service, dict(qbt)))

    def segments(self, torrent_id: str, world: World, start: float, end: float,
                 fallback: str | None = None, since: float | None = None, instance: str = "") -> list:
        """One torrent's segments over [start, end]. fallback: its protection now, for a torrent
        no event ever spoke of (a catalog filled by `catalog add` before events existed), from
        `since` (its last verification)."""
        first = self.first.get(torrent_id)
        events = self.events.get(torrent_id, [])
        if first is None and not events and fallback:
            first = Dims(protection=fallback)
            if since is not None and since > start:
                return [seeding.Segment(start, since, "unwatched"),
                        *seeding.timeline([], world, since, end, first, instance)]
        return seeding.timeline(events, world, start, end, first, instance)

    def reports(self, entries: list[dict], window: str = DEFAULT_WINDOW, now: float | None = None):
        """{torrent id: Report} for these status entries (id, protection, last_verified), and the
        library's Report (over the torrents that are not removed)."""
        now = self.clock() if now is None else now
        world = self.world()
        start = now - seeding.WINDOWS[window]
        quiet: dict = {}  # (first dims, fallback) -> Report, for torrents with no own events or heals
        out = {}
        for e in entries:
            tid = e["id"]
            own = tid in self.events or tid in self.heals
            fallback = e.get("protection") if tid not in self.first and not own else None
            since = epoch(e.get("last_verified")) if fallback else None
            instance = e.get("instance") or ""  # several qBittorrent instances: the one it seeds in
            if not own:
                first = self.first.get(tid)
                key = (tuple(vars(first).values()) if first else None, fallback, since if fallback else None, instance)
                if key not in quiet:
                    quiet[key] = seeding.report(self.segments(tid, world, min(start, self.horizon), now, fallback,
                                                              since, instance), [], window, now)
                out[tid] = quiet[key]
                continue
            segs = self.segments(tid, world, min(start, self.horizon), now, fallback, since, instance)
            out[tid] = seeding.report(segs, self.heals.get(tid, []), window, now)
        library = seeding.combine([r for e in entries if e.get("protection") != "removed"
                                   for r in [out[e["id"]]]], window)
        return out, library

    def timeline(self, torrent_id: str, protection: str | None = None, last_verified: str | None = None,
                 window: str = DEFAULT_WINDOW, now: float | None = None, instance: str = "") -> list[dict]:
        """The torrent's segments over the window, for the detail screen's strip."""
        now = self.clock() if now is None else now
        start = now - seeding.WINDOWS[window]
        fallback = protection if torrent_id not in self.first and torrent_id not in self.events else None
        segs = self.segments(torrent_id, self.world(), start, now, fallback,
                             epoch(last_verified) if fallback else None, instance)
        return [{"start": iso(s.start), "end": iso(s.end), "state": s.state} for s in segs]


def attach(status: dict, ledger: Ledger, cat=None, now: float | None = None) -> dict:
    """Put `continuity` (the 7-day window) into every torrent of a status object and at its top
    (cat: read the catalog's new events first)."""
    entries = status.get("torrents") or []
    with ledger.lock:
        if cat is not None:
            ledger.refresh(cat)
        per, library = ledger.reports(entries, now=now)
    shorts: dict = {}
    for e in entries:
        r = per[e["id"]]
        e["continuity"] = shorts.get(id(r)) or shorts.setdefault(id(r), r.short())  # quiet torrents share one
    status["continuity"] = library.short()
    return status


def detail(ledger: Ledger, torrent_id: str, entry: dict | None = None, cat=None, now: float | None = None) -> dict:
    """The full continuity of one torrent: every window, heal and detect times, time stopped by
    seedward, and the 7-day strip. entry: its protection and last_verified (status fields)."""
    entry = {"id": torrent_id, **(entry or {})}
    with ledger.lock:
        if cat is not None:
            ledger.refresh(cat)
        now = ledger.clock() if now is None else now
        out = {}
        for window in seeding.WINDOWS:
            per, _ = ledger.reports([entry], window=window, now=now)
            out[window] = per[torrent_id].full()
        instance = entry.get("instance") or ""
        return {"windows": out, "timeline": ledger.timeline(torrent_id, entry.get("protection"),
                                                           entry.get("last_verified"), now=now, instance=instance),
                "watched": ledger.world().at(now, instance)}
