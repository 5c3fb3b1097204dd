"""qBittorrent's part of drift handling, carried out whenever qBittorrent answers.

A heal never waits for qBittorrent. What qBittorrent must do to a torrent (stop it now; once the
payload is handled, recheck it when its view may be stale, and start it again if it was running)
is recorded in the catalog first (a hold, catalog/trust.py) and carried out here, in order, on one
thread, retried with backoff while qBittorrent is away or does not answer. A restart finds the
holds in the catalog and finishes them. Tags that mirror protection states are applied here too
(the latest wanted set wins), so a frozen qBittorrent never blocks a heal.
"""

import logging
import threading
import time

from ..catalog import trust
from ..errors import Error
from ..qbt import QbtLoginFailed, QbtNotFound, QbtUnreachable
from .holds import Holds, running
from ..loops import Backoff, Loop

log = logging.getLogger(__name__)

# recheck_any: a recheck whose job is to find the damaged pieces missing (a heal by the swarm)
STEPS = ("stop", "recheck", "recheck_any", "start")
CHECKING = ("checking", "queuedForChecking", "moving", "allocating")
RECHECK_SETTLE = 2.5  # qBittorrent's WebUI refreshes states every ~1.5 s: a shorter check may never be seen
RECHECK_INCOMPLETE = 10.0  # a recheck that ends below 100% is believed after a few refreshes
RESTOP_AFTER = 5.0  # the sync loop's view of a torrent lags our own stop by a poll or two
RESEND_AFTER = 15.0  # a stop qBittorrent's view does not show by then is sent again
# A start counts once qBittorrent shows the torrent running, and not checking, for START_SETTLE: a
# recheck of a stopped torrent ends with qBittorrent stopping it again, and a start sent while that
# check runs (or before qBittorrent's view shows it) is lost (4.5). A start not taken by
# START_RESEND is sent again (starting twice does no harm).
START_SETTLE = 3.0
START_RESEND = 3.0
LOST_START_WINDOW = 600.0  # a qBittorrent restart may come back with what it saved before our start


def checking(info: dict) -> bool:
    state = info.get("state", "")
    return state.startswith(CHECKING[0]) or state in CHECKING[1:]


class QbtSteps(Holds):
    """Carries out the holds' steps (drift/holds.py keeps them). live(tid) -> the sync loop's last view
    of a torrent (or None).
    on_settled(tid): a settled hold's steps are done up to its last start (sent next), or all done.
    on_resumed(tid): ... and that last start is seen taken, or the hold ended without one.
    on_incomplete(tid, progress): qBittorrent's recheck did not find the payload complete."""

    def __init__(self, catalog, qbt, *, emit=None, live=None, recheck_timeout: float = 600.0,
                 backoff_max: float = 30.0):
        super().__init__(catalog, live)
        self.qbt = qbt
        self.emit = emit or (lambda *a, **k: None)
        self.on_settled = None
        self.on_resumed = None
        self.on_incomplete = None
        self.recheck_timeout = recheck_timeout
        self.stopping = threading.Event()
        self.tags: dict[str, tuple[set, set]] = {}  # tid -> (tags to add, tags to remove)
        self.last_stop: dict[str, float] = {}  # tid -> monotonic time qBittorrent acknowledged our stop
        self.started: dict[str, float] = {}  # tid -> when seedward last started it (seen taken)
        self.backoff = Backoff(0.5, backoff_max)
        self.down_until = 0.0
        self.error: str | None = None
        self.thread: Loop | None = None

    # life cycle

    def start(self) -> None:
        self.thread = Loop("qbt-steps", self.tick, every=5.0, stopping=self.stopping, wake=self.wake).start()

    def stop(self, timeout: float = 10.0) -> None:
        if self.thread is not None:
            self.thread.stop(timeout)
        self.stopping.set()

    def want_tags(self, tid: str, add=(), remove=()) -> None:
        with self.lock:
            old_add, old_remove = self.tags.get(tid, (set(), set()))
            add, remove = set(add), set(remove)
            self.tags[tid] = ((old_add - remove) | add, (old_remove - add) | remove)
        self.wake.set()

    # what others read

    def busy(self) -> bool:
        with self.lock:
            return any(h["steps"] for h in self.holds.values()) or bool(self.tags) or bool(self.unsaved)

    def wait_done(self, tid: str, timeout: float = 60.0) -> bool:
        """Until the torrent's steps are all carried out (tests, the CLI)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.pending(tid):
                return True
            if self.thread is None:
                self.tick()
            time.sleep(0.05)
        return not self.pending(tid)

    # the worker

    def tick(self) -> float:
        """One pass over the holds and tags; returns how long to wait before the next."""
        now = time.monotonic()
        if now < self.down_until:
            return self.down_until - now
        try:
            with self.lock:
                for tid in list(self.unsaved):
                    self._save(tid)
            self._apply_tags()
            self._advance_all()
            self._reassert_stops()
            if self.error is not None:
                self.emit("qbt_steps_resumed", None, "qBittorrent answers again: carrying out the queued steps")
            self.backoff.reset()
            self.error = None
        except (QbtUnreachable, QbtLoginFailed, Error) as exc:
            first = self.error is None
            self.error = str(exc)
            self.down_until = time.monotonic() + self.backoff.next()
            if first:
                log.warning("qBittorrent steps wait: %s", exc)
            return self.down_until - time.monotonic()
        with self.lock:
            active = any(h["steps"] for h in self.holds.values()) or self.tags or self.unsaved
        return 0.1 if active else 5.0

    def _apply_tags(self) -> None:
        with self.lock:
            work = dict(self.tags)
        for tid, (add, remove) in work.items():
            try:
                if remove:
                    self.qbt.remove_tags(tid, sorted(remove))
                if add:
                    self.qbt.add_tags(tid, sorted(add))
            except QbtNotFound:
                pass
            with self.lock:
                if self.tags.get(tid) == (add, remove):
                    del self.tags[tid]

    def _advance_all(self) -> None:
        with self.lock:
            order = sorted(self.holds.values(), key=lambda h: (h["since"] or "", h["torrent_id"]))
            work = [h["torrent_id"] for h in order if h["steps"] or h["settled"]]
        for tid in work:
            if self.stopping.is_set():
                return
            try:
                self._advance(tid)
            except QbtNotFound:
                log.info("%s: gone from qBittorrent; its hold ends", tid[:12])
                self.drop(tid)
            except (QbtUnreachable, QbtLoginFailed):
                raise
            except Error as exc:  # refused (e.g. a conflict): recorded, retried with the backoff
                with self.lock:
                    if tid in self.holds:
                        self.holds[tid]["error"] = str(exc)
                        self._save(tid)
                raise

    def _reassert_stops(self) -> None:
        """A torrent seedward holds stopped that something else started again (qbit_manage's recheck
        resumes every stopped complete torrent; "resume all" in the WebUI): its bytes do not match
        it, so it is stopped again, and said. (`seedward start` drops the hold: the user is never fought.)"""
        now = time.monotonic()
        with self.lock:
            idle = [tid for tid, h in self.holds.items()
                    if not h["steps"] and not h["settled"] and h["stage"] == "stopped"
                    and now - self.last_stop.get(tid, 0.0) > RESTOP_AFTER]
        for tid in idle:
            if not running(self.live(tid)):
                continue
            with self.lock:
                hold = self.holds.get(tid)
                if hold is None or hold["steps"] or hold["settled"]:
                    continue
                hold.update(steps=["stop"], stage="stopping")
                self._save(tid)
            self.emit("restopped", tid, "started again by something else while seedward holds it stopped (its "
                      "payload does not match its torrent): stopped again; `seedward start ID --force` to seed it "
                      "anyway", "warning")

    def after_reconnect(self, live: dict, connected_at: float) -> list[str]:
        """qBittorrent restarted (we connected again at `connected_at`): a torrent seedward started
        before that, lately, which it shows stopped (it kept the state it had saved before our start)
        is started again. Returns those torrents."""
        now = time.monotonic()
        lost = []
        for tid, at in list(self.started.items()):
            if now - at > LOST_START_WINDOW:
                del self.started[tid]
                continue
            if at > connected_at:
                continue  # started since the reconnect: a stop now is someone's choice
            t = live.get(tid)
            if t is None or running(t) or self.held(tid) or trust.is_user_stopped(self.catalog, tid):
                continue
            lost.append(tid)
            self.hold(tid, "qBittorrent restarted and lost seedward's start", resume=True)
            self.settle(tid, because="qBittorrent restarted and lost seedward's start: starting it again")
            del self.started[tid]
            self.emit("restarted", tid, "qBittorrent came back with it stopped, though seedward had started it: "
                      "started again", "warning")
        return lost

    def _confirmed(self, tid: str, step: str) -> bool | None:
        """Has qBittorrent's own view (the sync loop's) taken our stop or start? None: not sent yet.
        A step is only done once seen: a qBittorrent restart can lose a call it had answered."""
        sent = self.sent.get(tid)
        if sent is None or sent[0] != step:
            return None
        live = self.live(tid)
        if live is None or "state" not in live:
            return True  # no view of qBittorrent here (the CLI without a sync loop): its answer counts
        now = time.monotonic()
        if step == "start":
            if running(live) and not checking(live):
                return now - self.running_since.setdefault(tid, now) >= START_SETTLE
            self.running_since.pop(tid, None)
            if not running(live) and now - sent[1] > START_RESEND:
                del self.sent[tid]  # not taken, or undone by the end of a check: sent again
            return False
        if not running(live):
            return True
        if now - sent[1] > RESEND_AFTER:
            del self.sent[tid]  # not taken: sent again
        return False

    def _advance(self, tid: str) -> None:
        notified = False
        while True:
            with self.lock:
                hold = self.holds.get(tid)
                if hold is None:
                    return
                if not hold["steps"]:
                    if hold["settled"]:
                        self.holds.pop(tid)
                        self.unsaved.discard(tid)
                        break
                    return
                step = hold["steps"][0]
                last_start = step == "start" and len(hold["steps"]) == 1 and hold["settled"]
            if step == "stop":
                seen = self._confirmed(tid, "stop")
                if seen is None:
                    self.qbt.stop(tid)
                    self.sent[tid] = ("stop", time.monotonic())
                    self.last_stop[tid] = time.monotonic()
                    seen = self._confirmed(tid, "stop")
                if not seen:
                    return  # looked at again at the next pass
                self.sent.pop(tid, None)
                self._done(tid, "stop", "stopped")
            elif step == "start":
                if last_start and not hold.get("notified"):
                    # the state and its tag first, so qBittorrent never shows it seeding as `healing`
                    hold["notified"] = notified = True
                    if self.on_settled is not None:
                        self.on_settled(tid)
                    self._apply_tags()
                if trust.is_user_stopped(self.catalog, tid):
                    self.sent.pop(tid, None)
                    self._done(tid, "start", "left stopped: the user's choice")
                    continue
                seen = self._confirmed(tid, "start")
                if seen is None:
                    self.qbt.start(tid)
                    self.sent[tid] = ("start", time.monotonic())
                    seen = self._confirmed(tid, "start")
                if not seen:
                    return
                self.sent.pop(tid, None)
                self.running_since.pop(tid, None)
                self.started[tid] = time.monotonic()
                self._done(tid, "start", "started")
                if last_start and self.on_resumed is not None:
                    self.on_resumed(tid)  # said once qBittorrent seeds it, not when the start is sent
            elif step in ("recheck", "recheck_any"):
                if not self._recheck(tid, step):
                    return  # still checking: looked at again at the next pass
            else:
                log.error("%s: unknown qBittorrent step %r dropped", tid[:12], step)
                self._done(tid, step, hold["stage"])
        try:
            trust.drop_hold(self.catalog, tid)
        except Exception:  # noqa: BLE001
            log.exception("%s: cannot drop the hold in the catalog", tid[:12])
        if not notified and not hold.get("notified"):  # a hold that ended without a start
            if self.on_settled is not None:
                self.on_settled(tid)
                self._apply_tags()
            if self.on_resumed is not None:
                self.on_resumed(tid)

    def _done(self, tid: str, step: str, stage: str) -> None:
        with self.lock:
            hold = self.holds.get(tid)
            if hold is None or not hold["steps"] or hold["steps"][0] != step:
                return
            hold["steps"].pop(0)
            hold["stage"] = stage
            hold["error"] = None
            self._save(tid)

    def _recheck(self, tid: str, step: str = "recheck") -> bool:
        """Ask for qBittorrent's recheck, then watch it (without blocking other torrents). True when over."""
        state = self.rechecking.get(tid)
        if state is None:
            self.qbt.recheck(tid)
            self.rechecking[tid] = [time.monotonic(), False]
            with self.lock:
                if tid in self.holds:
                    self.holds[tid]["stage"] = "rechecking"
            return False
        info = self.qbt.torrent(tid)
        if info is None:
            raise QbtNotFound(self.qbt.url, tid)
        began, seen = state
        busy = checking(info)
        state[1] = seen = seen or busy
        elapsed = time.monotonic() - began
        over = not busy and (seen or elapsed > RECHECK_SETTLE)
        if over and (info["progress"] >= 1 or step == "recheck_any"):
            self.rechecking.pop(tid, None)
            self._done(tid, step, "rechecked")
            return True
        if (over and elapsed > RECHECK_INCOMPLETE) or elapsed > self.recheck_timeout:
            self.rechecking.pop(tid, None)
            progress = float(info.get("progress", 0))
            why = (f"qBittorrent's recheck found the payload at {progress:.1%}" if over else
                   f"qBittorrent's recheck did not finish in {self.recheck_timeout:.0f}s")
            with self.lock:
                if tid in self.holds:
                    self.holds[tid].update(steps=[], settled=False, stage="stopped", error=why)
                    self._save(tid)
            if self.on_incomplete is not None:
                self.on_incomplete(tid, progress, why)
            return False
        return False
