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
with backoff until it is.
"""

import logging
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..catalog import drift as rows
from ..catalog import trust
from ..errors import Error
from ..locate import catalog_meta
from ..loops import Backoff
from .classify import FALSE_ALARM
from .debounce import Debouncer
from .detect import detect_drift
from .watch import PayloadWatch, RawEvent

log = logging.getLogger(__name__)

WATCHED_STATES = ("protected", "damaged", "healing")
RETRY_FIRST, RETRY_MAX = 2.0, 300.0  # seconds: a drift that could not be handled is tried again
SLOW_FIRST, SLOW_MAX = 600.0, 6 * 3600.0  # a heal no source could make (no snapshot, no peer): tried now and then


def same_stat(row, st: os.stat_result | None) -> bool:
    """The file looks as the catalog remembers it (size, mtime, inode, device)."""
    if st is None or row["inode"] is None:
        return False
    now = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)
    return now == (row["size"], row["mtime_ns"], row["inode"], row["device"])


def _lstat(path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot stat %s: %s", path, exc.strerror)
        return None


@dataclass
class Retry:
    due: float  # monotonic
    backoff: Backoff
    why: str
    files: set | None  # None: every file
    slow: bool = False  # no source could heal it: tried now and then, not soon


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
        self.retries: dict[str, Retry] = {}
        self.intended: dict[str, object] = {}  # torrent -> the lease its last write was under
        self.on_intended = on_intended
        self.lock = threading.RLock()
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="drift-verify")
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()
        self.outcomes: list = []  # the responder's outcomes, newest last (bounded)
        self.last_refresh = 0.0
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
                retry_at = min((r.due for r in self.retries.values()), default=None)
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
        """A file's attributes changed: a new or removed hard link (its link count), or a content
        change reported this way (a stat that differs is suspected like a write)."""
        row = rows.file_record(self.catalog, tid, index)
        if row is None:
            return
        file_path = path or os.path.join(self.save_paths.get(tid, ""), row["path"])
        st = _lstat(file_path)
        if st is None or not same_stat(row, st):
            self.suspect(tid, index, at, path=file_path)
            return
        if st.st_nlink != (row["nlink"] or 1):
            self.link_count_changed(tid, index, row, st.st_nlink)

    def link_count_changed(self, tid: str, index: int, row, nlink: int) -> None:
        """Follow hard links as they appear: flag the file (catalog, tag), watch it through its
        inode, and verify it once (without stopping the torrent) in case a write went through the
        new link before its inode watch existed."""
        was = row["nlink"] or 1
        trust.set_nlink(self.catalog, tid, index, nlink)
        self.watch.set_hardlinked(tid, index, nlink > 1)
        name = row["path"]
        if nlink > 1 and was <= 1:
            self.flagged.add((tid, index))
            self.responder.emit("hardlinked", tid, f"{name} now has {nlink} hard links: an edit through another "
                                "link changes the seed (watched through its inode)", "warning", path=name, nlink=nlink)
        elif nlink <= 1 < was:
            self.responder.emit("unlinked", tid, f"{name} has no other hard link any more", "info", path=name)
        if (nlink > 1) != (was > 1):
            self.responder.tag_hardlinked(tid, bool(trust.hardlinked(self.catalog).get(tid)))
        if nlink > was:
            self.suspect(tid, index, time.monotonic(), force=True, stop=False)

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
            st = _lstat(file_path)
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
                with self.lock:
                    self.retries.pop(tid, None)
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
        with self.lock:
            r = self.retries.get(tid)
            if r is None or slow:
                backoff = Backoff(SLOW_FIRST, SLOW_MAX) if slow else Backoff(RETRY_FIRST, RETRY_MAX)
                r = self.retries[tid] = Retry(0.0, backoff, why, files if r is None else r.files, slow)
            elif files is None or r.files is None:
                r.files = None
            else:
                r.files |= files
            r.why = why
            r.due = time.monotonic() + r.backoff.next()
        self.events.put(None)  # wakes the loop: it sleeps until the nearest deadline

    def retry_now(self, tid: str, why: str) -> None:
        """Verify every file of the torrent as soon as possible (invariant checks, reconciliation)."""
        with self.lock:
            r = self.retries.get(tid)
            if r is None:
                self.retries[tid] = Retry(time.monotonic(), Backoff(RETRY_FIRST, RETRY_MAX), why, None)
            else:
                r.files, r.due = None, min(r.due, time.monotonic())

    def _due_retries(self) -> None:
        now = time.monotonic()
        with self.lock:
            due = [(tid, r) for tid, r in self.retries.items() if r.due <= now and tid not in self._claims]
        for tid, r in due:
            try:
                files = r.files if r.files is not None else {f["file_index"] for f in self.catalog.get_files(tid)}
            except Exception:  # noqa: BLE001 - the catalog cannot be read now: later
                with self.lock:
                    r.due = now + r.backoff.next()
                continue
            if not files:
                with self.lock:
                    self.retries.pop(tid, None)
                continue
            with self.lock:
                r.due = now + r.backoff.next()  # if this try fails too, the next one is later
            self._submit_check(tid, {i: now for i in files})

    def check_files(self, tid: str, indices: set[int] | None, *, detected_at: float | None = None,
                    reason: str = "drift", rate: float | None = None):
        """Quick-verify these files of one torrent, classify, respond. The caller holds the claim.
        Returns the Outcome (or None when every file still matches)."""
        if not self.catalog.get_files(tid):  # no baseline to compare with (healed before its first one)
            if self.responder.reprotect is not None:
                self.responder.reprotect(tid)
            return None
        found = detect_drift(self.catalog, tid, indices, meta=self.meta(tid),
                             rate=self.rate if rate is None else rate)
        meta = found.meta
        for qf in found.result.files:
            drift = found.drifts[qf.file_index]
            if drift.kind != FALSE_ALARM or qf.stat is None:
                continue
            rec = rows.file_record(self.catalog, tid, qf.file_index)
            rows.update_file_stat(self.catalog, tid, qf.file_index, qf.stat)
            if rec is not None and (qf.stat.nlink > 1) != ((rec["nlink"] or 1) > 1):
                self.watch.set_hardlinked(tid, qf.file_index, qf.stat.nlink > 1)
                self.responder.tag_hardlinked(tid, bool(trust.hardlinked(self.catalog).get(tid)))
                if qf.stat.nlink > 1:
                    path = next(e.path for e in meta.real_files if e.index == qf.file_index)
                    self.responder.emit("hardlinked", tid, f"{meta.name}: {path} now has {qf.stat.nlink} hard links: "
                                        "an edit through another link changes the seed", "warning", path=path)
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
            whole = indices is None or self._all_files(tid, indices)
            if whole and self.responder.state(tid) in ("damaged", "healing"):
                self._intact_again(tid)
            else:
                self.responder.release(tid)
            if reason == "drift":
                self.catalog.add_event(tid, "false_alarm", f"{meta.name}: files changed on disk but every piece "
                                       "still matches", level="info")
            return None
        outcome = self.responder.respond(meta, found.save_path, damages, detected_at=detected_at, reason=reason)
        self.outcomes = (self.outcomes + [outcome])[-100:]
        return outcome

    def _intact_again(self, tid: str) -> None:
        """A damaged or healing torrent verifies intact (a heal finished before a crash, a retry, a
        fix from outside): qBittorrent rechecks it (its view may be stale) and seeds it again."""
        steps = self.responder.steps
        if steps is not None and steps.held(tid):
            self.responder.set_state(tid, "healing")
            steps.settle(tid, recheck=True, because="verified intact; qBittorrent rechecks and starts it")
            if not steps.held(tid):
                self.responder.set_state(tid, "protected")
        else:
            self.responder.set_state(tid, "protected")
        self.responder.emit("intact", tid, "every file matches its baseline again", "info")

    def _all_files(self, tid: str, indices) -> bool:
        return {f["file_index"] for f in self.catalog.get_files(tid)} <= set(indices)

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """For tests and the benchmark: nothing queued, debounced, retried or being checked, and
        qBittorrent's queued steps carried out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                quiet = not self._claims and not self.suspects and not self.deferred
                quiet = quiet and self.debouncer.next_deadline() is None
                quiet = quiet and not any(not r.slow for r in self.retries.values())
            steps = self.responder.steps
            if quiet and self.events.empty() and (steps is None or not steps.busy()):
                return True
            time.sleep(0.05)
        return False

    def status(self) -> dict:
        """What the monitor is doing, per torrent (the service's status)."""
        with self.lock:
            now = time.monotonic()
            return {
                "checking": sorted(self._claims),
                "suspect": sorted(set(self.suspects) | set(self.deferred)),
                "retries": {tid: {"in_seconds": round(max(0.0, r.due - now), 1), "why": r.why}
                            for tid, r in self.retries.items()},
            }


def _lease_check():
    try:
        from ..lease import valid_lease_for
    except ImportError:
        return None
    return valid_lease_for
