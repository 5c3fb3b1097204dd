"""seedward's holds on torrents, as the qBittorrent steps executor keeps them: what it asked of
qBittorrent and why, cached in memory and written through to the catalog (catalog/trust.py) before
anything is sent, so a restart finds them. A hold the catalog cannot store (its disk full) is kept
in memory and stored when it can be.

A hold: {torrent_id, since, because, resume (start it again once handled), steps (what qBittorrent
is still to do, in order: stop, recheck | recheck_any, start), stage, settled (the payload is
handled: the hold ends once its steps are done), error}.
"""

import logging
import threading

from ..catalog import trust
from ..catalog.db_time import now_iso
from ..qbt import normalize_state

log = logging.getLogger(__name__)


def running(info: dict | None) -> bool:
    """qBittorrent is seeding or downloading it (not stopped/paused by anyone)."""
    return info is not None and not normalize_state(info.get("state", "")).startswith("stopped")


class Holds:
    """The base of QbtSteps: the record. Subclasses carry the steps out (`wake`, `sent`, `rechecking`)."""

    def __init__(self, catalog, live=None):
        self.catalog = catalog
        self.live = live or (lambda tid: None)
        self.lock = threading.RLock()
        self.wake = threading.Event()
        self.holds: dict[str, dict] = {}
        self.unsaved: set[str] = set()  # holds the catalog could not store yet (disk full): saved later
        self.rechecking: dict[str, list] = {}  # tid -> [sent at, seen checking]
        self.sent: dict[str, tuple[str, float]] = {}  # tid -> (stop | start, when): sent, not yet seen taken
        self.running_since: dict[str, float] = {}  # tid -> since when qBittorrent shows our start taken
        try:
            self.holds = trust.holds(catalog)
        except Exception:  # noqa: BLE001 - a catalog that cannot be read yet: start empty
            log.exception("cannot read seedward's holds from the catalog")

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
            answered = self.sent.get(tid, ("",))[0] == "stop"  # qBittorrent took the stop (not yet seen in its view)
            if recheck or (stale_if_unstopped and "stop" in steps and not answered):
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
            self.sent.pop(tid, None)
            self.running_since.pop(tid, None)
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
            self.sent.pop(tid, None)
            self.running_since.pop(tid, None)
            self.unsaved.discard(tid)
            try:
                trust.drop_hold(self.catalog, tid)
            except Exception:  # noqa: BLE001 - recorded at the next successful save
                log.exception("%s: cannot drop the hold in the catalog", tid[:12])

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
