"""Watchdog observers over protected payloads.

One inotify watch per directory (watchdog), shared by every torrent with files in it, sees
writes, renames over, deletions. Every payload file also gets an inotify watch on its inode
(inotify_simple), within a budget of half the user's inotify watches: a directory's watch sees a
write only when it goes through that directory's link (a tagger editing a library's hard link
writes through the other one), and a new hard link is reported only to the inode's own watchers
(IN_ATTRIB: its link count), never to the folder's. That is how the monitor follows hard links
as they appear; a file beyond the budget is left to the rolling stat sweep (drift/invariants.py),
and a hard-linked one always gets its inode watch.
A torrent not yet verified is watched through its content folder (`track_tree`, recursive).
Producers only enqueue events; the monitor decides.
"""

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import inotify_simple
from watchdog.events import (
    DirDeletedEvent,
    FileAttribEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEventHandler,
)
from watchdog.observers.inotify import InotifyObserver

log = logging.getLogger(__name__)

# Content changes, and attribute changes (link counts); opens (qBittorrent reading to seed) are not drift.
CONTENT_EVENTS = (FileModifiedEvent, FileClosedEvent, FileCreatedEvent, FileDeletedEvent, FileMovedEvent,
                  DirDeletedEvent, DirMovedEvent, FileAttribEvent)
WRITE_MASK = inotify_simple.flags.MODIFY | inotify_simple.flags.CLOSE_WRITE
LINK_MASK = WRITE_MASK | inotify_simple.flags.ATTRIB


@dataclass(frozen=True)
class RawEvent:
    kind: str  # watchdog's event_type: modified, closed, created, deleted, moved, attrib
    path: str
    at: float  # time.monotonic() when enqueued


class _Enqueue(FileSystemEventHandler):
    def __init__(self, out: queue.Queue):
        self.out = out

    def on_any_event(self, event) -> None:
        if not isinstance(event, CONTENT_EVENTS):
            return
        now = time.monotonic()
        self.out.put(RawEvent(event.event_type, os.fsdecode(event.src_path), now))
        if event.dest_path:
            self.out.put(RawEvent(event.event_type, os.fsdecode(event.dest_path), now))


def inode_budget() -> int:
    """Inode watches seedward allows itself: half of the user's inotify watches."""
    try:
        return int(Path("/proc/sys/fs/inotify/max_user_watches").read_text()) // 2
    except (OSError, ValueError):
        return 4096


class InodeWatch:
    """inotify watches on files' inodes (writes through any of their links, link count changes),
    read on one thread. add() again after a file got a new inode (a rename over, a heal): the old
    inode's watch stays until the kernel drops it (IN_IGNORED)."""

    def __init__(self, out: queue.Queue):
        self.out = out
        self.inotify = inotify_simple.INotify()
        self.paths: dict[int, str] = {}  # wd -> path (several wds may name one path: old inodes)
        self.wds: dict[str, int] = {}  # path -> wd of its current inode
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def add(self, path: str) -> int:
        wd = self.inotify.add_watch(path, LINK_MASK | inotify_simple.flags.DONT_FOLLOW)
        with self.lock:
            before = self.wds.get(path)
            self.paths[wd], self.wds[path] = path, wd
            if before is not None and before != wd:  # a new inode at the path: the old one is not the seed
                self.paths.pop(before, None)
        if before is not None and before != wd:
            try:
                self.inotify.rm_watch(before)
            except OSError:
                pass
        return wd

    def remove(self, path: str) -> None:
        with self.lock:
            self.wds.pop(path, None)
            mine = [wd for wd, p in self.paths.items() if p == path]
            for wd in mine:
                self.paths.pop(wd, None)
        for wd in mine:
            try:
                self.inotify.rm_watch(wd)
            except OSError:
                pass  # the inode is gone: the kernel dropped the watch already

    def __len__(self) -> int:
        with self.lock:
            return len(self.paths)

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="drift-inodes", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(5)
        self.inotify.close()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                events = self.inotify.read(timeout=200)
            except OSError:
                return
            now = time.monotonic()
            for ev in events:
                with self.lock:
                    path = self.paths.get(ev.wd)
                    if ev.mask & inotify_simple.flags.IGNORED:  # the inode is gone, or the watch removed
                        self.paths.pop(ev.wd, None)
                        if path is not None and self.wds.get(path) == ev.wd:
                            del self.wds[path]
                        continue
                if path is not None and ev.mask & WRITE_MASK:
                    self.out.put(RawEvent("modified", path, now))
                elif path is not None and ev.mask & inotify_simple.flags.ATTRIB:
                    self.out.put(RawEvent("attrib", path, now))


def canonical(path) -> str:
    """The path as events name it: the directory resolved, the file name kept."""
    path = os.fspath(path)
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


class PayloadWatch:
    """Tracks payload files by path; `lookup(path)` maps an event path back to (torrent, file)."""

    def __init__(self, events: queue.Queue | None = None):
        self.events = events if events is not None else queue.Queue()
        self.observer = InotifyObserver()
        self.handler = _Enqueue(self.events)
        self.links = InodeWatch(self.events)
        self.lock = threading.Lock()
        self.files: dict[str, set[tuple[str, int]]] = {}
        self.by_torrent: dict[str, dict[int, str]] = {}
        self.dir_watches: dict[str, object] = {}
        self.dir_users: dict[str, int] = {}
        self.link_watches: dict[str, object] = {}
        self.budget = inode_budget()
        self.over_budget = False
        self.trees: dict[str, tuple[str, object]] = {}  # torrent -> (content path, watch): not yet verified
        self.started = False

    def start(self) -> None:
        self.observer.start()
        self.links.start()
        self.started = True

    def stop(self) -> None:
        if self.started:
            self.observer.stop()
            self.observer.join(10)
            self.links.stop()
            self.started = False

    def track(self, torrent_id: str, paths: dict[int, str], hardlinked: set[int] = frozenset()) -> None:
        """Watch these payload files (file_index -> path) of one torrent; replaces its previous set
        (shared folder watches stay in place while another file still needs them)."""
        with self.lock:
            old = self.by_torrent.get(torrent_id, {})
            canon = {i: canonical(p) for i, p in paths.items()}
            self.by_torrent[torrent_id] = canon
            for index, path in canon.items():
                if old.get(index) != path:
                    self._add(torrent_id, index, path)
                if index in hardlinked or path in self.link_watches or len(self.links) < self.budget:
                    self._schedule_link(path)  # (again: the file may have a new inode since)
                elif not self.over_budget:
                    self.over_budget = True
                    log.warning("more payload files than %d inode watches: new hard links of the others are found "
                                "by the stat sweep, not at once (raise fs.inotify.max_user_watches)", self.budget)
            for index, path in old.items():
                if canon.get(index) != path:
                    self._drop(torrent_id, index, path)

    def untrack(self, torrent_id: str) -> None:
        with self.lock:
            for index, path in (self.by_torrent.pop(torrent_id, None) or {}).items():
                self._drop(torrent_id, index, path)
        self.untrack_tree(torrent_id)

    def track_tree(self, torrent_id: str, content_path: str) -> None:
        """Watch a torrent's content before its files are cataloged: its folder (recursive), or the
        folder of its single file. Events there name the torrent, without a file index."""
        content = canonical(content_path)
        folder, recursive = (content, True) if os.path.isdir(content) else (os.path.dirname(content), False)
        with self.lock:
            old = self.trees.get(torrent_id)
            if old is not None and old[0] == content and (old[1] is None or old[1].is_recursive == recursive):
                return  # (a folder that did not exist yet is watched recursively once it does)
        try:
            watch = self.observer.schedule(self.handler, folder, recursive=recursive)
        except OSError as exc:
            log.warning("cannot watch %s: %s", folder, exc.strerror or exc)
            watch = None
        with self.lock:
            old = self.trees.get(torrent_id)
            self.trees[torrent_id] = (content, watch)
        if old is not None:
            self._unschedule_tree(old[1])

    def untrack_tree(self, torrent_id: str) -> None:
        with self.lock:
            old = self.trees.pop(torrent_id, None)
        if old is not None:
            self._unschedule_tree(old[1])

    def _unschedule_tree(self, watch) -> None:
        if watch is None:
            return
        with self.lock:
            # watchdog keys watches by (path, recursive): an equal one may be another torrent's
            shared = any(w == watch for _, w in self.trees.values()) or any(
                w == watch for w in self.dir_watches.values())
        if not shared:
            try:
                self.observer.unschedule(watch)
            except KeyError:
                pass

    def _add(self, torrent_id: str, index: int, path: str) -> None:
        self.files.setdefault(path, set()).add((torrent_id, index))
        folder = os.path.dirname(path)
        self.dir_users[folder] = self.dir_users.get(folder, 0) + 1
        if folder not in self.dir_watches:
            self._schedule_dir(folder)

    def _drop(self, torrent_id: str, index: int, path: str) -> None:
        users = self.files.get(path, set())
        users.discard((torrent_id, index))
        if not users:
            self.files.pop(path, None)
            if self.link_watches.pop(path, None) is not None:
                self.links.remove(path)
        folder = os.path.dirname(path)
        self.dir_users[folder] = self.dir_users.get(folder, 1) - 1
        if self.dir_users[folder] <= 0:
            del self.dir_users[folder]
            watch = self.dir_watches.pop(folder, None)
            if watch is not None and not any(w == watch for _, w in self.trees.values()):
                self.observer.unschedule(watch)

    def _schedule_dir(self, folder: str) -> None:
        try:
            self.dir_watches[folder] = self.observer.schedule(self.handler, folder, recursive=False)
        except OSError as exc:
            # The folder is gone or unreadable: reconciliation and scrub still see the files.
            self.dir_watches[folder] = None
            log.warning("cannot watch %s: %s", folder, exc.strerror or exc)

    def _schedule_link(self, path: str) -> None:
        try:
            self.link_watches[path] = self.links.add(path)
        except OSError as exc:
            log.warning("cannot watch hard-linked file %s: %s", path, exc.strerror or exc)

    def set_hardlinked(self, torrent_id: str, index: int, linked: bool) -> None:
        with self.lock:
            path = self.by_torrent.get(torrent_id, {}).get(index)
            if path is None:
                return
            if linked or path in self.link_watches:
                self._schedule_link(path)  # a hard-linked file is always watched through its inode

    def rewatch(self, torrent_id: str) -> None:
        """Watch the torrent's files through their inodes again: after a heal or a rename over, a
        path has a new inode, and only the old one (now a library's, or the quarantine's) is watched."""
        with self.lock:
            for path in self.by_torrent.get(torrent_id, {}).values():
                if path in self.link_watches or len(self.links) < self.budget:
                    self._schedule_link(path)

    def lookup(self, path: str) -> set[tuple[str, int]]:
        """(torrent_id, file_index) pairs an event path concerns; a deleted or moved folder concerns
        every tracked file under it."""
        with self.lock:
            out: set[tuple[str, int | None]] = set()
            for tid, (content, _watch) in self.trees.items():
                if path == content or path.startswith(content.rstrip(os.sep) + os.sep) or \
                        content.startswith(path.rstrip(os.sep) + os.sep):
                    out.add((tid, None))
            hit = self.files.get(path)
            if hit:
                return out | set(hit)
            prefix = path.rstrip(os.sep) + os.sep
            if path in self.dir_users or any(f.startswith(prefix) for f in self.dir_users):
                for fpath, users in self.files.items():
                    if fpath.startswith(prefix):
                        out |= users
            return out

    def tracked(self) -> dict[str, dict[int, str]]:
        with self.lock:
            return {t: dict(p) for t, p in self.by_torrent.items()}

    def watch_count(self) -> tuple[int, int]:
        """(directory watches, inode watches)."""
        with self.lock:
            return (sum(1 for w in self.dir_watches.values() if w is not None), len(self.link_watches))
