"""The ladder in `seedward serve`: after each verification of a torrent whose policy is `auto` or
`snapshot`, a "zones" job (its head and tail segments), then under `auto` a "parity" job (PAR2
recovery data at [protection] parity_percent) and, for small torrents, a full snapshot, each while
the store stays within [protection] budget (else an `over_budget` event says what is not kept);
the heal's fallback when no snapshot holds the damaged bytes (drift's responder asks `supply`);
and a `ladder` object in the status."""

import json
import logging
import threading
import time

from ..catalog import ladder as rows
from ..catalog import parity as parity_rows
from ..errors import Error, NotFound
from ..locate import catalog_meta
from ..loops import Loop
from .budget import budget_bytes
from .coverage import CLASSES, coverage
from .facts import torrent_facts
from .parity import ParityError, keep_parity, plan_sets, predicted
from .sources import supply_for
from .wants import full_snapshot_refused
from .zones import keep_zones

log = logging.getLogger(__name__)

ZONED_LEVELS = ("auto", "snapshot")
SUMMARY_SECONDS = 60.0
SWEEP_SECONDS, SWEEP_TORRENTS = 60.0, 500  # coverage recomputed for the 500 oldest each minute
CHANGES = ("zones", "parity", "snapshot", "healed", "heal_failed", "damaged", "drill_failed", "drill_passed",
           "store_corrupt", "removed")


class Ladder:
    def __init__(self, service):
        self.service = service
        self._store = None
        self._lock = threading.Lock()
        self._summary: tuple[float, dict] | None = None
        self._coverage: tuple[float, dict] | None = None  # torrent -> its coverage, as status shows it

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
        """Zones after each verification (the protect job itself queues the full snapshot a small
        `auto` torrent gets within the budget: ladder/wants.py)."""
        tid = event.get("torrent_id")
        if not tid or self.policy(tid).level not in ZONED_LEVELS:
            return
        self.service.enqueue("zones", tid, reason=event.get("reason", "protected"))

    def full_fits(self, tid: str) -> bool:
        """auto: a small torrent gets a full snapshot while the budget has room for it."""
        row = self.service.catalog.get_torrent(tid)
        return row is not None and full_snapshot_refused(self.service.catalog, self.service.settings, row) is None

    def zones_job(self, service, job) -> None:
        cat = service.catalog
        if cat.get_torrent(job.torrent_id) is None:
            raise NotFound(f"no torrent {job.torrent_id} in the catalog")
        meta, save_path = catalog_meta(cat, job.torrent_id)
        prot = service.settings.protection
        kept = keep_zones(self.store(), cat, meta, save_path, head_kb=prot.zone_head_kb, tail_kb=prot.zone_tail_kb)
        service.emit("zones", meta.id, f"{meta.name}: zones kept for {kept.files} files ({kept.bytes:,} bytes,"
                     f" {kept.new_bytes:,} new)", bytes=kept.bytes, new_bytes=kept.new_bytes)
        if not self.within_budget(f"{meta.name}: zones kept"):
            return
        if (self.policy(meta.id).level == "auto" and prot.parity_percent > 0 and not self.parity_current(meta)
                and not self.has_full(meta.id) and not self.full_fits(meta.id)):
            self.parity_if_room(meta)

    def parity_current(self, meta) -> bool:
        """The torrent's recovery sets cover every file as it is cataloged, at the share asked for."""
        share = self.service.settings.protection.parity_percent
        made = {i: (h, s["percent"]) for s in parity_rows.parity_sets(self.service.catalog, meta.id)
                for i, _p, _n, h in s["files"]}
        files = {r["file_index"]: r["sha256"] for r in self.service.catalog.get_files(meta.id)}
        wanted = {i for p in plan_sets(meta, share) for i, _x, _n in p.files}
        return bool(made) and all(i in made and made[i] == (files.get(i), share) for i in wanted)

    def has_full(self, tid: str) -> bool:
        snap = rows.latest_full_snapshot(self.service.catalog, tid)
        return bool(snap) and snap["suspect_reason"] is None and snap["files"] >= len(self.service.catalog.get_files(tid))

    def room(self) -> tuple[int, int]:
        """(bytes the store holds for the ladder and snapshots, the budget)."""
        usage = rows.store_usage(self.service.catalog)
        prot = self.service.settings.protection
        return usage["bytes"], budget_bytes(prot.budget, usage["payload_bytes"], prot.budget_min)

    def within_budget(self, what: str) -> bool:
        used, budget = self.room()
        if used > budget:
            self.service.emit("over_budget", None, f"{what}; the store holds {used:,} bytes, more than the"
                              f" [protection] budget {self.service.settings.protection.budget} ({budget:,} bytes):"
                              " nothing more is kept until it is raised", level="warning",
                              store_bytes=used, budget_bytes=budget)
            return False
        return True

    def parity_if_room(self, meta) -> None:
        """Queue the torrent's recovery data when it fits the budget, else say it does not."""
        prot = self.service.settings.protection
        need = predicted(plan_sets(meta, prot.parity_percent))
        used, budget = self.room()
        if used + need > budget:
            self.service.emit("over_budget", meta.id, f"{meta.name}: no parity kept ({need:,} bytes at"
                              f" {prot.parity_percent:g}%): the store holds {used:,} of the [protection] budget"
                              f" {prot.budget} ({budget:,} bytes); scattered rot is not covered", level="warning",
                              store_bytes=used, budget_bytes=budget, needed=need)
            return
        self.service.enqueue("parity", meta.id, reason="auto")

    def parity_job(self, service, job) -> None:
        cat = service.catalog
        if cat.get_torrent(job.torrent_id) is None:
            raise NotFound(f"no torrent {job.torrent_id} in the catalog")
        meta, save_path = catalog_meta(cat, job.torrent_id)
        share = service.settings.protection.parity_percent
        try:
            kept = keep_parity(self.store(), cat, meta, save_path, share)
        except ParityError as exc:
            service.emit("parity_failed", meta.id, str(exc), level="warning")
            return
        service.emit("parity", meta.id, f"{meta.name}: {kept.sets} recovery sets kept ({kept.bytes:,} bytes for"
                     f" {kept.source_bytes:,}, {share:g}%) in {kept.seconds:.1f} s", bytes=kept.bytes, sets=kept.sets)
        self.within_budget(f"{meta.name}: parity kept")

    def supply(self, meta, save_path, damages):
        """For the drift responder: the ladder's bytes for these damages (None: nothing to offer)."""
        try:
            return supply_for(self.service.catalog, self.store(), meta, save_path, damages,
                              scratch=self.service.home.scratch / "ladder")
        except Error as exc:
            log.warning("%s: the ladder cannot supply bytes: %s", meta.name, exc)
            return None

    def status(self, status: dict) -> None:
        now = time.monotonic()
        if self._summary is None or now - self._summary[0] >= SUMMARY_SECONDS:
            usage = rows.store_usage(self.service.catalog)
            prot = self.service.settings.protection
            self._summary = (now, {**usage, "budget": prot.budget,
                                   "budget_min": prot.budget_min,
                                   "budget_bytes": budget_bytes(prot.budget, usage["payload_bytes"], prot.budget_min)})
        status.setdefault("service", {})["ladder"] = self._summary[1]
        if self._coverage is None or now - self._coverage[0] >= SUMMARY_SECONDS:
            self._coverage = (now, {tid: {"survives": c["survives"], "of": len(CLASSES), "computed_at": c["computed_at"],
                                          "classes": json.loads(c["classes"])}
                                    for tid, c in rows.coverage_rows(self.service.catalog).items()})
        known = self._coverage[1]
        for t in status.get("torrents", []):
            if t.get("id") in known:
                t["coverage"] = known[t["id"]]

    # -- coverage in the status (kept in the catalog: computing it reads several tables per torrent)

    def refresh_coverage(self, tid: str) -> None:
        try:
            c = coverage(torrent_facts(self.service.catalog, tid))
        except Error as exc:
            log.debug("%s: coverage not computed: %s", tid[:12], exc)
            return
        rows.set_coverage(self.service.catalog, tid, len(c.survived),
                          {k: v["from"] if v["survives"] else [] for k, v in c.classes.items()})

    def on_changed(self, event: dict) -> None:
        if event.get("torrent_id"):
            self.refresh_coverage(event["torrent_id"])

    def sweep(self):
        """A few torrents' coverage again, oldest first (siblings and snapshots come and go)."""
        for tid in rows.stale_coverage(self.service.catalog, SWEEP_TORRENTS):
            self.refresh_coverage(tid)
        return None

    def start(self) -> None:
        self._loop = Loop("ladder-coverage", self.sweep, SWEEP_SECONDS, first_wait=True)
        self._loop.start()
        for component in self.service.components:
            responder = getattr(component, "responder", None)
            if responder is not None and hasattr(responder, "ladder"):
                responder.ladder = self.supply

    def stop(self) -> None:
        if getattr(self, "_loop", None) is not None:
            self._loop.stop()


def register(service) -> None:
    ladder = Ladder(service)
    for kind in CHANGES:  # what changes a torrent's coverage
        service.on(kind, ladder.on_changed)
    service.register_job("zones", ladder.zones_job)
    service.register_job("parity", ladder.parity_job)
    service.on("protected", ladder.on_protected)
    service.on_status(ladder.status)
    service.add_component(ladder)
