"""The Prometheus endpoint of a real service (real qbittorrent-nox, store, drift, drill): scraped
over HTTP and parsed with prometheus_client's own exposition parser. Each figure is checked
against the catalog and the disk at that moment (the invariant: the endpoint says what the
catalog says)."""

import json
import os
import socket
import urllib.request
from datetime import datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from companion.catalog import drift as drift_rows
from companion.home import Home
from companion.metrics import register
from companion.service import Service

from .helpers import flip_byte, seedward, wait_until
from .qbt import seed_sample, service_settings, wait_states

pytestmark = pytest.mark.qbt


def scrape(port: int) -> dict:
    """{(metric sample name, frozenset(labels)): value} from /metrics, parsed by prometheus_client."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: dict, metric: str, **labels) -> float:
    return samples[(metric, frozenset(labels.items()))]


def by_label(samples: dict, metric: str, label: str) -> dict:
    return {dict(k[1])[label]: v for k, v in samples.items() if k[0] == metric}


def pack_bytes(store_root) -> int:
    return sum(p.stat().st_size for p in (store_root / "data").rglob("*") if p.is_file())


@pytest.mark.slow
def test_scrape_matches_the_catalog_through_drift_heal_drill_and_qbittorrent_down(qbt, tmp_path):
    from companion.drift.service import install
    from companion.drill.service import register as register_drills
    from companion.ladder.service import register as register_ladder
    from companion.store.job import register as register_snapshots

    qbt.remove_all()
    data = tmp_path / "dl"
    files = {"01.flac": 70_000, "cover.jpg": 9_000}
    a, _ = seed_sample(qbt, data, "Album", files, seed=5)
    b, _ = seed_sample(qbt, data, "Album (cross-seed)", files, seed=5)  # the same bytes: one copy in the store
    settings = service_settings(qbt)
    settings.scrub.interval_hours = 0
    settings.drill.interval_hours = 0
    settings.metrics.listen = "127.0.0.1:0"
    settings.metrics.refresh_seconds = 0  # store figures recomputed at every scrape
    service = Service(Home(tmp_path / "home"), settings)
    register_snapshots(service)
    drift = install(service)
    register_drills(service)
    register_ladder(service)
    register(service)
    service.start()
    try:
        port = service.status()["service"]["metrics"]["listen"].rsplit(":", 1)[1]
        port = int(port)
        wait_states(service, [a, b])
        cat = service.catalog
        wait_until(lambda: len(cat.query("SELECT DISTINCT torrent_id FROM snapshots")) == 2
                   and len(cat.query("SELECT DISTINCT torrent_id FROM zones")) == 2
                   and {a, b} <= set(drift.monitor.watch.tracked()) and not cat.pending_jobs(), 60, 0.1,
                   "both snapshotted, zoned and watched")
        payload = sum(files.values())

        m = scrape(port)
        assert value(m, "seedward_torrents", state="protected") == 2
        assert sum(by_label(m, "seedward_torrents", "state").values()) == len(cat.list_torrents())
        assert value(m, "seedward_payload_bytes", state="protected") == 2 * payload
        assert value(m, "seedward_protected_bytes", tier="verified") == 2 * payload
        assert value(m, "seedward_protected_bytes", tier="snapshot") == 2 * payload
        assert value(m, "seedward_protected_bytes", tier="archive_daily") == 0
        assert value(m, "seedward_protected_bytes", tier="zones") == 2 * payload
        assert value(m, "seedward_zone_bytes") == cat.one("SELECT SUM(length) AS n FROM zones")["n"] > 0
        assert value(m, "seedward_store_logical_bytes") == 2 * payload
        assert value(m, "seedward_store_unique_bytes") == payload  # the cross-seed is deduplicated
        assert value(m, "seedward_store_dedup_ratio") == 2.0
        assert value(m, "seedward_store_size_bytes") == pack_bytes(tmp_path / "home" / "store") > 0
        assert value(m, "seedward_qbittorrent_up") == 1
        assert value(m, "seedward_qbittorrent_state", state="connected") == 1
        assert value(m, "seedward_heal_duration_seconds_count") == 0

        # drift, healed from the snapshot
        flip_byte(data / "Album" / "01.flac", 20_000)
        wait_until(lambda: [r for r in drift_rows.heals(cat, a) if r["outcome"] == "healed"], 60, 0.1, "the heal")
        wait_until(lambda: cat.get_torrent(a)["protection"] == "protected", 60, 0.1, "protected again")
        heal = dict(drift_rows.heals(cat, a)[0])
        timings = json.loads(heal["timings"])
        m = scrape(port)
        assert value(m, "seedward_heals_total", outcome="healed", source="snapshot") == 1
        assert value(m, "seedward_heal_duration_seconds_count") == 1
        assert value(m, "seedward_heal_duration_seconds_sum") == pytest.approx(timings["total"])
        buckets = by_label(m, "seedward_heal_duration_seconds_bucket", "le")
        assert buckets["+Inf"] == 1 and all(v in (0, 1) for v in buckets.values())
        assert min(float(le) for le, v in buckets.items() if v == 1) >= timings["total"]
        assert value(m, "seedward_drift_detection_seconds_count") == 1
        assert value(m, "seedward_drift_detection_seconds_sum") == pytest.approx(timings["total"] - timings["respond"])
        assert value(m, "seedward_torrents", state="protected") == 2

        # a drill: the last drill per torrent
        service.enqueue("drill", b, reason="action")
        wait_until(lambda: cat.one("SELECT state FROM drills WHERE torrent_id = ? AND state != 'running'", (b,)),
                   120, 0.1, "the drill")
        drill = cat.one("SELECT * FROM drills WHERE torrent_id = ?", (b,))
        m = scrape(port)
        labels = {"torrent": b, "name": "Album (cross-seed)"}
        assert value(m, "seedward_drill_last_passed", **labels) == (1 if drill["state"] == "passed" else 0) == 1
        assert value(m, "seedward_drill_last_timestamp_seconds", **labels) == pytest.approx(
            datetime.fromisoformat(drill["finished_at"]).timestamp())
        assert ("seedward_drill_last_passed", frozenset({"torrent": a, "name": "Album"}.items())) not in m

        # qBittorrent goes away: reachability says so
        qbt.stop()
        try:
            wait_until(lambda: value(scrape(port), "seedward_qbittorrent_up") == 0, 30, 0.1, "qBittorrent down")
            assert value(scrape(port), "seedward_qbittorrent_state", state="connected") == 0
        finally:
            qbt.start()
        wait_until(lambda: value(scrape(port), "seedward_qbittorrent_up") == 1, 60, 0.1, "qBittorrent back")
    finally:
        service.stop()
        qbt.remove_all()
    with pytest.raises(OSError):  # the endpoint stops with the service
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_off_when_empty_and_a_busy_port_is_said_not_fatal(qbt, tmp_path):
    settings = service_settings(qbt)
    service = Service(Home(tmp_path / "off"), settings)
    register(service)
    assert not service.components and "metrics" not in json.dumps(service.status()["service"])
    service.catalog.close()

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        settings.metrics.listen = f"127.0.0.1:{busy.getsockname()[1]}"
        service = Service(Home(tmp_path / "busy"), settings)
        register(service)
        service.start()
        try:
            failed = [e for e in service.catalog.events(None, 50) if e["kind"] == "metrics_failed"]
            assert failed and "cannot listen" in failed[0]["message"] and settings.metrics.listen in failed[0]["message"]
            assert service.status()["service"]["metrics"]["listen"] is None
            assert "cannot listen" in service.status()["service"]["metrics"]["error"]
            assert service.status()["service"]["running"]
            shown = seedward("status", home=tmp_path / "busy")  # said in the table too, through the socket
            assert shown.returncode == 0, shown.stderr
            assert f"metrics: not served: metrics.listen {settings.metrics.listen}: bad configuration: cannot listen" \
                in shown.stdout
        finally:
            service.stop()
    assert os.path.exists(tmp_path / "busy" / "catalog.sqlite")
