"""The service schedule: `[schedule]` entries queue job kinds when due, and retry failed runs.

Features add entries (`Schedule.of(service).add(name, kind, payload, failed_event)`); the entry's
spec is the `[schedule]` field of the same name (companion/timespec.py: "03:00", "weekly sun
04:00", "every 6h", ...; local time). A run missed while the service was down runs once when it
comes back. A failed run is tried again `retry_minutes` later, up to `retries` more times; when the
last try fails the schedule emits the entry's failed event (e.g. `archive_failed`, which
companion.notify turns into a notification). State lives in the catalog (catalog/schedule.py), so a
restart neither repeats a run nor forgets a retry.
"""

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..catalog import schedule as runs
from ..timespec import due, parse

log = logging.getLogger(__name__)

CHECK_SECONDS = 30.0


def local_now() -> datetime:
    return datetime.now().astimezone()


@dataclass
class Entry:
    name: str  # the [schedule] field
    kind: str  # the job kind queued
    payload: dict = field(default_factory=dict)
    failed_event: str = ""  # emitted when every try failed (default: <name>_failed)


class Schedule:
    """A service component: a thread that ticks every CHECK_SECONDS."""

    def __init__(self, service, clock=local_now, check_seconds: float = CHECK_SECONDS):
        self.service = service
        self.clock = clock
        self.check_seconds = check_seconds
        self.entries: dict[str, Entry] = {}
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None

    @classmethod
    def of(cls, service) -> "Schedule":
        """The service's one schedule (made, and added as a component, on first use)."""
        sched = getattr(service, "schedule", None)
        if sched is None:
            sched = cls(service)
            service.schedule = sched
            service.add_component(sched)
        return sched

    def add(self, name: str, kind: str, payload: dict | None = None, failed_event: str = "") -> None:
        if not hasattr(self.service.settings.schedule, name):
            raise ValueError(f"[schedule] has no entry {name!r}")
        self.entries[name] = Entry(name, kind, dict(payload or {}), failed_event or f"{name}_failed")

    def start(self) -> None:
        self.stopping.clear()
        self.thread = threading.Thread(target=self._loop, name="schedule", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        if self.thread is not None:
            self.thread.join(10)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("schedule tick failed; trying again in %.0fs", self.check_seconds)
            self.wake.wait(self.check_seconds)
            self.wake.clear()

    def tick(self) -> list[int]:
        """Queue what is due, follow what was queued. Returns the job ids queued now."""
        queued = []
        for entry in list(self.entries.values()):
            job = self._tick(entry)
            if job is not None:
                queued.append(job)
        return queued

    def _tick(self, entry: Entry) -> int | None:
        cat, cfg = self.service.catalog, self.service.settings.schedule
        spec = parse(getattr(cfg, entry.name))  # checked when the config was read
        if spec is None:
            return None
        now = self.clock()
        row = runs.get_run(cat, entry.name)
        if row is None:  # first sight: count from now
            runs.save_run(cat, entry.name, last_due=now.isoformat(timespec="seconds"))
            if spec.kind != "every":
                return None
            row = runs.get_run(cat, entry.name)
            row["last_due"] = ""
        if row["job_id"] is not None:
            outcome = runs.job_outcome(cat, row["job_id"])
            state, error = outcome or ("failed", "the queued job disappeared")
            if state in ("queued", "running"):
                return None
            if state == "done":
                runs.save_run(cat, entry.name, job_id=None, attempt=0, next_try=None, last_result="ok",
                              last_error=None)
                log.info("scheduled %s done", entry.name)
                return None
            self._failed(entry, row, error or "failed", now)
            row = runs.get_run(cat, entry.name)
        if row["next_try"] and now >= datetime.fromisoformat(row["next_try"]):
            return self._queue(entry, row["attempt"] + 1, "retry")
        if row["next_try"]:
            return None
        moment = due(spec, datetime.fromisoformat(row["last_due"]) if row["last_due"] else None, now)
        if moment is None:
            return None
        runs.save_run(cat, entry.name, last_due=moment.isoformat(timespec="seconds"))
        return self._queue(entry, 1, "schedule")

    def _queue(self, entry: Entry, attempt: int, reason: str) -> int | None:
        job = self.service.enqueue(entry.kind, None, **entry.payload, reason=reason, schedule=entry.name,
                                   attempt=attempt)
        if job is None:  # the same kind is already queued (by hand): let that one be this run
            log.info("scheduled %s: a %s job is already queued", entry.name, entry.kind)
            return None
        runs.save_run(self.service.catalog, entry.name, job_id=job, attempt=attempt, next_try=None)
        log.info("scheduled %s: queued job %d (try %d)", entry.name, job, attempt)
        return job

    def _failed(self, entry: Entry, row: dict, error: str, now: datetime) -> None:
        cat, cfg = self.service.catalog, self.service.settings.schedule
        tries = row["attempt"]
        if tries <= cfg.retries:
            later = now + timedelta(minutes=cfg.retry_minutes)
            runs.save_run(cat, entry.name, job_id=None, next_try=later.isoformat(timespec="seconds"),
                          last_error=error)
            log.warning("scheduled %s failed (try %d of %d): %s; trying again at %s", entry.name, tries,
                        cfg.retries + 1, error, later.isoformat(timespec="minutes"))
            return
        runs.save_run(cat, entry.name, job_id=None, attempt=0, next_try=None, last_result="failed", last_error=error)
        self.service.emit(entry.failed_event, None, f"scheduled {entry.name} failed {tries} times: {error}",
                          level="error", schedule=entry.name, job_kind=entry.kind, attempts=tries, error=error)
