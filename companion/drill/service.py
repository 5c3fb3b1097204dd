"""Drills in the service: the "drill" job kind and the schedule (installed by `seedward serve`).

Every `[drill] interval_hours` the schedule queues `per_run` drills, least recently drilled
first, skipping torrents whose restore would not fit `scratch_max_mb`. Drills run one at a
time (bounded scratch space), their SHA-256 pass capped at `read_rate_mb`. At start, scratch
left by a crashed drill is removed and its drill recorded as failed.
"""

import logging
import threading
from datetime import datetime, timezone

from ..catalog import drills as rows
from ..loops import Backoff, Loop
from ..service.schedule import Schedule
from ..store.job import service_store
from .run import Drill
from .schedule import due, pick
from .scratch import cleanup_scratch

log = logging.getLogger(__name__)

CHECK_SECONDS = 60.0
_one_at_a_time = threading.Lock()


def register(service) -> None:
    service.register_job("drill", drill_job)
    service.register_job("drills", lambda service, job: DrillSchedule(service).queue_run())
    service.add_component(DrillSchedule(service))
    Schedule.of(service).add("drills", "drills")  # [schedule] drills, when set, replaces the interval
    if hasattr(service, "register_op"):
        service.register_op("drills", lambda message: {"drills": _last_drills(service.catalog)})


def _last_drills(catalog) -> list[dict]:
    from . import last_drills

    return last_drills(catalog)


def drill_job(service, job) -> None:
    """Payload: reason (schedule | action | ...), snapshot (id prefix, optional), swarm (bool)."""
    cfg = service.settings.drill
    with _one_at_a_time:
        drill = Drill(service.catalog, service_store(service), service.home, service.settings,
                      emit=lambda kind, tid, message, level="info", **data:
                      service.emit(kind, tid, message, level=level, **data))
        # a cancelled drill (the service is stopping) raises scan.Cancelled: the job stays queued
        drill.run(job.torrent_id, snapshot=job.payload.get("snapshot"), swarm=bool(job.payload.get("swarm", cfg.swarm)),
                  reason=job.payload.get("reason", "action"), cancel=job.cancel)


class DrillSchedule:
    """A service component: a thread that queues scheduled drills when they are due."""

    def __init__(self, service, clock=lambda: datetime.now(timezone.utc)):
        self.service = service
        self.clock = clock
        self.loop: Loop | None = None

    def start(self) -> None:
        removed = cleanup_scratch(self.service.home, self.service.settings, self.service.catalog)
        if removed:
            log.info("removed %d scratch folders of interrupted drills", len(removed))
        self.loop = Loop("drill-schedule", self._tick, CHECK_SECONDS,
                         backoff=Backoff(CHECK_SECONDS, CHECK_SECONDS)).start()

    def stop(self) -> None:
        if self.loop is not None:
            self.loop.stop()

    def _tick(self) -> None:
        self.tick()

    def tick(self) -> list[int]:
        """Queue the scheduled drills if they are due. Returns the queued job ids."""
        if self.service.settings.schedule.drills:  # [schedule] drills queues the runs instead
            return []
        cat, cfg = self.service.catalog, self.service.settings.drill
        last = rows.last_scheduled_run(cat)
        now = self.clock()
        if not due(datetime.fromisoformat(last) if last else None, now, cfg.interval_hours):
            return []
        return self.queue_run(now)

    def queue_run(self, now: datetime | None = None) -> list[int]:
        """Queue one run of scheduled drills now (`per_run` torrents, least recently drilled first)."""
        cat, cfg = self.service.catalog, self.service.settings.drill
        now = now or self.clock()
        candidates = [dict(r) for r in rows.drill_candidates(cat)]
        swarm = cfg.swarm
        picked, skipped = pick(candidates, max(0, cfg.per_run), cfg.scratch_max_mb * 2**20, swarm)
        for torrent_id in skipped:
            log.info("scheduled drills skip %s: its restore needs more than scratch_max_mb", torrent_id[:12])
        jobs = [j for j in (self.service.enqueue("drill", t, reason="schedule", swarm=swarm) for t in picked)
                if j is not None]
        rows.set_scheduled_run(cat, now.isoformat(timespec="milliseconds"))
        if jobs:
            log.info("queued %d scheduled drills", len(jobs))
        return jobs
