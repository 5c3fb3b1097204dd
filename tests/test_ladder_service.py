"""`auto`, the default protection level, in the real service with the real qbittorrent-nox: after
verification the ladder keeps zones and PAR2 recovery data (or, for a small torrent within the
budget, a full snapshot), the status shows each torrent's coverage, and drift is healed from the
ladder (here: rot in the middle of a file, from parity) back to 100 % in qBittorrent."""

import hashlib

import pytest

from companion.catalog import parity as parity_rows
from companion.control import request
from companion.service.features import install_features
from companion.store.job import service_store
from tests.helpers import flip_byte, wait_until
from tests.qbt import seed_sample, service_settings, wait_states

pytestmark = [pytest.mark.qbt, pytest.mark.slow]


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


FEATURES = ("companion.store.job", "companion.drift.service", "companion.ladder.service")  # as `seedward serve`


def idle(service) -> bool:
    return not service.catalog.pending_jobs()


def coverage_of(service, tid):
    status = request(service.home, "status")
    entry = next(t for t in status["torrents"] if t["id"] == tid)
    return entry.get("coverage"), status["service"]["ladder"]


def test_auto_keeps_zones_and_parity_and_heals_rot_from_parity(make_service, qbt, tmp_path):
    settings = service_settings(qbt)
    assert settings.protection.default.level == "auto"  # the default
    settings.protection.auto_snapshot_max_mb = 0  # no full snapshot: zones and parity only
    service = make_service(settings=settings)
    install_features(service, FEATURES)
    data = tmp_path / "data"
    tid, _torrent = seed_sample(qbt, data, "show", {"e01.mkv": 3_000_000, "notes.txt": 5000}, seed=5)
    wait_states(service, [tid])
    wait_until(lambda: parity_rows.parity_sets(service.catalog, tid) and idle(service), 120, 0.2,
               "zones and parity kept after the verification")
    assert service_store(service).snapshots(tid) == []  # nothing else: no second copy
    cov, ladder = wait_until(lambda: (lambda c: c if c[0] and c[0]["classes"]["scattered_rot"] else None)(
        coverage_of(service, tid)), 60, 0.5, "coverage in the status")
    assert cov["classes"]["scattered_rot"] == ["parity 1%"] and cov["classes"]["resized_header"]
    assert not cov["classes"]["file_deleted"] and cov["of"] == 7 and cov["survives"] < 7  # said, not hidden
    assert ladder["parity_bytes"] > 0 and ladder["zone_bytes"] > 0 and ladder["budget"] == "2%"

    movie = data / "show" / "e01.mkv"
    good = sha(movie)
    flip_byte(movie, 1_500_000)  # rot in the middle: no zone holds it
    wait_until(lambda: sha(movie) == good, 120, 0.2, "the rot healed")
    heal = wait_until(lambda: service.catalog.one("SELECT * FROM heals WHERE torrent_id = ? AND outcome = 'healed'"
                                                  " ORDER BY id DESC LIMIT 1", (tid,)), 60, 0.2, "the heal recorded")
    assert heal["source"].startswith("ladder:") and "parity" in heal["source"]
    wait_until(lambda: (lambda t: t["progress"] >= 1 and t["state"] in ("uploading", "stalledUP", "queuedUP"))(
        qbt.client.torrents_info(torrent_hashes=tid)[0]), 120, 0.2, "seeding at 100 % in qBittorrent")
    wait_until(lambda: service.catalog.get_torrent(tid)["protection"] == "protected", 60, 0.2, "protected again")


def test_auto_gives_a_small_torrent_a_full_snapshot_within_the_budget(make_service, qbt, tmp_path):
    service = make_service()
    install_features(service, FEATURES)
    tid, _torrent = seed_sample(qbt, tmp_path / "data", "ep", seed=6)
    wait_states(service, [tid])
    wait_until(lambda: service_store(service).snapshots(tid) and idle(service), 120, 0.2, "a full snapshot")
    assert parity_rows.parity_sets(service.catalog, tid) == []  # the full snapshot covers rot already
    cov = wait_until(lambda: (lambda c: c if c and c["survives"] == 7 else None)(coverage_of(service, tid)[0]),
                     60, 0.5, "every damage class covered")
    assert "full" in cov["classes"]["file_deleted"]
