"""Drift detection: watch protected payloads, quick-verify what changed, hand drift to the responder.

Threads: watchdog's (producers: they only enqueue), the monitor's own (maps events to payload
files, stops a torrent at once when a protected file's stat changes, debounces), and one
verify worker (quick verify, classify, respond), so a long heal never delays a stop.
"""

import logging
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..catalog import drift as rows
from ..errors import Error
from ..locate import catalog_meta
from .classify import FALSE_ALARM
from .detect import detect_drift
from .debounce import Debouncer
from .watch import PayloadWatch, RawEvent

log = logging.getLogger(__name__)

WATCHED_STATES = ("protected", "damaged")


def same_stat(row, st: os.stat_result | None) -> bool:
    """The file looks as the catalog remembers it (size, mtime, inode, device)."""
    if st is None or row["inode"] is None:
        return False
    now = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)
    return now == (row["size"], row["mtime_ns"], row["inode"], row["device"])


def _stat(path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot stat %s: %s", path, exc.strerror)
        return None


class DriftMonitor:
    """start() / stop(). `responder` is a drift.respond.Responder."""

    def __init__(self, catalog, responder, *, debounce: float = 0.3, refresh_seconds: float = 2.0,
                 lease_check=None, rate: float = 0.0, on_intended=None):
        """on_intended(meta, save_path, lease): a write under a valid lease was verified (the service
        re-catalogs it with lease.record_intended); without it the write is only recorded."""
        self.catalog = catalog
        self.responder = responder
        self.events: queue.Queue = queue.Queue()
        self.watch = PayloadWatch(self.events)
        self.debouncer = Debouncer(debounce)
        self.refresh_seconds = refresh_seconds
        self.lease_check = lease_check if lease_check is not None else _lease_check()
        self.rate = rate
        self.metas: dict[str, object] = {}
        self.save_paths: dict[str, str] = {}
        self.versions: dict[str, tuple] = {}
        self.flagged: set[tuple[str, int]] = set()  # hard-linked files already reported
        self.suspects: dict[str, dict[int, float]] = {}  # torrent -> {file_index: first event time}
        self.busy: set[str] = set()
        self.intended: dict[str, object] = {}  # torrent -> the lease its last write was under
        self.on_intended = on_intended
        self.lock = threading.Lock()
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="drift-verify")
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()
        self.outcomes: list = []  # the responder's outcomes, newest last (bounded)
        self.idle = threading.Event()
        self.last_refresh = 0.0

    # lifecycle

    def start(self, reconcile: bool = True) -> None:
        self.watch.start()
        self.refresh()
        self.thread = threading.Thread(target=self._loop, name="drift-monitor", daemon=True)
        self.thread.start()
        if reconcile:
            from ..reconcile import reconcile as run_reconcile

            run_reconcile(self)

    def stop(self) -> None:
        self.stopping.set()
        self.events.put(None)
        if self.thread is not None:
            self.thread.join(10)
        self.watch.stop()
        self.worker.shutdown(wait=True, cancel_futures=True)

    # tracking

    def refresh(self) -> None:
        """Follow the catalog: watch the files of torrents in a watched state, stop watching others."""
        self.last_refresh = time.monotonic()
        want = {}
        for row in self.catalog.list_torrents(include_removed=False):
            if row["protection"] in WATCHED_STATES and row["torrent_file"] and row["save_path"]:
                want[row["id"]] = row
        tracked = self.watch.tracked()
        for tid in set(tracked) - set(want):
            self.watch.untrack(tid)
            self.metas.pop(tid, None)
            self.versions.pop(tid, None)
        for tid, row in want.items():
            version = (row["save_path"], row["updated_at"])
            if tid in tracked and self.versions.get(tid) == version:
                continue
            self.versions[tid] = version
            self.metas.pop(tid, None)
            try:
                self._track(tid, row)
            except Error as exc:
                log.warning("%s: cannot watch: %s", tid[:12], exc)

    def _track(self, tid: str, row) -> None:
        meta = self.meta(tid, row)
        files = self.catalog.get_files(tid)
        paths = {f["file_index"]: str(Path(row["save_path"]) / f["path"]) for f in files}
        linked = {f["file_index"] for f in files if (f["nlink"] or 1) > 1}
        self.watch.track(tid, paths, linked)
        self.save_paths[tid] = row["save_path"]
        for index in linked:
            if (tid, index) in self.flagged:
                continue
            self.flagged.add((tid, index))
            nlink = next(f["nlink"] for f in files if f["file_index"] == index)
            path = next(f["path"] for f in files if f["file_index"] == index)
            self.catalog.add_event(tid, "hardlinked", f"{meta.name}: {path} has {nlink} hard links: an edit "
                                   "through another link changes the seed (watched through its inode)",
                                   level="warning", path=path, nlink=nlink)

    def meta(self, tid: str, row=None):
        """The torrent with its files where the catalog has them (qBittorrent's renames applied)."""
        meta = self.metas.get(tid)
        if meta is None:
            meta, _ = catalog_meta(self.catalog, tid)
            self.metas[tid] = meta
        return meta

    # the event loop

    def _loop(self) -> None:
        while not self.stopping.is_set():
            with self.lock:
                deadline = self.debouncer.next_deadline()
            now = time.monotonic()
            timeout = self.refresh_seconds if deadline is None else max(0.0, deadline - now)
            timeout = min(timeout, max(0.0, self.last_refresh + self.refresh_seconds - now))
            try:
                event = self.events.get(timeout=timeout)
            except queue.Empty:
                event = None
            try:
                if event is not None:
                    self._on_event(event)
                    while True:  # drain what is already queued before acting
                        try:
                            more = self.events.get_nowait()
                        except queue.Empty:
                            break
                        if more is not None:
                            self._on_event(more)
                with self.lock:
                    due = self.debouncer.due(time.monotonic())
                for tid in due:
                    self._submit_check(tid)
                if time.monotonic() - self.last_refresh >= self.refresh_seconds:
                    self.refresh()
            except Exception:  # a bad event must not end drift detection
                log.exception("drift monitor: error while handling events")

    def _on_event(self, event: RawEvent) -> None:
        for tid, index in self.watch.lookup(event.path):
            self.suspect(tid, index, event.at, path=event.path)

    def suspect(self, tid: str, index: int, at: float, *, path: str | None = None, force: bool = False) -> None:
        """A protected file may have changed: stop the torrent at once if its stat differs from the
        catalog's, then verify once it has been quiet for the debounce time."""
        with self.lock:
            if tid in self.busy:
                return
        if self.responder.busy(tid):
            return
        row = rows.file_record(self.catalog, tid, index)
        if row is None:
            return
        file_path = path or os.path.join(self.save_paths.get(tid, ""), row["path"])
        if not force and same_stat(row, _stat(file_path)):
            return
        with self.lock:
            first = tid not in self.suspects
            self.suspects.setdefault(tid, {}).setdefault(index, at)
        lease = self.lease_check(self.catalog, file_path) if self.lease_check else None
        if lease is not None:
            self.intended[tid] = lease
        elif first:
            self.responder.quarantine_now(tid)
        with self.lock:
            self.debouncer.touch(tid, time.monotonic())

    def _submit_check(self, tid: str) -> None:
        with self.lock:
            if tid in self.busy:  # a heal is running: look again once it is done
                self.debouncer.touch(tid, time.monotonic())
                return
            files = self.suspects.pop(tid, {})
            if not files:
                return
            self.busy.add(tid)
            self.idle.clear()
        self.worker.submit(self._check, tid, files)

    def _check(self, tid: str, files: dict[int, float]) -> None:
        try:
            self.check_files(tid, set(files), detected_at=min(files.values()), reason="drift")
        except Exception as exc:
            log.exception("%s: drift check failed", tid[:12])
            self.catalog.add_event(tid, "drift_error", f"drift check failed: {exc}", level="error")
        finally:
            with self.lock:
                self.busy.discard(tid)
                if not self.busy and not self.suspects:
                    self.idle.set()

    def check_files(self, tid: str, indices: set[int] | None, *, detected_at: float | None = None,
                    reason: str = "drift", rate: float | None = None):
        """Quick-verify these files of one torrent, classify, respond. Returns the Outcome (or None
        when every file still matches)."""
        found = detect_drift(self.catalog, tid, indices, meta=self.meta(tid),
                             rate=self.rate if rate is None else rate)
        meta = found.meta
        for qf in found.result.files:
            drift = found.drifts[qf.file_index]
            if drift.kind != FALSE_ALARM or qf.stat is None:
                continue
            rec = rows.file_record(self.catalog, tid, qf.file_index)
            rows.update_file_stat(self.catalog, tid, qf.file_index, qf.stat)
            if qf.stat.nlink > 1 and rec is not None and (rec["nlink"] or 1) <= 1:
                path = next(e.path for e in meta.real_files if e.index == qf.file_index)
                self.watch.set_hardlinked(tid, qf.file_index, True)
                self.catalog.add_event(tid, "hardlinked", f"{meta.name}: {path} now has {qf.stat.nlink} hard "
                                       "links: an edit through another link changes the seed", level="warning",
                                       path=path)
        rows.record_checks(self.catalog, tid, {i: d.kind == FALSE_ALARM for i, d in found.drifts.items()},
                           kind="quick", reason=reason)
        damages = found.damages
        lease = self.intended.pop(tid, None)
        if lease is not None and damages:
            if self.on_intended is not None:
                self.on_intended(meta, found.save_path, lease)
            else:
                self.catalog.add_event(tid, "intended", f"{meta.name}: write under lease {lease.id} by "
                                       f"{lease.operator} to {', '.join(d.entry.path for d in damages)}; not healed",
                                       level="info", lease=lease.id)
            self.responder.release(tid)
            return None
        if not damages:
            self.responder.release(tid)
            if reason == "drift":
                self.catalog.add_event(tid, "false_alarm", f"{meta.name}: files changed on disk but every piece "
                                       "still matches", level="info")
            return None
        outcome = self.responder.respond(meta, found.save_path, damages, detected_at=detected_at, reason=reason)
        self.outcomes = (self.outcomes + [outcome])[-100:]
        return outcome

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """For tests and the benchmark: nothing queued, debounced or being checked."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                quiet = not self.busy and not self.suspects
                quiet = quiet and self.debouncer.next_deadline() is None
            if quiet and self.events.empty():
                return True
            time.sleep(0.05)
        return False


def _lease_check():
    try:
        from ..lease import valid_lease_for
    except ImportError:
        return None
    return valid_lease_for
