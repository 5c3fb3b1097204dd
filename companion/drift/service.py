"""Drift as a service component: the monitor, the responder, the scheduled scrub, and the
`heal` and `scrub` job kinds. `install(service)` plugs it in."""

import logging
import threading

from ..errors import NotFound
from .monitor import DriftMonitor
from .respond import Responder

log = logging.getLogger(__name__)


class DriftComponent:
    def __init__(self, service, *, reconcile: bool = True):
        self.service = service
        self.reconcile = reconcile
        self._store = None
        self._store_lock = threading.Lock()
        settings = service.settings
        self.responder = Responder(service.catalog, settings, service.home.quarantine, qbt=service.qbt,
                                   read_chunk=self.read_chunk, emit=self._emit,
                                   recheck_timeout=settings.drift.recheck_timeout_seconds,
                                   swarm_stall=settings.drift.swarm_stall_seconds,
                                   swarm_timeout=settings.drift.swarm_timeout_seconds)
        self.monitor = DriftMonitor(service.catalog, self.responder, debounce=settings.service.debounce_seconds,
                                    on_intended=self._intended)
        self.scrub_stop = threading.Event()
        self.scrub_thread: threading.Thread | None = None
        service.register_job("heal", self._heal_job)
        service.register_job("scrub", self._scrub_job)
        if hasattr(service, "register_op"):
            from .restore import restore_op

            service.register_op("restore", restore_op(self.monitor, self.responder))

    def _emit(self, kind, torrent_id, message, level="info", **detail):
        self.service.emit(kind, torrent_id, message, level=level, **detail)

    def read_chunk(self, chunk_id: str) -> bytes:
        return self._open_store().read_chunk(chunk_id)

    def _intended(self, meta, save_path, lease) -> None:
        """A write under a valid lease: the new bytes become the baseline (snapshot when they still
        match the torrent); nothing is healed."""
        from ..lease import record_intended

        state = record_intended(self.service.catalog, self.service.manifests, meta, save_path, lease,
                                store=self._open_store())
        self.service.emit("state", meta.id, f"protection: {state}", state=state)

    def _open_store(self):
        with self._store_lock:
            if self._store is None:
                from ..store import Store

                self._store = Store.for_home(self.service.home, self.service.settings, self.service.catalog)
            return self._store

    def start(self) -> None:
        self.monitor.start(reconcile=self.reconcile)
        hours = self.service.settings.scrub.interval_hours
        if hours > 0:
            self.scrub_thread = threading.Thread(target=self._scrub_timer, args=(hours * 3600,), name="drift-scrub",
                                                 daemon=True)
            self.scrub_thread.start()

    def stop(self) -> None:
        self.scrub_stop.set()
        self.responder.stopping.set()  # a recheck or swarm wait in progress ends now
        self.monitor.stop()
        self.responder.stop()

    def _scrub_timer(self, every: float) -> None:
        while not self.scrub_stop.wait(every):
            self.service.enqueue("scrub", None, reason="scheduled")

    def _heal_job(self, service, job) -> None:
        """`action heal`: quick-verify every file of the torrent and respond to what is found."""
        if service.catalog.get_torrent(job.torrent_id) is None:
            raise NotFound(f"no torrent {job.torrent_id} in the catalog")
        with self.monitor.lock:
            self.monitor.busy.add(job.torrent_id)
        try:
            outcome = self.monitor.check_files(job.torrent_id, None, reason=job.payload.get("reason", "manual"))
        finally:
            with self.monitor.lock:
                self.monitor.busy.discard(job.torrent_id)
        if outcome is None:
            service.emit("intact", job.torrent_id, "every piece matches its baseline; nothing to heal")

    def _scrub_job(self, service, job) -> None:
        from ..scrub import run_scrub

        scrub = service.settings.scrub
        run_scrub(self.monitor, scrub.share_percent, scrub.read_rate_mb)
        if "verify_packs" in service.job_kinds:  # the store's new packs, read back from disk
            service.enqueue("verify_packs", None, reason="scrub")


def install(service, **kwargs) -> DriftComponent:
    component = DriftComponent(service, **kwargs)
    service.add_component(component)
    return component


def register(service) -> None:
    """`seedward serve` (and the demo) plug features in by module (companion.service.features)."""
    install(service)
