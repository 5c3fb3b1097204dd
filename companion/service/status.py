"""The `status` op: every torrent as the catalog knows it (catalog/views.py) with qBittorrent's
live fields over it, and the service's own state."""

import os
import threading
import time
from contextlib import nullcontext

from .. import __version__, spool
from ..catalog import views
from ..continuity.library import Ledger
from ..continuity.library import detail as continuity_detail

STORE_SUMMARY_SECONDS = 60.0  # the store's totals read every chunk record: recomputed at most this often
CONTINUITY_SECONDS = 10.0  # an unchanged catalog's continuity is computed again this often (the windows move)


class StatusBuilder:
    """Reads through its own read-only connection (WAL: no wait for the service's writers, nor
    for the one shared connection's lock), opened on the first status."""

    def __init__(self, service):
        self.service = service
        self._summary: tuple[float, dict] | None = None
        self._lock = threading.Lock()
        self._reader = None
        self.ledger = Ledger()  # seeding continuity: the catalog's events, read once, then only new ones
        self._build_lock = threading.Lock()
        self._entries: tuple | None = None  # (data_version, views.Entries)
        self._continuity: tuple | None = None  # (data_version, monotonic time, per torrent, library)

    def reader(self):
        cat = self.service.catalog
        if getattr(cat, "engine", "sqlite") != "sqlite" or getattr(cat, "path", None) is None:
            return cat  # a catalog on a database server: its own connections
        with self._lock:
            if self._reader is None:
                self._reader = views.ReadOnly(cat.path)
            return self._reader

    def close(self) -> None:
        with self._lock:  # (closed outside it: a status in flight holds the reader, then wants _lock)
            reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def store_summary(self, cat) -> dict:
        with self._lock:
            now = time.monotonic()
            if self._summary is None or now - self._summary[0] >= STORE_SUMMARY_SECONDS:
                self._summary = (now, views.store_summary(cat))
            return self._summary[1]

    def build(self) -> dict:
        s = self.service
        qbt, sync = s.qbt, s.sync
        cat = self.reader()
        with self._build_lock, cat.snapshot() if isinstance(cat, views.ReadOnly) else nullcontext():
            status = self._build(s, qbt, sync, cat)  # every figure from one point in time
            self._attach_continuity(status, cat)
            return status

    def _catalog_entries(self, cat) -> views.Entries:
        """The catalog's part of the entries, read again only when the catalog changed since
        (SQLite's data_version; a database server's catalog is read every time)."""
        version = views.data_version(cat)
        if self._entries is None or version is None or version != self._entries[0]:
            self._entries = (version, views.catalog_entries(cat))
            self._continuity = None
        return self._entries[1]

    def _attach_continuity(self, status: dict, cat) -> None:
        """Each torrent's continuity and the library's: computed again when the catalog changed,
        or CONTINUITY_SECONDS later (time moves the windows on)."""
        version = self._entries[0] if self._entries else None
        now = time.monotonic()
        c = self._continuity
        if c is None or version is None or c[0] != version or now - c[1] > CONTINUITY_SECONDS:
            with self.ledger.lock:
                self.ledger.refresh(cat)
                per, library = self.ledger.reports(self._entries[1])
            shorts: dict = {}  # quiet torrents share one Report: its short form is made once
            c = self._continuity = (version, now, {tid: shorts.get(id(r)) or shorts.setdefault(id(r), r.short())
                                                   for tid, r in per.items()}, library.short())
        per = c[2]
        missing = [e for e in status["torrents"] if e["id"] not in per]  # qBittorrent's, not cataloged yet
        extra = {tid: r.short() for tid, r in self.ledger.reports(missing)[0].items()} if missing else {}
        for e in status["torrents"]:
            e["continuity"] = per.get(e["id"]) or extra[e["id"]]
        status["continuity"] = c[3]

    def continuity(self, torrent_id: str, entry: dict | None = None) -> dict:
        """One torrent's full continuity (every window, the 7-day strip), for the `detail` op.

        Locks in the order build() takes them, the reader's before the ledger's: the other way
        round, a status and a detail at once waited for each other for good."""
        cat = self.reader()
        with cat.snapshot() if isinstance(cat, views.ReadOnly) else nullcontext():
            return continuity_detail(self.ledger, torrent_id, entry, cat)

    def _build(self, s, qbt, sync, cat) -> dict:
        return {
            "service": {
                "running": True,
                "pid": os.getpid(),
                "version": __version__,
                "started_at": s.started_at,
                "home": str(s.home.root),
                "qbittorrent": {
                    "url": qbt.url,
                    "state": sync.state,
                    "version": qbt.version or None,
                    "error": sync.error,
                    "next_login_in": qbt.login_status()["next_try_in"] if sync.state == "login_failed" else None,
                    "login_failures": qbt.login_failures,
                    "login": qbt.login_status(),  # the login gate: why seedward does not try, until when
                    "syncs": sync.syncs,
                },
                "queue": views.queue_counts(cat),
                "workers": s.jobs.workers,
                "job_kinds": sorted(s.jobs.kinds),
                "running_jobs": [{"id": j.id, "kind": j.kind, "torrent_id": j.torrent_id}
                                 for j in list(s.jobs.running.values())],
                "spool": len(spool.pending(s.home.spool)),
                **self.store_summary(cat),
            },
            "torrents": views.with_live(self._catalog_entries(cat), sync.snapshot(), set(views.owners(cat))),
        }
