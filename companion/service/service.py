"""The Service: qBittorrent adapter, catalog, persistent job queue, event bus, control socket,
and the components features plug in.

For features:
  service.register_job(kind, fn)   fn(service, job: Job) runs on a worker thread; raise an
                                   errors.Error to fail the job with that message; check
                                   job.cancel (a threading.Event) in long loops.
  service.enqueue(kind, torrent_id, **payload) -> job id | None (already queued or running)
  service.on(kind, fn)             fn(event: dict) for each event of that kind ("*": all)
  service.emit(kind, torrent_id, message, level="info", **data)
                                   stored in the catalog's events, pushed to subscribers
  service.on_status(fn)            fn(status: dict) adds a feature's fields to the status object
                                   (per torrent or under "service"); errors are logged, not fatal
  service.register_op(name, fn)   fn(message: dict) -> dict answers control-socket op `name`
  service.add_component(obj)       obj.start() when the service starts, obj.stop() in reverse
                                   order when it stops (a component added later starts at once)
Events the service emits: qbt_connected, qbt_unreachable, qbt_login_failed, hook, protected,
baseline_bad, damaged, excluded, relocated, removed, job_failed, service_started, service_stopping.
"""

import fcntl
import json
import logging
import os
import signal
import threading

from .. import __version__
from ..catalog import Catalog
from ..catalog.db_time import now_iso
from ..control import ControlError, ControlServer
from ..errors import Locked, NotFound
from ..manifests import ManifestRepo
from ..qbt import Qbt
from ..scan import Scanner
from .. import spool
from . import status as status_mod
from .bus import EventBus
from .jobs import JobRunner
from .protect_job import protect_torrent
from .sweep import LocationSweep
from .sync import SyncLoop

log = logging.getLogger(__name__)

HEX = set("0123456789abcdef")
ACTIONS = {"verify": "protect", "snapshot": "snapshot", "heal": "heal", "drill": "drill", "stop": "stop",
           "start": "start"}


def torrent_id_of(hash_v1: str, hash_v2: str) -> str | None:
    """qBittorrent's torrent hash from the hook's %I / %J ("-" or empty when absent)."""
    v2 = (hash_v2 or "").strip().lower()
    v1 = (hash_v1 or "").strip().lower()
    if len(v2) == 64 and set(v2) <= HEX:
        return v2[:40]
    if len(v1) == 40 and set(v1) <= HEX:
        return v1
    return None


class Service:
    def __init__(self, home, settings, *, qbt: Qbt | None = None, catalog: Catalog | None = None,
                 manifests: ManifestRepo | None = None):
        self.home = home.ensure()
        self.settings = settings
        self._own_catalog = catalog is None
        self.catalog = catalog or Catalog(self.home.catalog_db)
        self.manifests = manifests or ManifestRepo(self.home.manifests)
        self.qbt = qbt or Qbt.from_settings(settings.qbittorrent)
        self.stopping = threading.Event()
        self.bus = EventBus(self.catalog)
        jobs = max(1, settings.service.jobs)
        self.jobs = JobRunner(self, jobs)
        self.scanner = Scanner()
        # the read-rate cap is shared by the concurrent jobs
        self.read_rate = settings.service.read_rate_mb * 1e6 / jobs
        self.sync = SyncLoop(self)
        self.sweep = LocationSweep(self)
        self.control = ControlServer(self.home.socket, self.dispatch, self.bus.subscribe, self.bus.unsubscribe)
        self.components: list = []
        self.ops: dict = {}
        self.status_extras: list = []
        self.started_at: str | None = None
        self._started = False
        self._lock_fd: int | None = None
        self._spool_lock = threading.Lock()
        self.register_job("protect", protect_torrent)
        self.register_job("stop", lambda service, job: service.qbt.stop(job.torrent_id))
        self.register_job("start", lambda service, job: service.qbt.start(job.torrent_id))

    # extension points

    def register_job(self, kind: str, fn) -> None:
        self.jobs.register(kind, fn)

    @property
    def job_kinds(self) -> set[str]:
        return set(self.jobs.kinds)

    def enqueue(self, kind: str, torrent_id: str | None = None, **payload) -> int | None:
        job_id = self.catalog.enqueue(kind, torrent_id, **payload)
        self.jobs.wake.set()
        return job_id

    def on(self, kind: str, fn) -> None:
        self.bus.on(kind, fn)

    def emit(self, kind: str, torrent_id: str | None = None, message: str = "", **kwargs) -> dict:
        return self.bus.emit(kind, torrent_id, message, **kwargs)

    def on_status(self, fn) -> None:
        self.status_extras.append(fn)

    def register_op(self, name: str, fn) -> None:
        self.ops[name] = fn

    def add_component(self, obj) -> None:
        self.components.append(obj)
        if self._started:
            self._start_component(obj)

    def _start_component(self, obj) -> None:
        try:
            obj.start()
        except Exception:  # a broken feature is logged and skipped, never fatal
            log.exception("component %r failed to start; skipped", obj)

    # life cycle

    def start(self) -> "Service":
        self._take_lock()
        requeued = self.catalog.requeue_running()
        if requeued:
            log.info("%d interrupted jobs back in the queue", requeued)
        self.control.start()
        self.started_at = now_iso()
        self.drain_spool()
        self.jobs.start()
        self.sync.start()
        for obj in self.components:
            self._start_component(obj)
        self._started = True
        self.emit("service_started", None, f"seedward {__version__} serving {self.home.root} (pid {os.getpid()})",
                  pid=os.getpid(), requeued=requeued)
        return self

    def stop(self) -> None:
        """Graceful: stop components, the sync loop and workers (running jobs are cancelled and
        stay queued), then the control socket."""
        if self.stopping.is_set():
            return
        self.emit("service_stopping", None, "seedward service stopping")
        self.stopping.set()
        for obj in reversed(self.components):
            try:
                obj.stop()
            except Exception:
                log.exception("component %r failed to stop", obj)
        self.sync.join()
        self.sweep.join()
        self.jobs.stop()
        self.control.stop()
        self._started = False
        self._release_lock()
        if self._own_catalog:
            self.catalog.close()

    def run_forever(self) -> None:
        """Serve until SIGTERM or SIGINT (main thread only)."""
        done = threading.Event()

        def on_signal(signum, _frame):
            log.info("%s received: stopping", signal.Signals(signum).name)
            done.set()

        old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            while not done.wait(1.0):
                pass
        finally:
            self.stop()
            for sig, handler in old.items():
                signal.signal(sig, handler)

    def _take_lock(self) -> None:
        path = self.home.root / "service.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise Locked(self.home.root, f"a running seedward service (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # work sources

    def drain_spool(self) -> int:
        with self._spool_lock:
            return spool.drain(self.home.spool, lambda event: self.on_hook(event, source="spool"))

    def on_hook(self, event: dict, source: str = "socket") -> dict:
        kind = event.get("event")
        if kind not in ("added", "finished"):
            raise ControlError(f"hook event must be 'added' or 'finished', not {kind!r}")
        torrent_id = torrent_id_of(event.get("hash", ""), event.get("hash_v2", ""))
        if torrent_id is None:
            raise ControlError("hook event without a valid info hash")
        name = str(event.get("name", ""))[:200]
        self.emit("hook", torrent_id, f"qBittorrent: {name or torrent_id} {kind} (via {source})", source=source,
                  hook_event=kind)
        job = self.enqueue("protect", torrent_id, reason=f"hook:{kind}")
        return {"id": torrent_id, "job": job}

    def torrent_removed(self, torrent_id: str) -> None:
        row = self.catalog.get_torrent(torrent_id)
        if row is None or row["removed_at"]:
            return
        self.catalog.mark_removed(torrent_id)
        self.emit("removed", torrent_id, f"{row['name']}: removed from qBittorrent; history kept")

    def start_sweep(self) -> None:
        self.sweep.trigger()

    # control socket

    def status(self) -> dict:
        qbt = self.qbt
        sync = self.sync
        status = {
            "service": {
                "running": True,
                "pid": os.getpid(),
                "version": __version__,
                "started_at": self.started_at,
                "home": str(self.home.root),
                "qbittorrent": {
                    "url": qbt.url,
                    "state": sync.state,
                    "version": qbt.version or None,
                    "error": sync.error,
                    "next_login_in": round(qbt.login_wait, 1) if sync.state == "login_failed" else None,
                    "login_failures": qbt.login_failures,
                    "syncs": sync.syncs,
                },
                "queue": status_mod.queue_counts(self.catalog),
                "workers": self.jobs.workers,
                "job_kinds": sorted(self.jobs.kinds),
                "running_jobs": [{"id": j.id, "kind": j.kind, "torrent_id": j.torrent_id}
                                 for j in list(self.jobs.running.values())],
                "spool": len(spool.pending(self.home.spool)),
            },
            "torrents": status_mod.torrents(self.catalog, sync.snapshot()),
        }
        for fn in self.status_extras:
            try:
                fn(status)
            except Exception:
                log.exception("status extension %r failed; skipped", fn)
        return status

    def dispatch(self, message: dict) -> dict:
        op = message["op"]
        if op == "ping":
            return {"pid": os.getpid(), "version": __version__, "started_at": self.started_at}
        if op == "status":
            return self.status()
        if op == "hook":
            return self.on_hook(message, source="socket")
        if op == "events":
            return {"events": self.events(message)}
        if op == "jobs":
            return {"jobs": [dict(r) for r in self.catalog.pending_jobs()]}
        if op == "action":
            return self.action(str(message.get("action", "")), str(message.get("id", "")))
        if op in self.ops:
            return self.ops[op](message)
        raise ControlError(f"unknown op {op!r}")

    def events(self, message: dict) -> list[dict]:
        """Events after `since` (oldest first, at most `limit`); `last`: the newest N instead;
        `torrent_id`: only that torrent's."""
        try:
            since = int(message.get("since") or 0)
            limit = max(1, min(int(message.get("limit") or 500), 5000))
            last = int(message.get("last") or 0)
        except (TypeError, ValueError) as exc:
            raise ControlError(f"events: since, limit and last are integers ({exc})") from None
        where, params = "id > ?", [since]
        if message.get("torrent_id"):
            where += " AND torrent_id = ?"
            params.append(str(message["torrent_id"]))
        if last > 0:
            rows = self.catalog.query(f"SELECT * FROM events WHERE {where} ORDER BY id DESC LIMIT ?",
                                      (*params, min(last, 5000)))[::-1]
        else:
            rows = self.catalog.query(f"SELECT * FROM events WHERE {where} ORDER BY id LIMIT ?", (*params, limit))
        return [_event_row(r) for r in rows]

    def action(self, action: str, prefix: str) -> dict:
        kind = ACTIONS.get(action)
        if kind is None:
            raise ControlError(f"unknown action {action!r} (one of {', '.join(sorted(ACTIONS))})")
        if kind not in self.jobs.kinds:
            raise ControlError(f"no installed feature runs {kind!r} jobs")
        try:
            torrent_id = self.catalog.resolve_id(prefix)
        except NotFound:
            live = [h for h in self.sync.snapshot() if prefix and h.startswith(prefix.lower())]
            if len(live) != 1:
                raise
            torrent_id = live[0]
        payload = {"reason": action}
        if action == "verify":
            payload["force"] = True
        return {"id": torrent_id, "job": self.enqueue(kind, torrent_id, **payload)}


def _event_row(r) -> dict:
    event = dict(r)
    try:
        event["detail"] = json.loads(event.get("detail") or "{}")
    except ValueError:
        pass
    return event
