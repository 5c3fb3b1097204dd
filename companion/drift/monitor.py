"""Drift detection: watch protected payloads, quick-verify what changed, hand drift to the responder.

Threads: watchdog's and the inode watch's (producers: they only enqueue), the monitor's own (maps
events to payload files, has a torrent stopped at once when a protected file's stat changes,
debounces, schedules retries), and one verify worker (quick verify, classify, respond), so a long
heal never delays a stop.

A torrent is watched from the moment the service knows where its files are (`watch_pending`:
its content folder, while it is downloading or being verified), so the protect job can refuse a
verification that a write overlapped. Whoever works on a torrent's files outside the event path
(a heal, a scrub, `restore`) claims it first (`claimed(tid)`); events that arrive meanwhile are
kept and looked at again when the claim ends, so a change landing during a heal is never lost.
A drift that could not be handled (the disk full, the store unreadable, an error) is retried
with backoff until it is. (Its loop waits on the event queue, not on a clock: it is not a
companion.loops.Loop, which the periodic drift threads use: qBittorrent's steps, the scrub timer.)

Just over 400 lines on purpose: the monitor's thread owns its debounce, retry and watch state;
the watches (watch.py), links (links.py) and the responder (respond.py) are already apart.
"""

import logging
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from ..catalog import drift as rows
from ..catalog import trust
from ..errors import Error
from ..locate import catalog_meta
from . import check, links
from .links import lstat_or_none, same_stat
from .debounce import Debouncer
from .retries import Retries
from .watch import PayloadWatch, RawEvent

log = logging.getLogger(__name__)

WATCHED_STATES = ("protected", "damaged", "healing")
FULL_REFRESH = 300.0  # seconds between full passes over the catalog (the rest is incremental)
CHANGE_OVERLAP = 5.0  # seconds an incremental refresh looks back before the newest row it saw


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
        self.suspects: dict[str, dict[int, float]] = {}  # torrent -> {file_index: first event time}
        self._claims: set[str] = set()
        self.deferred: dict[str, dict[int, float]] = {}  # events that arrived while claimed
        self.seen: dict[str, float] = {}  # torrent -> monotonic time of the last event for its files
        self.flagged: set[tuple[str, int]] = set()  # hard-linked files already reported
        self.retries = Retries()
        self.intended: dict[str, object] = {}  # torrent -> the lease its last write was under
        self.on_intended = on_intended
        self.lock = threading.RLock()
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="drift-verify")
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()
        self.outcomes: list = []  # the responder's outcomes, newest last (bounded)
        self.last_refresh = 0.0
        self.last_full = 0.0
        self.newest_seen: str | None = None  # updated_at of the newest catalog row a refresh saw
        responder.retry = self.retry_later

    # lifecycle

    def start(self, reconcile: bool = True) -> None:
        steps = self.responder.steps
        self._own_steps = steps is not None and steps.thread is None
        if self._own_steps:
            steps.start()  # standalone (no service component): the monitor runs qBittorrent's steps too
        self.watch.start()
        self.refresh()
        self.thread = threading.Thread(target=self._loop, name="drift-monitor", daemon=True)
        self.thread.start()
        if reconcile:
            from .reconcile import reconcile as run_reconcile

            run_reconcile(self)

    def stop(self) -> None:
        self.stopping.set()
        self.events.put(None)
        if self.thread is not None:
            self.thread.join(10)
        self.watch.stop()
        self.worker.shutdown(wait=True, cancel_futures=True)
        if getattr(self, "_own_steps", False):
            self.responder.steps.stop()

    # claims: one worker on a torrent's files at a time

    def claim(self, tid: str) -> bool:
        with self.lock:
            if tid in self._claims:
                return False
            self._claims.add(tid)
            return True

    def release_claim(self, tid: str) -> None:
        self.watch.rewatch(tid)  # what was checked or healed may have a new inode now
        with self.lock:
            self._claims.discard(tid)
            later = self.deferred.pop(tid, {})
        now = time.monotonic()
        for index, at in later.items():  # what changed during the work, looked at now (stat first)
            self.suspect(tid, index, at if at else now)

    @contextmanager
    def claimed(self, tid: str, wait: float = 0.0):
        """with monitor.claimed(tid) as ok: ... (ok False: someone else works on it; after `wait` s)."""
        deadline = time.monotonic() + wait
        ok = self.claim(tid)
        while not ok and time.monotonic() < deadline:
            time.sleep(0.05)
            ok = self.claim(tid)
        try:
            yield ok
        finally:
            if ok:
                self.release_claim(tid)

    def is_claimed(self, tid: str) -> bool:
        with self.lock:
            return tid in self._claims

    # tracking

    def refresh(self, full: bool = False) -> None:
        """Follow the catalog: watch the files of torrents in a watched state, stop watching others.
        Incremental (the rows changed since the last look, by updated_at), with a full pass at
        start and every FULL_REFRESH seconds: a library of 100,000 torrents is not read every 2 s."""
        now = time.monotonic()
        self.last_refresh = now
        full = full or self.newest_seen is None or now - self.last_full >= FULL_REFRESH
        if full:
            rows = trust.torrent_states(self.catalog)
            self.last_full = now
        else:  # with an overlap: a write stamped earlier may commit after a later one was seen
            rows = trust.torrents_changed(self.catalog, _earlier(self.newest_seen, CHANGE_OVERLAP))
        if rows:
            newest = max(r["updated_at"] for r in rows)
            self.newest_seen = max(self.newest_seen or newest, newest)
        elif self.newest_seen is None:
            from ..catalog.db_time import now_iso

            self.newest_seen = now_iso()
        want = {r["id"]: r for r in rows if r["protection"] in WATCHED_STATES and r["torrent_file"]
                and r["save_path"] and ("removed_at" not in r.keys() or not r["removed_at"])}
        tracked = self.watch.tracked()
        gone = set(tracked) - set(want) if full else {r["id"] for r in rows if r["id"] not in want} & set(tracked)
        for tid in gone:
            self.watch.untrack(tid)
            with self.lock:
                self.metas.pop(tid, None)
                self.versions.pop(tid, None)
        for tid, row in want.items():
            version = (row["save_path"], row["updated_at"])
            if tid in tracked and self.versions.get(tid) == version:
                continue
            try:
                self._track(tid, row)
                self.versions[tid] = version
            except Error as exc:
                log.warning("%s: cannot watch: %s", tid[:12], exc)
        self.responder.flush_overlay()

    def track_now(self, tid: str) -> None:
        """Watch a torrent's cataloged files at once (the protect job calls it when it records one)."""
        row = self.catalog.get_torrent(tid)
        if row is None or row["protection"] not in WATCHED_STATES or not row["save_path"]:
            return
        self._track(tid, row)
        self.versions[tid] = (row["save_path"], row["updated_at"])
        self.watch.untrack_tree(tid)

    def _track(self, tid: str, row) -> None:
        with self.lock:
            self.metas.pop(tid, None)
        files = self.catalog.get_files(tid)
        paths = {f["file_index"]: str(Path(row["save_path"]) / f["path"]) for f in files}
        linked = {f["file_index"] for f in files if (f["nlink"] or 1) > 1}
        self.watch.track(tid, paths, linked)
        self.save_paths[tid] = row["save_path"]
        new = [f for f in files if f["file_index"] in linked and (tid, f["file_index"]) not in self.flagged]
        for f in new:
            self.flagged.add((tid, f["file_index"]))
            self.responder.emit("hardlinked", tid, f"{f['path']} has {f['nlink']} hard links: an edit through another "
                                "link changes the seed (watched through its inode)", "warning", path=f["path"],
                                nlink=f["nlink"])
        if new:
            self.responder.tag_hardlinked(tid, True)

    def meta(self, tid: str, row=None):
        """The torrent with its files where the catalog has them (qBittorrent's renames applied)."""
        with self.lock:
            meta = self.metas.get(tid)
        if meta is None:
            meta, _ = catalog_meta(self.catalog, tid)
            with self.lock:
                self.metas[tid] = meta
        return meta

    # torrents not yet verified (the protect job's side)

    def watch_pending(self, tid: str, content_path) -> None:
        """Watch a torrent's content (its folder, or its one file) before it has a baseline."""
        if content_path:
            self.watch.track_tree(tid, str(content_path))

    def unwatch_pending(self, tid: str) -> None:
        self.watch.untrack_tree(tid)

    def begin_verify(self, tid: str, content_path) -> float:
        """Before a verifying read: watch the content, return the time to compare against."""
        self.watch_pending(tid, content_path)
        return time.monotonic()

    def changed_since(self, tid: str, since: float) -> bool:
        with self.lock:
            return self.seen.get(tid, -1.0) >= since

    def verified(self, tid: str, since: float) -> None:
        """The protect job recorded the torrent: watch its files now; anything written since the read
        began (after it was accepted) is looked at like any drift."""
        self.track_now(tid)
        if self.changed_since(tid, since):
            self.suspect_all(tid, "changed right after its verification")

    def suspect_all(self, tid: str, why: str, *, stop: bool = True) -> None:
        now = time.monotonic()
        for f in self.catalog.get_files(tid):
            self.suspect(tid, f["file_index"], now, force=True, stop=stop)
        log.info("%s: every file is verified again: %s", tid[:12], why)

    # the event loop

    def _loop(self) -> None:
        while not self.stopping.is_set():
            with self.lock:
                deadline = self.debouncer.next_deadline()
            retry_at = self.retries.next_due()
            now = time.monotonic()
            timeout = self.refresh_seconds if deadline is None else max(0.0, deadline - now)
            if retry_at is not None:
                timeout = min(timeout, max(0.0, retry_at - now))
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
                self._due_retries()
                if time.monotonic() - self.last_refresh >= self.refresh_seconds:
                    self.refresh()
            except Exception:  # a bad event must not end drift detection
                log.exception("drift monitor: error while handling events")

    def _on_event(self, event: RawEvent) -> None:
        for tid, index in self.watch.lookup(event.path):
            with self.lock:
                self.seen[tid] = max(self.seen.get(tid, 0.0), event.at)
            if index is None:
                continue  # a torrent without a baseline yet: the protect job looks at `seen`
            if event.kind == "attrib":
                self.attrib(tid, index, event.at, event.path)
            else:
                self.suspect(tid, index, event.at, path=event.path)

    def attrib(self, tid: str, index: int, at: float, path: str | None = None) -> None:
        links.attrib(self, tid, index, at, path)

    def link_count_changed(self, tid: str, index: int, row, nlink: int) -> None:
        links.count_changed(self, tid, index, row, nlink)

    def suspect(self, tid: str, index: int, at: float, *, path: str | None = None, force: bool = False,
                stop: bool = True) -> None:
        """A protected file may have changed: stop the torrent at once if its stat differs from the
        catalog's, then verify once it has been quiet for the debounce time. While someone works on
        the torrent, the event is kept for when they are done."""
        with self.lock:
            if tid in self._claims:
                self.deferred.setdefault(tid, {}).setdefault(index, at)
                return
        if self.responder.busy(tid):
            return
        row = rows.file_record(self.catalog, tid, index)
        if row is None:
            return
        file_path = path or os.path.join(self.save_paths.get(tid, ""), row["path"])
        if not force:
            st = lstat_or_none(file_path)
            if same_stat(row, st):
                if st is not None and st.st_nlink != (row["nlink"] or 1):
                    self.link_count_changed(tid, index, row, st.st_nlink)
                return
        with self.lock:
            first = tid not in self.suspects
            self.suspects.setdefault(tid, {}).setdefault(index, at)
        lease = self.lease_check(self.catalog, file_path) if self.lease_check else None
        if lease is not None:
            self.intended[tid] = lease
        elif first and stop:
            self.responder.quarantine_now(tid)
        with self.lock:
            self.debouncer.touch(tid, time.monotonic())

    def _submit_check(self, tid: str, files: dict | None = None) -> None:
        with self.lock:
            if files is None:
                files = self.suspects.pop(tid, {})
            if not files:
                return
            if tid in self._claims:  # a heal is running: look again once it is done
                for index, at in files.items():
                    self.deferred.setdefault(tid, {}).setdefault(index, at)
                return
            self._claims.add(tid)
        self.worker.submit(self._check, tid, files)

    def _check(self, tid: str, files: dict[int, float]) -> None:
        try:
            outcome = self.check_files(tid, set(files), detected_at=min(files.values()), reason="drift")
            if outcome is not None and outcome.outcome == "failed":
                self.retry_later(tid, outcome.error or "the heal failed", set(files))
            elif outcome is not None and outcome.outcome == "alerted" and outcome.response == "heal":
                self.retry_later(tid, "no source could heal it (no snapshot, no peer)", set(files), slow=True)
            elif outcome is not None and outcome.outcome == "healing":
                pass  # the swarm is at it; its watcher schedules what follows
            else:
                self.retries.done(tid)
        except Exception as exc:  # noqa: BLE001 - disk full, store unreadable, a bug: retried with backoff
            log.exception("%s: drift check failed", tid[:12])
            self.responder.emit("drift_error", tid, f"drift check failed: {exc}; trying again", "error")
            if self._has_baseline(tid):
                self.responder.set_state(tid, "damaged")  # never `protected` while it is not handled
            self.retry_later(tid, str(exc), set(files))
        finally:
            self.release_claim(tid)

    def _has_baseline(self, tid: str) -> bool:
        try:
            return self.responder.state(tid) in WATCHED_STATES
        except Exception:  # noqa: BLE001
            return True

    def retry_later(self, tid: str, why: str, files: set | None = None, slow: bool = False) -> None:
        self.retries.later(tid, why, files, slow)
        self.events.put(None)  # wakes the loop: it sleeps until the nearest deadline

    def retry_now(self, tid: str, why: str) -> None:
        """Verify every file of the torrent as soon as possible (invariant checks, reconciliation)."""
        self.retries.now(tid, why)
        self.events.put(None)

    def _due_retries(self) -> None:
        with self.lock:
            claimed = set(self._claims)
        for tid, r in self.retries.due(claimed):
            try:
                files = r.files if r.files is not None else {f["file_index"] for f in self.catalog.get_files(tid)}
            except Exception:  # noqa: BLE001 - the catalog cannot be read now: at the next try
                continue
            if not files:
                self.retries.done(tid)
                continue
            now = time.monotonic()
            self._submit_check(tid, {i: now for i in files})

    def check_files(self, tid: str, indices: set[int] | None, *, detected_at: float | None = None,
                    reason: str = "drift", rate: float | None = None):
        """Quick-verify these files of one torrent, classify, respond (drift/check.py). The caller
        holds the claim. Returns the Outcome (or None when every file still matches)."""
        return check.check_files(self, tid, indices, detected_at=detected_at, reason=reason, rate=rate)

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """For tests and the benchmark: nothing queued, debounced, retried or being checked, and
        qBittorrent's queued steps carried out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                quiet = not self._claims and not self.suspects and not self.deferred
                quiet = quiet and self.debouncer.next_deadline() is None
            quiet = quiet and not self.retries.pending()
            steps = self.responder.steps
            if quiet and self.events.empty() and (steps is None or not steps.busy()):
                return True
            time.sleep(0.05)
        return False

    def status(self) -> dict:
        """What the monitor is doing, per torrent (the service's status)."""
        with self.lock:
            out = {"checking": sorted(self._claims), "suspect": sorted(set(self.suspects) | set(self.deferred))}
        out["retries"] = self.retries.status()
        return out


def _lease_check():
    try:
        from ..lease import valid_lease_for
    except ImportError:
        return None
    return valid_lease_for


def _earlier(iso: str, seconds: float) -> str:
    from datetime import datetime, timedelta

    return (datetime.fromisoformat(iso) - timedelta(seconds=seconds)).isoformat(timespec="milliseconds")
