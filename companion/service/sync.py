"""The sync loop: follows qBittorrent's `sync/maindata` (incremental, by rid) on its own thread.

It only decides and enqueues; hashing happens in the job workers. Unreachable qBittorrent:
bounded exponential backoff, then a full resync (rid 0). Refused login: one try per
`login_retry_seconds`, so qBittorrent never bans us. Torrents missing after a reconnect are
marked removed only after a grace period (qBittorrent loads its torrents after its WebUI is up).
A call that has not returned after `ANSWER_SECONDS` (qBittorrent frozen, e.g. SIGSTOP) shows as
`not_answering`: not connected, whatever the TCP connection says.

Features follow the loop without calls of their own: `listeners` get (hash, torrent) for every
torrent a sync changed, `after_sync` callbacks run after each sync with the changed hashes (the
drift component checks its invariants there), and `get(hash)` is the last view of one torrent.
"""

import logging
import os
import threading
import time

from ..qbt import BUSY_STATES, QbtError, QbtLoginFailed, QbtUnreachable, is_complete
from ..errors import DiskFull
from ..loops import Backoff, Loop
from .protect_job import HAS_BASELINE, split_tags

log = logging.getLogger(__name__)

ANSWER_SECONDS = 3.0  # a qBittorrent call pending this long: shown as not answering (not connected)

# Fields whose change can matter for protection; the rest are counters.
RELEVANT = {"state", "progress", "amount_left", "save_path", "content_path", "name", "category", "tags"}


def _norm(path) -> str:
    return os.path.normpath(str(path)) if path else ""


class SyncLoop:
    def __init__(self, service):
        self.service = service
        self.qbt = service.qbt  # one instance's client (service/instances.py: a loop per instance)
        qs = service.settings.qbittorrent
        self.poll_seconds = qs.poll_seconds
        self.backoff = Backoff(1.0, qs.backoff_max_seconds)
        self.grace = service.settings.service.removal_grace_seconds
        self.sweep_seconds = service.settings.service.sweep_minutes * 60
        self.live: dict[str, dict] = {}
        self.rid = 0
        self.connected = False
        self._state = "connecting"
        self._error: str | None = None
        self.call_since: float | None = None  # monotonic start of the qBittorrent call in flight
        self.connected_at: float | None = None  # monotonic time of the last (re)connect
        self.listeners: list = []  # fn(hash, torrent) for each torrent a sync changed
        self.after_sync: list = []  # fn(changed hashes, full_update) after each sync
        self.syncs = 0
        self.audit_at: float | None = None
        self.next_sweep = time.monotonic() + self.sweep_seconds
        self._lock = threading.Lock()
        self._thread: Loop | None = None

    def start(self) -> None:
        self._thread = Loop(self.name, self.once, every=self.poll_seconds, stopping=self.service.stopping).start()

    def join(self, timeout: float = 30.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def name(self) -> str:
        return "sync"

    def snapshot(self) -> dict[str, dict]:
        with self._lock:
            return {h: dict(t) for h, t in self.live.items()}

    def get(self, h: str) -> dict | None:
        with self._lock:
            t = self.live.get(h)
            return dict(t) if t is not None else None

    @property
    def state(self) -> str:
        since = self.call_since
        if since is not None and self._state == "connected" and time.monotonic() - since > ANSWER_SECONDS:
            return "not_answering"
        return self._state

    @state.setter
    def state(self, value: str) -> None:
        self._state = value

    @property
    def error(self) -> str | None:
        since = self.call_since
        if self.state == "not_answering" and since is not None:
            return f"qBittorrent has not answered for {time.monotonic() - since:.0f}s"
        return self._error

    @error.setter
    def error(self, value: str | None) -> None:
        self._error = value

    @property
    def answering(self) -> bool:
        return self.state == "connected"

    def once(self) -> float:
        """One sync (companion.loops.Loop runs it); returns the seconds until the next."""
        try:
            self.step()
            return self.poll_seconds
        except QbtLoginFailed as exc:
            self._down("login_failed", exc)
            return max(1.0, self.qbt.login_wait)
        except (QbtUnreachable, QbtError) as exc:
            self._down("unreachable", exc)
        except DiskFull as exc:  # the catalog's disk: one line, and the loop goes on when there is room
            log.warning("sync: %s", exc)
        except Exception as exc:  # a bug here must not spin or kill the loop
            log.exception("sync loop error")
            self._down("error", exc)
        return self.backoff.next()

    def run(self) -> None:
        """Sync until the service stops (on the calling thread)."""
        while not self.service.stopping.is_set():
            self.service.stopping.wait(self.once())

    def _down(self, state: str, exc: Exception) -> None:
        was = self._state
        self.connected = False
        self.state, self.error = state, str(exc)
        if was != state:
            try:
                self.service.emit(f"qbt_{state}", None, str(exc), level="error" if state == "login_failed" else "warning",
                                  **self.event_fields())
            except Exception:  # noqa: BLE001 - the event cannot be stored (a full disk): the loop goes on
                log.warning("qBittorrent %s: %s (event not recorded)", state, exc)

    def _timed(self, fn, *args):
        self.call_since = time.monotonic()
        try:
            return fn(*args)
        finally:
            self.call_since = None

    def step(self) -> None:
        s = self.service
        if not self.connected:
            version = self._timed(self.qbt.connect)
            self.connected, self.rid, self.error = True, 0, None
            self.backoff.reset()
            self.state = "connected"
            self.connected_at = time.monotonic()
            self.audit_at = time.monotonic() + self.grace
            s.emit("qbt_connected", None, f"connected to qBittorrent {version} at {self.qbt.url}", version=version,
                   **self.event_fields())
        data = self._timed(self.qbt.sync, self.rid)
        self.apply(data)
        self.rid = data["rid"]
        self.syncs += 1
        s.drain_spool()
        now = time.monotonic()
        if self.audit_at is not None and now >= self.audit_at:
            self.audit_removed()
            self.audit_at = None
        if now >= self.next_sweep:
            self.next_sweep = now + self.sweep_seconds
            s.start_sweep()

    def apply(self, data: dict) -> None:
        changes = data["torrents"]
        if data["full_update"] and self.audit_at is None:
            # qBittorrent restarted under us (a new rid series): check for removals after the grace
            self.audit_at = time.monotonic() + self.grace
        with self._lock:
            if data["full_update"]:
                old = self.live
                self.live = {h: dict(t) for h, t in changes.items()}
                prev = {h: old.get(h, {}) for h in changes}
            else:
                prev = {h: dict(self.live.get(h, {})) for h in changes}
                for h, fields in changes.items():
                    self.live.setdefault(h, {}).update(fields)
            removed = list(data["torrents_removed"])
            for h in removed:
                self.live.pop(h, None)
            current = {h: dict(self.live[h]) for h in changes if h in self.live}
        for h in removed:
            self.service.torrent_removed(h)
        for h, t in current.items():
            t = self.view(h, t)
            self.consider(h, t, prev.get(h, {}), set(changes[h]), data["full_update"])
            for fn in self.listeners:
                _safely(fn, h, t)
        for fn in self.after_sync:
            _safely(fn, set(current) | set(removed), data["full_update"])

    def consider(self, h: str, t: dict, prev: dict, keys: set, full: bool) -> None:
        """Queue a protect job when a complete torrent is new, moved, renamed or re-policied."""
        if not full and not keys & RELEVANT:
            return  # only counters changed (speeds, ratio, peers): the common case while seeding
        if not is_complete(t):
            return
        s = self.service
        row = s.catalog.get_torrent(h)
        reason = None
        if row is None or row["protection"] == "pending":
            reason = "added"
        elif row["removed_at"]:
            reason = "re-added"
        elif row["protection"] in HAS_BASELINE + ("excluded", "baseline_bad", "unreachable") and _norm(t.get("save_path")) != _norm(row["save_path"]):
            reason = "moved"
        elif not full and keys & {"content_path", "name"} and prev:
            reason = "renamed"
        elif keys & {"category", "tags"} and self._policy_level(t) != row["policy"]:
            reason = "policy"
        elif row["protection"] == "baseline_bad" and prev.get("state") in BUSY_STATES:
            reason = "rechecked"  # qBittorrent re-checked it: the user may have fixed the payload
        if reason:
            s.enqueue("protect", h, reason=reason)

    def view(self, h: str, t: dict) -> dict:
        """The torrent as seedward sees it (several instances: merged over the ones holding it)."""
        return t

    def event_fields(self) -> dict:
        """What this loop's qbt_* events also say (several instances: which one)."""
        return {}

    def owns(self, row) -> bool:
        """Is this catalog row this loop's to audit (several instances: its instance's rows)?"""
        return True

    def _policy_level(self, t: dict) -> str:
        tags = [x for x in split_tags(t.get("tags", "")) if not x.startswith("seedward:")]
        return self.service.settings.protection.policy_for(t.get("category") or "", tags).level

    def audit_removed(self) -> None:
        """After a (re)connect: torrents cataloged from qBittorrent but no longer in it are removed."""
        live = self.snapshot()
        for row in self.service.catalog.list_torrents(include_removed=False):
            if row["id"] not in live and row["qbt_state"] and self.owns(row):
                self.service.torrent_removed(row["id"])


def _safely(fn, *args) -> None:
    try:
        fn(*args)
    except Exception:  # a feature's bug must not stop following qBittorrent
        log.exception("sync listener %r failed", fn)
