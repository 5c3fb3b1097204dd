"""The `status` op: every torrent as the catalog knows it (catalog/views.py) with qBittorrent's
live fields over it, and the service's own state."""

import os
import threading
import time
from contextlib import nullcontext

from .. import __version__, spool
from ..catalog import views
from ..continuity.library import Ledger, attach
from ..continuity.library import detail as continuity_detail

STORE_SUMMARY_SECONDS = 60.0  # the store's totals read every chunk record: recomputed at most this often


class StatusBuilder:
    """Reads through its own read-only connection (WAL: no wait for the service's writers, nor
    for the one shared connection's lock), opened on the first status."""

    def __init__(self, service):
        self.service = service
        self._summary: tuple[float, dict] | None = None
        self._lock = threading.Lock()
        self._reader = None
        self.ledger = Ledger()  # seeding continuity: the catalog's events, read once, then only new ones

    def reader(self):
        cat = self.service.catalog
        if getattr(cat, "engine", "sqlite") != "sqlite" or getattr(cat, "path", None) is None:
            return cat  # a catalog on a database server: its own connections
        with self._lock:
            if self._reader is None:
                self._reader = views.ReadOnly(cat.path)
            return self._reader

    def close(self) -> None:
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

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
        with cat.snapshot() if isinstance(cat, views.ReadOnly) else nullcontext():  # one point in time
            return attach(self._build(s, qbt, sync, cat), self.ledger, cat)

    def continuity(self, torrent_id: str, entry: dict | None = None) -> dict:
        """One torrent's full continuity (every window, the 7-day strip), for the `detail` op."""
        return continuity_detail(self.ledger, torrent_id, entry, self.reader())

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
            "torrents": views.torrent_entries(cat, sync.snapshot()),
        }
