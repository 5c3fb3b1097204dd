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
  service.register_op(name, fn, schema=None)
                                   fn(message: dict) -> dict answers control-socket op `name`;
                                   `schema`: its fields as JSON Schema (ops.schema(...); None: it
                                   takes none), checked before fn runs
  service.add_component(obj)       obj.start() when the service starts, obj.stop() in reverse
                                   order when it stops (a component added later starts at once)
Events the service emits: qbt_connected, qbt_unreachable, qbt_login_failed, hook, protected,
baseline_bad, damaged, excluded, relocated, removed, unreachable, reachable, job_failed, spool_bad,
service_started, service_stopping.

Several qBittorrent instances ([[instances]], issue 17): `service.instances` lists them,
`service.qbt` routes each call by torrent hash to the instances holding it (companion/instances.py),
`service.sync` is one sync loop per instance behind the one loop's API (service/instances.py).
"""

import fcntl
import logging
import os
import signal
import threading

from .. import __version__
from .. import instances as qbt_instances
from .. import spool
from ..catalog import Catalog, views
from ..catalog import fleet
from ..catalog import queue as jobqueue
from ..catalog.db import catalog_for
from ..catalog.db_time import now_iso
from ..control import ControlError
from ..errors import Locked, NotFound
from ..manifests import ManifestRepo
from ..qbt import Qbt
from ..scan import Scanner
from . import dashboard, ops
from .bus import EventBus
from .control import ControlServer
from .instances import Syncs, status_fields
from .reachable import ReachWatch
from .jobs import JobRunner
from .protect_job import protect_torrent
from .status import StatusBuilder
from .sweep import LocationSweep

log = logging.getLogger(__name__)

ACTIONS = {"verify": "protect", "snapshot": "snapshot", "heal": "heal", "drill": "drill", "stop": "stop",
           "start": "start"}
EVENTS_MAX = 5000  # events in one answer


class Service:
    def __init__(self, home, settings, *, qbt: Qbt | None = None, catalog: Catalog | None = None,
                 manifests: ManifestRepo | None = None):
        self.home = home.ensure()
        self.settings = settings
        self._own_catalog = catalog is None
        self.catalog = catalog or catalog_for(self.home, settings)  # the home's file, or [catalog] url
        self.manifests = manifests or ManifestRepo(self.home.manifests)
        # every instance's client (the login record shared per home), and the router over them
        self.instances = qbt_instances.build(settings, home=self.home, qbt=qbt)
        self.qbt = qbt_instances.Router(self.instances)
        self.stopping = threading.Event()
        self.bus = EventBus(self.catalog)
        jobs = max(1, settings.service.jobs)
        self.jobs = JobRunner(self, jobs)
        self.scanner = Scanner()
        # the read-rate cap is shared by the concurrent jobs
        self.read_rate = settings.service.read_rate_mb * 1e6 / jobs
        self.sync = Syncs(self, self.instances)
        self.sweep = LocationSweep(self)
        self.control = ControlServer(self.home.socket, self.dispatch, self.bus.subscribe, self.bus.unsubscribe)
        self.components: list = []
        self.ops: dict = {}
        self.validators = ops.Validators()
        for name, op_schema in ops.BUILTIN.items():
            self.validators.add(name, op_schema)
        self.status_builder = StatusBuilder(self)
        self._spool_tries: dict = {}
        self.status_extras: list = []
        self.started_at: str | None = None
        self._started = False
        self._lock_fd: int | None = None
        self._spool_lock = threading.Lock()
        self.register_job("protect", protect_torrent)
        self.reach = ReachWatch(self)  # folders that go away (unreachable) and come back
        self.on_status(lambda status: status_fields(self, status))
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

    def register_op(self, name: str, fn, schema: dict | None = None) -> None:
        self.validators.add(name, schema or ops.schema())
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
        fleet.take_owner_lock(self.catalog)  # a shared catalog: one service per owner key (issue 20)
        requeued = self.catalog.requeue_running()
        if requeued:
            log.info("%d interrupted jobs back in the queue", requeued)
        self.control.start()
        self.started_at = now_iso()
        self.drain_spool()
        self.jobs.start()
        self.sync.start()
        self.reach.start()
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
        self.reach.stop()
        self.sweep.join()
        self.jobs.stop()
        self.control.stop()
        self.status_builder.close()
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
        """Hand every spooled hook event to on_hook; bad ones go to spool/bad/ (never raises)."""
        with self._spool_lock:
            done = spool.drain(self.home.spool, lambda event: self.on_hook(event, source="spool"),
                               on_bad=self._spool_bad, tries=self._spool_tries)
            for inst in self.instances:  # a container's hook writes into its instance's hook_dir
                if inst.spool is not None:
                    done += spool.drain(inst.spool, lambda event, name=inst.name: self.on_hook(
                        event, source="spool", instance=name), on_bad=self._spool_bad, tries=self._spool_tries)
            return done

    def _spool_bad(self, where, reason: str) -> None:
        self.emit("spool_bad", None, f"spool: {where}: {reason}", level="warning", file=str(where), reason=reason)

    def on_hook(self, event: dict, source: str = "socket", instance: str | None = None) -> dict:
        try:
            torrent_id = spool.check_event(event)
        except spool.BadEvent as exc:
            raise ControlError(f"hook: {exc}") from None
        kind = event["event"]
        name = str(event.get("name", ""))[:200]
        instance = instance or event.get("instance") or None
        inst = next((i for i in self.instances if i.name == instance), self.instances[0])
        save_path = inst.path_map.to_host(event.get("save_path") or "") or None  # qBittorrent's path, mapped
        where = f" in {inst.name}" if len(self.instances) > 1 else ""
        self.emit("hook", torrent_id, f"qBittorrent{where}: {name or torrent_id} {kind} (via {source})", source=source,
                  hook_event=kind, instance=inst.name, save_path=save_path)
        job = self.enqueue("protect", torrent_id, reason=f"hook:{kind}")
        return {"id": torrent_id, "job": job}

    def torrent_removed(self, torrent_id: str) -> None:
        if self.sync.several and self.sync.get(torrent_id) is not None:
            return  # another instance still holds it
        row = self.catalog.get_torrent(torrent_id)
        if row is None or row["removed_at"]:
            return
        self.catalog.mark_removed(torrent_id)
        self.emit("removed", torrent_id, f"{row['name']}: removed from qBittorrent; history kept")

    def start_sweep(self) -> None:
        self.sweep.trigger()

    # control socket

    def status(self) -> dict:
        status = self.status_builder.build()
        for fn in self.status_extras:
            try:
                fn(status)
            except Exception:
                log.exception("status extension %r failed; skipped", fn)
        return status

    def dispatch(self, message: dict) -> dict:
        """Answer one control request (its fields checked against the op's schema first)."""
        self.validators.check(message)
        op = message["op"]
        if op == "ping":
            return {"pid": os.getpid(), "version": __version__, "started_at": self.started_at}
        if op == "status":
            return self.status()
        if op == "dashboard":  # the status, compact: what the TUI's dashboard shows (service/dashboard.py)
            return dashboard.compact(self.status())
        if op == "hook":
            return self.on_hook({k: v for k, v in message.items() if k != "op"}, source="socket")
        if op == "events":
            return {"events": views.events(self.catalog, since=message.get("since", 0),
                                           limit=max(1, min(message.get("limit") or 500, EVENTS_MAX)),
                                           last=min(message.get("last", 0), EVENTS_MAX),
                                           torrent_id=message.get("torrent_id"), after=message.get("after"))}
        if op == "jobs":
            return {"jobs": [dict(r) for r in self.catalog.pending_jobs()]}
        if op == "job_history":
            return views.job_history(self.catalog, limit=max(1, min(message.get("limit") or 500, EVENTS_MAX)))
        if op == "detail":
            torrent_id = self._torrent_id(message["id"])
            answer = views.detail(self.catalog, torrent_id)
            row = self.catalog.get_torrent(torrent_id)
            answer["continuity"] = self.status_builder.continuity(torrent_id, {
                "protection": row["protection"], "last_verified": row["last_verified"]} if row else None)
            return answer
        if op == "pieces":
            torrent_id = self.catalog.resolve_id(message["id"])
            row = self.catalog.get_torrent(torrent_id)
            return {"id": torrent_id, "pieces": views.pieces(self.catalog, torrent_id, row["protection"])}
        if op == "action":
            return self.action(message["action"], message["id"])
        if op in self.ops:
            return self.ops[op](message)
        raise ControlError(f"unknown op {op!r}")

    def _torrent_id(self, prefix: str) -> str:
        """A cataloged torrent's id from any unique prefix, else a torrent qBittorrent has."""
        try:
            return self.catalog.resolve_id(prefix)
        except NotFound:
            live = [h for h in self.sync.snapshot() if prefix and h.startswith(prefix.lower())]
            if len(live) != 1:
                raise
            return live[0]

    def action(self, action: str, prefix: str) -> dict:
        kind = ACTIONS.get(action)
        if kind is None:
            raise ControlError(f"unknown action {action!r} (one of {', '.join(sorted(ACTIONS))})")
        if kind not in self.jobs.kinds:
            raise ControlError(f"no installed feature runs {kind!r} jobs")
        torrent_id = self._torrent_id(prefix)
        payload = {"reason": action}
        if action == "verify":
            payload["force"] = True
        job = self.enqueue(kind, torrent_id, **payload)
        if job is None and jobqueue.try_now(self.catalog, kind, torrent_id) is not None:
            self.jobs.wake.set()  # the same job waited (its store out): asked for, it is tried now
        return {"id": torrent_id, "job": job}

