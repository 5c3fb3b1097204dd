"""The Prometheus endpoint (`[metrics] listen = "127.0.0.1:9477"`; off when empty).

Every figure is read when Prometheus scrapes, from the catalog (through a connection of its own,
so a scrape never waits for the service's writers) and the service's live state: what the
endpoint says is what `seedward status` would say at that moment. Store size and dedup cost a
walk of the store and a pass over the chunk map: they are recomputed at most every
`refresh_seconds`.
"""

import logging
import os
import threading
import time
from datetime import datetime
from pathlib import Path

from . import __version__
from .catalog.db import catalog_for
from .catalog import metrics as figures
from .config import MetricsSettings
from .errors import ConfigError
from .states import PROTECTION_STATES

log = logging.getLogger(__name__)

HEAL_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21600)
DETECT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)
QBT_STATES = ("connected", "not_answering", "unreachable", "login_failed", "error", "starting")
TIERS = ("daily", "weekly", "monthly", "yearly")


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def store_on_disk(path: Path) -> tuple[int, int]:
    """(pack files, their bytes) under the store's data/ folder."""
    packs = size = 0
    for folder, _dirs, files in os.walk(path / "data"):
        for name in files:
            try:
                size += os.stat(os.path.join(folder, name)).st_size
                packs += 1
            except FileNotFoundError:  # pruned meanwhile
                continue
    return packs, size


class SeedwardCollector:
    """A prometheus_client collector over the catalog (`catalog`, its own connection) and live
    fields: qbt_state() -> sync state, store_path."""

    def __init__(self, catalog, store_path: Path, settings: MetricsSettings, qbt_state=lambda: "starting",
                 qbt_syncs=lambda: 0, monotonic=time.monotonic, qbt_instances=lambda: []):
        self.catalog = catalog
        self.store_path = Path(store_path)
        self.settings = settings
        self.qbt_state = qbt_state
        self.qbt_syncs = qbt_syncs
        self.qbt_instances = qbt_instances  # [(name, sync state)] of every qBittorrent instance (issue 17)
        self.monotonic = monotonic
        self._store: tuple[float, dict] | None = None
        self._lock = threading.Lock()

    def describe(self):
        return []  # figures come and go with the catalog: no fixed description

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        cat = self.catalog
        info = GaugeMetricFamily("seedward_info", "seedward's version", labels=["version"])
        info.add_metric([__version__], 1)
        yield info

        by_state = {s: (0, 0) for s in PROTECTION_STATES}
        by_state.update({s: (n, b) for s, n, b in figures.torrents_by_state(cat)})
        torrents = GaugeMetricFamily("seedward_torrents", "Torrents per protection state", labels=["state"])
        payload = GaugeMetricFamily("seedward_payload_bytes", "Payload bytes per protection state", labels=["state"])
        for state, (n, b) in sorted(by_state.items()):
            torrents.add_metric([state], n)
            payload.add_metric([state], b)
        yield torrents
        yield payload

        tiers = GaugeMetricFamily(
            "seedward_protected_bytes", "Payload bytes each tier protects: verified (protected torrents), snapshot "
            "(protected torrents with a snapshot in the store), zones (protected torrents with kept head and tail "
            "zones, which heal damage there only), archive_<tier> (payload bytes in the tier's uploaded "
            "sets; an incremental set counts what it added)", labels=["tier"])
        tiers.add_metric(["verified"], by_state.get("protected", (0, 0))[1])
        tiers.add_metric(["snapshot"], figures.snapshot_protected_bytes(cat))
        zoned, zone_bytes = figures.zones_protected_bytes(cat)
        tiers.add_metric(["zones"], zoned)
        zones = GaugeMetricFamily("seedward_zone_bytes", "Bytes of the head and tail zones the protection ladder "
                                  "keeps (before dedup in the store)")
        zones.add_metric([], zone_bytes)
        archived = {t: (n, b, ab) for t, n, b, ab in figures.archive_bytes_by_tier(cat)}
        remote = GaugeMetricFamily("seedward_archive_remote_bytes", "Bytes of the uploaded archive sets on the "
                                   "remote (volumes and PAR2)", labels=["tier"])
        sets = GaugeMetricFamily("seedward_archive_sets", "Uploaded archive sets", labels=["tier"])
        for tier in sorted(set(TIERS) | set(archived)):
            n, b, ab = archived.get(tier, (0, 0, 0))
            tiers.add_metric([f"archive_{tier}"], b)
            remote.add_metric([tier], ab)
            sets.add_metric([tier], n)
        yield tiers
        yield zones
        yield remote
        yield sets

        heals = CounterMetricFamily("seedward_heals", "Finished responses to drift by outcome (healed, alerted, "
                                    "failed, ...) and source (snapshot, swarm, none)", labels=["outcome", "source"])
        for outcome, source, n in figures.heal_counts(cat):
            heals.add_metric([outcome, source], n)
        yield heals
        yield _histogram(HistogramMetricFamily, "seedward_heal_duration_seconds",
                         "Seconds from a drift's first change event to healed", HEAL_BUCKETS,
                         figures.heal_durations(cat, HEAL_BUCKETS))
        yield _histogram(HistogramMetricFamily, "seedward_drift_detection_seconds",
                         "Seconds from a file's first change event to drift confirmed (debounce and quick verify)",
                         DETECT_BUCKETS, figures.detection_latencies(cat, DETECT_BUCKETS))

        store = self._store_figures()
        for name, doc in (("seedward_store_size_bytes", "Bytes of the store's pack files on disk"),
                          ("seedward_store_packs", "Pack files in the store"),
                          ("seedward_store_snapshots", "Snapshots in the store"),
                          ("seedward_store_logical_bytes", "Payload bytes the snapshots hold (before dedup)"),
                          ("seedward_store_unique_bytes", "Bytes of the distinct chunks the snapshots use"),
                          ("seedward_store_dedup_ratio", "logical / unique bytes (1: nothing shared)")):
            g = GaugeMetricFamily(name, doc)
            g.add_metric([], store[name])
            yield g

        if self.settings.per_torrent:
            labels = ["torrent", "name"]
            last = GaugeMetricFamily("seedward_drill_last_timestamp_seconds", "When the newest finished drill of "
                                     "the torrent ended (Unix time)", labels=labels)
            passed = GaugeMetricFamily("seedward_drill_last_passed", "1 when the torrent's newest drill passed",
                                       labels=labels)
            rto = GaugeMetricFamily("seedward_drill_last_rto_seconds", "Restore + verify + recheck seconds of the "
                                    "torrent's newest drill", labels=labels)
            for d in figures.last_drills(cat):
                at = _epoch(d["finished_at"])
                key = [d["torrent_id"], d["name"]]
                if at is not None:
                    last.add_metric(key, at)
                passed.add_metric(key, 1 if d["state"] == "passed" else 0)
                rto.add_metric(key, d["rto_seconds"] or 0)
            yield last
            yield passed
            yield rto

        state = self.qbt_state()
        up = GaugeMetricFamily("seedward_qbittorrent_up", "1 when qBittorrent answers the service")
        up.add_metric([], 1 if state == "connected" else 0)
        yield up
        states = GaugeMetricFamily("seedward_qbittorrent_state", "The service's connection to qBittorrent (1: the "
                                   "current state)", labels=["state"])
        for s in sorted(set(QBT_STATES) | {state}):
            states.add_metric([s], 1 if s == state else 0)
        yield states
        syncs = CounterMetricFamily("seedward_qbittorrent_syncs", "Sync rounds with qBittorrent since the service "
                                    "started")
        syncs.add_metric([], self.qbt_syncs())
        yield syncs
        each = GaugeMetricFamily("seedward_qbittorrent_instance_up", "1 when this qBittorrent instance answers the "
                                 "service ([[instances]]; the one [qbittorrent] is 'default')", labels=["instance"])
        for name, instance_state in self.qbt_instances():
            each.add_metric([name], 1 if instance_state == "connected" else 0)
        yield each

        jobs = GaugeMetricFamily("seedward_queue_jobs", "Jobs in the service's queue per state", labels=["state"])
        for s, n in sorted({"queued": 0, "running": 0, **figures.queue_counts(cat)}.items()):
            jobs.add_metric([s], n)
        yield jobs

    def _store_figures(self) -> dict:
        with self._lock:
            now = self.monotonic()
            if self._store is not None and now - self._store[0] < self.settings.refresh_seconds:
                return self._store[1]
            packs, size = store_on_disk(self.store_path)
            snaps, logical, unique = figures.store_usage(self.catalog)
            found = {"seedward_store_size_bytes": size, "seedward_store_packs": packs,
                     "seedward_store_snapshots": snaps, "seedward_store_logical_bytes": logical,
                     "seedward_store_unique_bytes": unique,
                     "seedward_store_dedup_ratio": round(logical / unique, 4) if unique else 1.0}
            self._store = (now, found)
            return found


def _histogram(family, name: str, doc: str, bounds, found):
    counts, total, sum_value = found
    buckets = [(repr(float(b)), c) for b, c in zip(bounds, counts)] + [("+Inf", total)]
    return family(name, doc, buckets=buckets, sum_value=sum_value)


class MetricsServer:
    """A service component: prometheus_client's HTTP server on its own thread."""

    def __init__(self, service, settings: MetricsSettings):
        self.service = service
        self.settings = settings
        self.address = settings.address()
        self.server = None
        self.catalog = None
        self.port: int | None = None
        self.error: str | None = None  # why there is no endpoint (a port in use), for status

    def start(self) -> None:
        from prometheus_client import CollectorRegistry, start_http_server
        from prometheus_client.process_collector import ProcessCollector

        service = self.service
        settings = service.settings
        store_path = Path(settings.store.path).expanduser() if settings.store.path else service.home.store
        self.catalog = catalog_for(service.home, settings)
        registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        registry.register(SeedwardCollector(self.catalog, store_path, self.settings,
                                            qbt_state=lambda: service.sync.state, qbt_syncs=lambda: service.sync.syncs,
                                            qbt_instances=lambda: [(loop.instance.name, loop.state)
                                                                   for loop in getattr(service.sync, "loops", [])]))
        host, port = self.address
        try:
            self.server, _thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:  # the service runs on without its endpoint, and says so
            self.catalog.close()
            self.catalog = None
            error = ConfigError(f"metrics.listen {self.settings.listen}", f"cannot listen: {exc.strerror or exc}")
            service.emit("metrics_failed", None, f"{error}; no Prometheus endpoint", level="error")
            self.error = str(error)
            return
        self.port = self.server.server_address[1]
        log.info("metrics at http://%s/metrics", _hostport(host, self.port))
        service.emit("metrics_listening", None, f"Prometheus metrics at http://{_hostport(host, self.port)}/metrics",
                     listen=_hostport(host, self.port))

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.catalog is not None:
            self.catalog.close()
            self.catalog = None

    def status(self, status: dict) -> None:
        status["service"]["metrics"] = {"listen": _hostport(self.address[0], self.port) if self.port else None,
                                        "error": self.error}


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def register(service) -> None:
    settings = service.settings.metrics
    if not settings.listen:
        return
    server = MetricsServer(service, settings)
    service.on_status(server.status)
    service.add_component(server)
