"""The fleet feature of `seedward serve`: on a shared catalog, one service per owner key (a
PostgreSQL advisory lock held by the service's catalog session: a second service started with the
same owner is refused), a heartbeat with a small summary every HEARTBEAT_SECONDS, and the fleet
(every service, alive or gone, with its torrents and queue) under `service.fleet` in the status.
On the embedded SQLite catalog it only adds the fleet to the status (one member)."""

import logging
import os
import socket

from .. import __version__
from ..catalog import fleet as rows
from ..loops import Loop
from . import trail

log = logging.getLogger(__name__)


class FleetMember:
    def __init__(self, service):
        self.service = service
        self.catalog = service.catalog
        self.host = socket.gethostname()
        every = getattr(self.catalog, "heartbeat_seconds", rows.HEARTBEAT_SECONDS)
        self.loop = Loop("fleet-heartbeat", self.beat, every, stopping=service.stopping)
        ms = service.settings.manifests
        self.trail = Loop("manifests-push", self.push_trail, ms.push_minutes * 60) if ms.remote else None
        self.pushed: str | None = None
        self.push_error: str | None = None

    @property
    def shared(self) -> bool:
        return getattr(self.catalog, "engine", "sqlite") == "postgresql"

    def start(self) -> None:
        # the owner lock itself is taken by Service.start (rows.take_owner_lock), before any job runs
        if self.shared:
            self.loop.start()
        if self.trail is not None:
            self.trail.start()

    def stop(self) -> None:
        if self.trail is not None:
            self.trail.stop()
            self.push_trail()  # what the last minutes committed
        self.loop.stop()
        self.loop.join()
        if self.shared:
            try:
                rows.stopped(self.catalog)
            except Exception:  # noqa: BLE001 - the catalog may be gone; the heartbeat then goes stale
                log.warning("fleet: could not record this service as stopped")

    def beat(self):
        s = self.service
        summary = {"qbittorrent": {"state": s.sync.state, "url": s.qbt.url}}
        rows.heartbeat(self.catalog, host=self.host, pid=os.getpid(), version=__version__,
                       started_at=s.started_at or "", summary=summary)
        return None

    def push_trail(self):
        """Push the manifests to [manifests] remote when HEAD moved; a failure is one event per streak."""
        s = self.service
        repo = s.manifests.repo
        if not repo.head.is_valid() or repo.head.commit.hexsha == self.pushed:
            return None
        try:
            self.pushed = trail.push(s.manifests, s.settings.manifests.remote, self.catalog.owner)
            self.push_error = None
        except trail.TrailPushFailed as exc:
            if self.push_error is None:
                s.emit("manifests_push_failed", None, str(exc), level="warning")
            self.push_error = str(exc)
        return None

    def status(self, status: dict) -> None:
        status.setdefault("service", {})["fleet"] = rows.fleet(self.catalog)


def register(service) -> None:
    member = FleetMember(service)
    service.add_component(member)
    service.on_status(member.status)
