"""The ladder in `seedward serve`: a "zones" job kind (kept after each verification of a torrent
whose policy is `auto` or `snapshot`), the heal's fallback when no snapshot holds the damaged
bytes (drift's responder asks `supply`), and a `ladder` object in the status."""

import logging
import threading
import time

from ..catalog import ladder as rows
from ..errors import Error, NotFound
from ..locate import catalog_meta
from .budget import budget_bytes
from .sources import supply_for
from .zones import keep_zones

log = logging.getLogger(__name__)

ZONED_LEVELS = ("auto", "snapshot")
SUMMARY_SECONDS = 60.0


class Ladder:
    def __init__(self, service):
        self.service = service
        self._store = None
        self._lock = threading.Lock()
        self._summary: tuple[float, dict] | None = None

    def store(self):
        with self._lock:
            if self._store is None:
                from ..store import Store

                self._store = Store.for_home(self.service.home, self.service.settings, self.service.catalog)
            return self._store

    def policy(self, torrent_id: str):
        row = self.service.catalog.get_torrent(torrent_id)
        tags = [t.strip() for t in (row["tags"] or "").split(",") if t.strip()] if row else []
        return self.service.settings.protection.policy_for(row["category"] if row else "", tags)

    def on_protected(self, event: dict) -> None:
        tid = event.get("torrent_id")
        if not tid or self.policy(tid).level not in ZONED_LEVELS:
            return
        self.service.enqueue("zones", tid, reason=event.get("reason", "protected"))
        if self.policy(tid).level == "auto" and "snapshot" in self.service.job_kinds and self.full_fits(tid):
            self.service.enqueue("snapshot", tid, reason="auto")

    def full_fits(self, tid: str) -> bool:
        """auto: a small torrent also gets a full snapshot while the budget has room for it."""
        cat, prot = self.service.catalog, self.service.settings.protection
        row = cat.get_torrent(tid)
        if row is None or row["payload_size"] > prot.auto_snapshot_max_mb * 1024 * 1024:
            return False
        usage = rows.store_usage(cat)
        return usage["bytes"] + row["payload_size"] <= budget_bytes(prot.budget, usage["payload_bytes"])

    def zones_job(self, service, job) -> None:
        cat = service.catalog
        if cat.get_torrent(job.torrent_id) is None:
            raise NotFound(f"no torrent {job.torrent_id} in the catalog")
        meta, save_path = catalog_meta(cat, job.torrent_id)
        prot = service.settings.protection
        kept = keep_zones(self.store(), cat, meta, save_path, head_kb=prot.zone_head_kb, tail_kb=prot.zone_tail_kb)
        service.emit("zones", meta.id, f"{meta.name}: zones kept for {kept.files} files ({kept.bytes:,} bytes,"
                     f" {kept.new_bytes:,} new)", bytes=kept.bytes, new_bytes=kept.new_bytes)
        usage = rows.store_usage(cat)
        budget = budget_bytes(prot.budget, usage["payload_bytes"])
        if usage["bytes"] > budget:
            service.emit("over_budget", None, f"the store holds {usage['bytes']:,} bytes, more than the"
                         f" [protection] budget {prot.budget} ({budget:,} bytes)", level="warning",
                         store_bytes=usage["bytes"], budget_bytes=budget)

    def supply(self, meta, save_path, damages):
        """For the drift responder: the ladder's bytes for these damages (None: nothing to offer)."""
        try:
            return supply_for(self.service.catalog, self.store(), meta, save_path, damages)
        except Error as exc:
            log.warning("%s: the ladder cannot supply bytes: %s", meta.name, exc)
            return None

    def status(self, status: dict) -> None:
        now = time.monotonic()
        if self._summary is None or now - self._summary[0] >= SUMMARY_SECONDS:
            usage = rows.store_usage(self.service.catalog)
            prot = self.service.settings.protection
            self._summary = (now, {**usage, "budget": prot.budget,
                                   "budget_bytes": budget_bytes(prot.budget, usage["payload_bytes"])})
        status.setdefault("service", {})["ladder"] = self._summary[1]

    def start(self) -> None:
        for component in self.service.components:
            responder = getattr(component, "responder", None)
            if responder is not None and hasattr(responder, "ladder"):
                responder.ladder = self.supply

    def stop(self) -> None:
        pass


def register(service) -> None:
    ladder = Ladder(service)
    service.register_job("zones", ladder.zones_job)
    service.on("protected", ladder.on_protected)
    service.on_status(ladder.status)
    service.add_component(ladder)
