"""Drift as a service component: the monitor, the responder and its qBittorrent steps, the
invariant checks after every sync, the scheduled scrub, the `heal`, `scrub` and `protect` job
kinds (the protect job gets the monitor as its guard), the user's `start` / `stop`, and the
`restore` op. `install(service)` plugs it in."""

import logging
import os
import threading
from functools import partial

from .. import ownpaths
from ..catalog import trust
from ..errors import BadInput, NotFound
from ..loops import Loop
from ..service.protect_job import protect_torrent
from . import userstop
from .invariants import Invariants
from .monitor import DriftMonitor
from .qbtsteps import QbtSteps, running
from .respond import Responder

log = logging.getLogger(__name__)

ID = {"type": "string", "pattern": "^[0-9a-fA-F]{1,64}$"}
USER_ARGS = {"type": "object", "required": ["op", "id"], "additionalProperties": False, "properties": {
    "op": {"type": "string"}, "id": ID, "force": {"type": "boolean"},
    "operator": {"type": "string", "maxLength": 200},
    "instance": {"type": "string", "maxLength": 40}}}  # several qBittorrent instances: only this one


class DriftComponent:
    def __init__(self, service, *, reconcile: bool = True):
        self.service = service
        self.reconcile = reconcile
        self._store = None
        self._store_lock = threading.Lock()
        settings = service.settings
        sync = getattr(service, "sync", None)
        live = sync.get if sync is not None else None
        self.steps = QbtSteps(service.catalog, service.qbt, emit=self._emit, live=live,
                              recheck_timeout=settings.drift.recheck_timeout_seconds)
        self.responder = Responder(service.catalog, settings, service.home.quarantine, qbt=service.qbt,
                                   read_chunk=self.read_chunk, emit=self._emit, steps=self.steps, live=live,
                                   swarm_stall=settings.drift.swarm_stall_seconds,
                                   swarm_timeout=settings.drift.swarm_timeout_seconds)
        self.responder.reprotect = lambda tid: service.enqueue("protect", tid, reason="healed", force=True)
        self.responder.own_paths = lambda paths: ownpaths.reason(service.home, settings, paths)
        self.responder.resnapshot = lambda tid: (service.enqueue("snapshot", tid, reason="auto")
                                                 if "snapshot" in service.job_kinds else None)
        self.monitor = DriftMonitor(service.catalog, self.responder, debounce=settings.service.debounce_seconds,
                                    on_intended=self._intended)
        self.invariants = Invariants(self)
        self.scrub_loop: Loop | None = None
        service.register_job("heal", self._heal_job)
        service.register_job("scrub", self._scrub_job)
        service.register_job("protect", partial(protect_torrent, guard=self))
        service.register_job("stop", lambda service, job: self.user_stop(job.torrent_id, "action"))
        service.register_job("start", lambda service, job: self.user_start(job.torrent_id, force=False))
        if hasattr(service, "on_status"):
            service.on_status(self._status)
        if sync is not None:
            sync.listeners.append(self._seen)
            sync.after_sync.append(self.invariants.after_sync)
        if hasattr(service, "register_op"):
            from .restore import RESTORE_ARGS, restore_op

            service.register_op("restore", restore_op(self.monitor, self.responder), schema=RESTORE_ARGS)
            service.register_op("user_stop", self._stop_op, schema=USER_ARGS)
            service.register_op("user_start", self._start_op, schema=USER_ARGS)

    def _emit(self, kind, torrent_id, message, level="info", **detail):
        self.service.emit(kind, torrent_id, message, level=level, **detail)

    def read_chunk(self, chunk_id: str) -> bytes:
        return self._open_store().read_chunk(chunk_id)

    def _intended(self, meta, save_path, lease) -> None:
        """A write under a valid lease: recorded as intended (lease.record_intended); nothing is healed."""
        from ..lease import record_intended

        state = record_intended(self.service.catalog, self.service.manifests, meta, save_path, lease,
                                store=self._open_store())
        self.responder.set_state(meta.id, state)

    def _open_store(self):
        with self._store_lock:
            if self._store is None:
                from ..store import Store

                self._store = Store.for_home(self.service.home, self.service.settings, self.service.catalog)
            return self._store

    def start(self) -> None:
        self.steps.start()
        self.monitor.start(reconcile=self.reconcile)
        hours = self.service.settings.scrub.interval_hours
        if hours > 0:
            self.scrub_loop = Loop("drift-scrub", lambda: self.service.enqueue("scrub", None, reason="scheduled") and None,
                                   every=hours * 3600, first_wait=True).start()

    def stop(self) -> None:
        if self.scrub_loop is not None:
            self.scrub_loop.stop()
        self.responder.stopping.set()  # a swarm wait in progress ends now
        self.monitor.stop()
        self.steps.stop()
        self.responder.stop()

    # the protect job's guard: watched from before the verifying read

    def begin_verify(self, tid: str, content_path) -> float:
        return self.monitor.begin_verify(tid, content_path)

    def changed_since(self, tid: str, since: float) -> bool:
        return self.monitor.changed_since(tid, since)

    def verified(self, tid: str, since: float) -> None:
        self.monitor.verified(tid, since)

    def respond_unverified(self, meta, save_path, result) -> None:
        with self.monitor.claimed(meta.id, wait=30) as mine:
            if not mine:
                self.monitor.retry_now(meta.id, "drift found by its first verification")
                return
            self.responder.respond_unverified(meta, save_path, result, reason="first verification")

    def _seen(self, h: str, t: dict) -> None:
        """The sync loop saw a torrent change: one without a baseline is watched through its content."""
        content = t.get("content_path")
        if not content or not os.path.isabs(content):
            return  # (qBittorrent may report a bare name before it has placed the files)
        row = self.service.catalog.get_torrent(h)
        if row is None or row["protection"] == "pending":
            self.monitor.watch_pending(h, content)

    # the user's own start and stop (through qBittorrent, recorded as the user's choice)

    def _qbt(self, instance: str | None):
        qbt = self.service.qbt
        return qbt.only(instance) if instance and hasattr(qbt, "only") else qbt

    def user_stop(self, tid: str, operator: str = "", instance: str | None = None) -> dict:
        out = userstop.user_stop(self.service.catalog, self._qbt(instance), tid, operator=operator, steps=self.steps)
        self.service.emit("user_stopped", tid, f"stopped by the user{f' ({operator})' if operator else ''}; "
                          "seedward will not start it", operator=operator)
        return out

    def user_start(self, tid: str, force: bool = False, operator: str = "", instance: str | None = None) -> dict:
        out = userstop.user_start(self.service.catalog, self._qbt(instance), tid, state=self.responder.state(tid),
                                  force=force, operator=operator, steps=self.steps)
        self.service.emit("user_started", tid, f"started by the user{' (--force)' if force else ''}", force=force,
                          operator=operator)
        return out

    def _resolve(self, message: dict) -> str:
        try:
            return self.service.catalog.resolve_id(str(message["id"]))
        except NotFound:
            live = [h for h in self.service.sync.snapshot() if h.startswith(str(message["id"]).lower())]
            if len(live) != 1:
                raise
            return live[0]

    def _stop_op(self, message: dict) -> dict:
        return self.user_stop(self._resolve(message), str(message.get("operator", "")), message.get("instance"))

    def _start_op(self, message: dict) -> dict:
        return self.user_start(self._resolve(message), bool(message.get("force")), str(message.get("operator", "")),
                               message.get("instance"))

    # status

    def _status(self, status: dict) -> None:
        cat = self.service.catalog
        holds = self.steps.all()
        users = trust.user_stops(cat)
        linked = trust.hardlinked(cat)
        work = self.monitor.status()
        for entry in status.get("torrents", []):
            tid = entry["id"]
            if tid in self.responder.overlay:
                entry["protection"] = self.responder.overlay[tid]
            entry["stopped"] = stopped_entry(holds.get(tid), users.get(tid), self.service.sync.get(tid))
            entry["hardlinked"] = linked.get(tid, [])
            retry = work["retries"].get(tid)
            entry["drift"] = ({"checking": tid in work["checking"], "retry_in": retry["in_seconds"] if retry else None,
                               "why": retry["why"] if retry else None}
                              if retry or tid in work["checking"] or tid in work["suspect"] else None)
        status.setdefault("service", {})["drift"] = {
            "invariants": self.invariants.status(),
            "qbittorrent_steps": {"waiting": self.steps.error, "pending": {t: h["steps"] for t, h in holds.items()
                                                                           if h["steps"]}},
            "watches": dict(zip(("folders", "hard_links"), self.monitor.watch.watch_count())),
        }

    # jobs

    def _heal_job(self, service, job) -> None:
        """`action heal`: quick-verify every file of the torrent and respond to what is found."""
        if service.catalog.get_torrent(job.torrent_id) is None:
            raise NotFound(f"no torrent {job.torrent_id} in the catalog")
        with self.monitor.claimed(job.torrent_id, wait=60) as mine:
            if not mine:
                raise BadInput(job.torrent_id[:12], "is being checked or healed right now; try again when it is done")
            outcome = self.monitor.check_files(job.torrent_id, None, reason=job.payload.get("reason", "manual"))
        if outcome is None:
            service.emit("intact", job.torrent_id, "every piece matches its baseline; nothing to heal")

    def _scrub_job(self, service, job) -> None:
        from .scrub import run_scrub

        scrub = service.settings.scrub
        run_scrub(self.monitor, scrub.share_percent, scrub.read_rate_mb)
        if "verify_packs" in service.job_kinds:  # the store's new packs, read back from disk
            service.enqueue("verify_packs", None, reason="scrub")


def stopped_entry(hold: dict | None, user, live: dict | None) -> dict | None:
    """"stopped by seedward since T, because ..." (or by the user) for status, or None when running."""
    if hold is not None:
        return {"by": "seedward", "since": hold["since"], "because": hold["because"], "steps": hold["steps"],
                "resume": hold["resume"], "error": hold.get("error")}
    if user is not None:
        return {"by": "user", "since": user["since"], "because": "seedward stop" + (f" ({user['operator']})"
                                                                                     if user["operator"] else "")}
    if live is not None and "state" in live and not running(live):
        return {"by": "qBittorrent", "since": None, "because": "stopped in qBittorrent (not by seedward)"}
    return None


def install(service, **kwargs) -> DriftComponent:
    component = DriftComponent(service, **kwargs)
    service.add_component(component)
    return component


def register(service) -> None:
    """`seedward serve` plugs features in by module (companion.service.features)."""
    install(service)
