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
from ..catalog.db_time import now_iso
from ..errors import Error
from ..qbt import QbtLoginFailed, QbtNotFound, QbtUnreachable, normalize_state
from ..loops import Backoff

log = logging.getLogger(__name__)

# recheck_any: a recheck whose job is to find the damaged pieces missing (a heal by the swarm)
STEPS = ("stop", "recheck", "recheck_any", "start")
CHECKING = ("checking", "queuedForChecking", "moving", "allocating")
RECHECK_SETTLE = 2.5  # qBittorrent's WebUI refreshes states every ~1.5 s: a shorter check may never be seen
RECHECK_INCOMPLETE = 10.0  # a recheck that ends below 100% is believed after a few refreshes
RESTOP_AFTER = 5.0  # the sync loop's view of a torrent lags our own stop by a poll or two


def running(info: dict | None) -> bool:
    """qBittorrent is seeding or downloading it (not stopped/paused by anyone)."""
    return info is not None and not normalize_state(info.get("state", "")).startswith("stopped")


class QbtSteps:
    """holds: the catalog's, cached here. live(tid) -> the sync loop's last view of a torrent (or None).
    on_settled(tid): a settled hold's steps are all done and the hold is gone.
    on_incomplete(tid, progress): qBittorrent's recheck did not find the payload complete."""

    def __init__(self, catalog, qbt, *, emit=None, live=None, recheck_timeout: float = 600.0,
                 backoff_max: float = 30.0):
        self.catalog = catalog
        self.qbt = qbt
        self.emit = emit or (lambda *a, **k: None)
        self.live = live or (lambda tid: None)
        self.on_settled = None
        self.on_incomplete = None
        self.recheck_timeout = recheck_timeout
        self.lock = threading.RLock()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.holds: dict[str, dict] = {}
        self.unsaved: set[str] = set()  # holds the catalog could not store yet (disk full): saved later
        self.tags: dict[str, tuple[set, set]] = {}  # tid -> (tags to add, tags to remove)
        self.rechecking: dict[str, list] = {}  # tid -> [sent at, seen checking]
        self.last_stop: dict[str, float] = {}  # tid -> monotonic time qBittorrent acknowledged our stop
        self.backoff = Backoff(0.5, backoff_max)
        self.down_until = 0.0
        self.error: str | None = None
        self.thread: threading.Thread | None = None
        try:
            self.holds = trust.holds(catalog)
        except Exception:  # noqa: BLE001 - a catalog that cannot be read yet: start empty, retry at start()
            log.exception("cannot read seedward's holds from the catalog")

    # life cycle

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="qbt-steps", daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self.wake.set()
        if self.thread is not None:
            self.thread.join(timeout)

    # what the responder asks for

    def hold(self, tid: str, because: str, *, resume: bool | None = None) -> bool:
        """Stop the torrent (queued; recorded first). Returns False when it was held already."""
        with self.lock:
            if tid in self.holds:
                return False
            if resume is None:
                resume = self._was_running(tid)
            self.holds[tid] = {"torrent_id": tid, "since": now_iso(), "because": because, "resume": resume,
                               "steps": ["stop"], "stage": "stopping", "settled": False, "error": None}
            self._save(tid, new=True)
        self.wake.set()
        return True

    def settle(self, tid: str, *, recheck: bool = False, stale_if_unstopped: bool = False,
               because: str | None = None) -> None:
        """The payload is handled: recheck when asked (or, with stale_if_unstopped, when the stop has
        not reached qBittorrent yet: it may have read the drifted bytes meanwhile), start again if
        it was running, and end the hold."""
        with self.lock:
            hold = self.holds.get(tid)
            if hold is None:
                return
            steps = [s for s in hold["steps"] if s == "stop"]
            if recheck or (stale_if_unstopped and "stop" in steps):
                steps.append("recheck")
            if hold["resume"]:
                steps.append("start")
            hold.update(steps=steps, settled=True, stage=steps[0] + "ing" if steps else "done")
            if because:
                hold["because"] = because
            self._save(tid)
        self.wake.set()

    def unsettle(self, tid: str, because: str) -> None:
        """Handling failed or must start over: the torrent stays stopped (a stop is queued again if
        it was going to be started)."""
        with self.lock:
            hold = self.holds.get(tid)
            if hold is None:
                return
            steps = ["stop"] if "start" in hold["steps"] or hold["stage"] in ("starting", "done") else \
                [s for s in hold["steps"] if s == "stop"]
            hold.update(steps=steps, settled=False, because=because, stage="stopping" if steps else "stopped")
            self.rechecking.pop(tid, None)
            self._save(tid)
        self.wake.set()

    def replace_steps(self, tid: str, steps: list[str], *, because: str | None = None) -> None:
        """For a heal by the swarm: qBittorrent must recheck and download (start) while held."""
        with self.lock:
            hold = self.holds.get(tid)
            if hold is None:
                return
            hold.update(steps=list(steps), stage=steps[0] + "ing" if steps else "stopped")
            if because:
                hold["because"] = because
            self._save(tid)
        self.wake.set()

    def drop(self, tid: str) -> None:
        """Forget the hold (the torrent left qBittorrent, or the user took over)."""
        with self.lock:
            self.holds.pop(tid, None)
            self.rechecking.pop(tid, None)
            self.unsaved.discard(tid)
            try:
                trust.drop_hold(self.catalog, tid)
            except Exception:  # noqa: BLE001 - recorded at the next successful save
                log.exception("%s: cannot drop the hold in the catalog", tid[:12])

    def want_tags(self, tid: str, add=(), remove=()) -> None:
        with self.lock:
            old_add, old_remove = self.tags.get(tid, (set(), set()))
            add, remove = set(add), set(remove)
            self.tags[tid] = ((old_add - remove) | add, (old_remove - add) | remove)
        self.wake.set()

    # what others read

    def held(self, tid: str) -> bool:
        with self.lock:
            return tid in self.holds

    def info(self, tid: str) -> dict | None:
        with self.lock:
            hold = self.holds.get(tid)
            return dict(hold, steps=list(hold["steps"])) if hold else None

    def all(self) -> dict[str, dict]:
        with self.lock:
            return {t: dict(h, steps=list(h["steps"])) for t, h in self.holds.items()}

    def pending(self, tid: str) -> list[str]:
        with self.lock:
            hold = self.holds.get(tid)
            return list(hold["steps"]) if hold else []

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

    def _was_running(self, tid: str) -> bool:
        try:
            if trust.is_user_stopped(self.catalog, tid):
                return False
        except Exception:  # noqa: BLE001 - an unreadable catalog: qBittorrent's view decides
            log.exception("%s: cannot read the user's stops", tid[:12])
        info = self.live(tid)
        return True if info is None else running(info)

    def _save(self, tid: str, new: bool = False) -> None:
        hold = self.holds.get(tid)
        if hold is None:
            return
        try:
            if new or tid in self.unsaved:
                trust.put_hold(self.catalog, tid, because=hold["because"], resume=hold["resume"], steps=hold["steps"],
                               stage=hold["stage"], settled=hold["settled"])
                saved = trust.get_hold(self.catalog, tid)
                hold["since"] = saved["since"] if saved else hold["since"]
            else:
                trust.update_hold(self.catalog, tid, steps=hold["steps"], stage=hold["stage"], settled=hold["settled"],
                                  because=hold["because"], error=hold.get("error"))
            self.unsaved.discard(tid)
        except Exception as exc:  # noqa: BLE001 - the disk under the catalog may be full: act, save later
            self.unsaved.add(tid)
            log.error("%s: cannot record seedward's hold in the catalog (%s); kept in memory and retried", tid[:12], exc)

    def _run(self) -> None:
        while not self.stopping.is_set():
            wait = self.tick()
            self.wake.wait(wait)
            self.wake.clear()

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
                self.qbt.stop(tid)
                self.last_stop[tid] = time.monotonic()
                self._done(tid, "stop", "stopped")
            elif step == "start":
                if last_start and not notified:
                    # the state and its tag first, so qBittorrent never shows it seeding as `healing`
                    notified = True
                    if self.on_settled is not None:
                        self.on_settled(tid)
                    self._apply_tags()
                if not trust.is_user_stopped(self.catalog, tid):
                    self.qbt.start(tid)
                self._done(tid, "start", "started")
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
        if self.on_settled is not None and not notified:
            self.on_settled(tid)
            self._apply_tags()

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
        checking = info["state"].startswith(CHECKING[0]) or info["state"] in CHECKING[1:]
        state[1] = seen = seen or checking
        elapsed = time.monotonic() - began
        over = not checking and (seen or elapsed > RECHECK_SETTLE)
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
