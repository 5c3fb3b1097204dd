"""The job workers: take jobs from the catalog's persistent queue and run the registered function.

Hashing runs here, never on the sync loop. A job whose function raises an Error is marked
failed with that message; a cancelled job (service stopping) goes back to the queue; a job
that hits an unreachable qBittorrent goes back to the queue after a pause. A job that cannot reach
the store (an object store that is down or refuses it) waits in the queue, tried again later and
later (`STORE_WAITS`); it is not failed, and its wait is said in the catalog and the events. A job that hits a
full disk (catalog, store, quarantine, scratch) goes back to the queue too, and no worker takes
another job until there is room again (`disk_full`, then `disk_space_back`): the service keeps
running, answering and following qBittorrent meanwhile.
"""

import json
import logging
import threading
from dataclasses import dataclass, field

from ..catalog import queue as jobqueue
from ..errors import DiskFull, Error, StoreUnreachable
from ..loops import Loop
from ..qbt import QbtLoginFailed, QbtUnreachable
from ..scan import Cancelled

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 5.0  # enqueue wakes the workers; this only covers jobs queued by another process
SPACE_POLL_SECONDS = 5.0  # while a disk is full: how often the workers look for room again
STORE_WAITS = (15, 30, 60, 120, 300, 600, 900)  # seconds before try 2, 3, ...; then every 900 s


def store_wait(attempts: int) -> float:
    """How long a job that could not reach the store on its try `attempts` (1, 2, ...) waits."""
    return float(STORE_WAITS[min(max(attempts, 1), len(STORE_WAITS)) - 1])


@dataclass
class Job:
    id: int
    kind: str
    torrent_id: str | None
    payload: dict
    attempts: int
    waited: bool = False  # it waited for the store before (its queue row keeps why)
    cancel: threading.Event = field(default_factory=threading.Event)


class JobRunner:
    def __init__(self, service, workers: int):
        self.service = service
        self.workers = max(1, workers)
        self.kinds: dict[str, object] = {}
        self.running: dict[int, Job] = {}
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self._loops: list[Loop] = []
        self._lock = threading.Lock()
        self._torrent_locks: dict[str, threading.Lock] = {}
        self.disk_full: DiskFull | None = None  # while set, no job is taken
        self._stalled: list[int] = []  # jobs the full disk kept from going back to the queue

    def register(self, kind: str, fn) -> None:
        self.kinds[kind] = fn
        self.wake.set()

    def start(self) -> None:
        for n in range(self.workers):
            self._loops.append(Loop(f"job-{n}", self._step, IDLE_POLL_SECONDS, stopping=self.stopping,
                                    wake=self.wake).start())

    def stop(self, timeout: float = 30.0) -> None:
        self.stopping.set()
        with self._lock:
            for job in self.running.values():
                job.cancel.set()
        self.wake.set()
        for loop in self._loops:
            loop.join(timeout)

    def _torrent_lock(self, torrent_id: str | None) -> threading.Lock:
        with self._lock:
            return self._torrent_locks.setdefault(torrent_id or "", threading.Lock())

    def _step(self) -> float | None:
        """One worker's turn: run the next queued job and look again at once; None: wait for a job
        (enqueue wakes the workers) or IDLE_POLL_SECONDS."""
        if self.disk_full is not None:
            self._wait_for_space()
            return 0.0
        try:
            row = self.service.catalog.claim(tuple(self.kinds)) if self.kinds else None
        except DiskFull as exc:  # the catalog's own disk
            self._full(None, exc)
            return 0.0
        if row is None:
            return None
        job = Job(row["id"], row["kind"], row["torrent_id"], json.loads(row["payload"] or "{}"), row["attempts"],
                  waited=bool(row["error"]))  # a queued row's error is only ever a wait's reason (defer)
        with self._lock:
            self.running[job.id] = job
        try:
            self._run(job)
        except Exception:  # even recording the outcome failed: keep the worker alive
            log.exception("job %d (%s): outcome not recorded", job.id, job.kind)
        finally:
            with self._lock:
                self.running.pop(job.id, None)
        return 0.0

    def _run(self, job: Job) -> None:
        cat, service = self.service.catalog, self.service
        fn = self.kinds[job.kind]
        try:
            with self._torrent_lock(job.torrent_id):
                if self.stopping.is_set():
                    raise Cancelled(job.kind)
                fn(service, job)
        except Cancelled:
            jobqueue.requeue(cat, job.id)
            log.info("job %d (%s) interrupted; it stays queued", job.id, job.kind)
        except DiskFull as exc:
            self._full(job, exc)
        except (QbtUnreachable, QbtLoginFailed) as exc:
            jobqueue.requeue(cat, job.id)
            log.warning("job %d (%s) waits for qBittorrent: %s", job.id, job.kind, exc)
            self.stopping.wait(min(30.0, 2.0 * job.attempts))
        except StoreUnreachable as exc:
            self._wait_for_store(job, exc)
        except Error as exc:
            cat.finish(job.id, error=str(exc))
            service.emit("job_failed", job.torrent_id, f"{job.kind} failed: {exc}", level="error", job=job.id,
                         job_kind=job.kind)
        except Exception as exc:  # a broken job function must not kill its worker
            log.exception("job %d (%s) crashed", job.id, job.kind)
            cat.finish(job.id, error=f"internal error: {type(exc).__name__}: {exc}")
            service.emit("job_failed", job.torrent_id, f"{job.kind} crashed: {type(exc).__name__}", level="error",
                         job=job.id, job_kind=job.kind)
        else:
            cat.finish(job.id)

    def _wait_for_store(self, job: Job, exc: StoreUnreachable) -> None:
        """The store is out: the job waits in the queue (other jobs go on), and is tried again."""
        wait = store_wait(job.attempts)
        try:
            later = jobqueue.defer(self.service.catalog, job.id, wait, str(exc))
        except DiskFull as full:  # the catalog's own disk: it waits for room as any job does
            self._full(job, full)
            return
        log.warning("job %d (%s) waits for the store, tried again at %s: %s", job.id, job.kind, later, exc)
        if not job.waited:  # said once per job (whatever its try); the catalog keeps the wait and its reason
            self.service.emit("store_unreachable", job.torrent_id,
                              f"{job.kind} waits for the store (tried again in {wait:.0f} s, then later and later):"
                              f" {exc}", level="warning", job=job.id, job_kind=job.kind, error=str(exc))

    def _full(self, job: Job | None, exc: DiskFull) -> None:
        """No space: the job goes back to the queue (or waits to, when the catalog itself is full)."""
        with self._lock:
            first = self.disk_full is None
            self.disk_full = exc
        if job is not None:
            try:
                jobqueue.requeue(self.service.catalog, job.id)
            except DiskFull:
                with self._lock:
                    self._stalled.append(job.id)
            log.error("job %d (%s) waits for disk space: %s", job.id, job.kind, exc)
        if first:
            self._emit("disk_full", f"{exc}; work resumes by itself when there is room", level="error",
                       path=exc.path, needed=exc.needed)

    def _wait_for_space(self) -> None:
        """One worker looks for room every few seconds; the others wait for it."""
        exc = self.disk_full
        if exc is None or self.stopping.wait(SPACE_POLL_SECONDS) or not exc.space_returned():
            return
        with self._lock:
            if self.disk_full is not exc:
                return
            stalled, self._stalled = self._stalled, []
        try:
            for job_id in stalled:
                jobqueue.requeue(self.service.catalog, job_id)
        except DiskFull as again:
            with self._lock:
                self._stalled = stalled
                self.disk_full = again
            return
        with self._lock:
            self.disk_full = None
        self._emit("disk_space_back", f"{exc.path}: room again; queued work resumes")
        self.wake.set()

    def _emit(self, kind: str, message: str, level: str = "info", **data) -> None:
        try:
            self.service.emit(kind, None, message, level=level, **data)
        except DiskFull:  # the event cannot be stored either: the log has it
            (log.error if level == "error" else log.info)("%s", message)
