"""The scheduled upkeep in a real service (real qbittorrent-nox, store, drift, drills): [schedule]
forget, prune, drills, scrub and quarantine_expiry queue their jobs through the one schedule, and
each job does what it says on the real store and catalog: [retention] per torrent, snapshots of
torrents removed from qBittorrent long ago (but not those a quarantine entry still rebuilds
from), chunks freed by prune, drills that run, a scrub that reads the store back."""

from datetime import datetime, timedelta, timezone

import pytest

from companion import quarantine, retention
from companion.catalog import snapshots as snap_rows
from companion.config import ConfigError, load_settings
from companion.home import Home
from companion.service import Service
from companion.service.schedule import Schedule
from companion.store.job import service_store
from companion.torrent import load_torrent

from .helpers import wait_until
from .qbt import seed_sample, service_settings, wait_states

pytestmark = pytest.mark.qbt


def job_done(service, job: int) -> bool:
    row = service.catalog.one("SELECT state, error FROM queue WHERE id = ?", (job,))
    assert row["state"] != "failed", row["error"]
    return row["state"] == "done"


def run_entry(service, name: str) -> list[int]:
    """One tick of the schedule with only this entry due ("every 1m" runs at first sight)."""
    setattr(service.settings.schedule, name, "every 1m")
    jobs = Schedule.of(service).tick()
    setattr(service.settings.schedule, name, "")
    return jobs


def test_config_names_a_bad_schedule_entry(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[schedule]\nforget = "daily 25:00"\n')
    with pytest.raises(ConfigError, match="forget"):
        load_settings(path)
    assert load_settings(None).schedule.quarantine_expiry == "daily 04:30"  # expiry on by default


@pytest.mark.slow
def test_scheduled_upkeep_in_a_real_service(qbt, tmp_path):
    from companion.drift.service import install
    from companion.drill.service import register as register_drills
    from companion.store.job import register as register_snapshots

    qbt.remove_all()
    data = tmp_path / "dl"
    keep, keep_file = seed_sample(qbt, data, "Kept", {"a.flac": 50_000}, seed=31)
    gone, gone_file = seed_sample(qbt, data, "Removed", {"b.flac": 40_000}, seed=32)
    held, held_file = seed_sample(qbt, data, "Held", {"c.flac": 30_000}, seed=33)
    settings = service_settings(qbt)
    settings.scrub.interval_hours = 24
    settings.schedule.scrub = "weekly sun 03:00"  # replaces the 24 h timer
    settings.drill.interval_hours = 1  # would be due at once: [schedule] drills must win
    settings.schedule.drills = "weekly sun 02:00"
    settings.drill.per_run = 2
    settings.retention.keep_last = 1
    settings.retention.keep_daily = settings.retention.keep_weekly = settings.retention.keep_monthly = 0
    settings.retention.removed_days = 30
    service = Service(Home(tmp_path / "home"), settings)
    register_snapshots(service)
    install(service)
    register_drills(service)
    retention.register(service)
    assert settings.scrub.interval_hours == 0
    service.start()
    try:
        ids = [keep, gone, held]
        wait_states(service, ids)
        cat = service.catalog
        wait_until(lambda: {r["torrent_id"] for r in snap_rows.list_snapshots(cat)} >= set(ids)
                   and not cat.pending_jobs(), 60, 0.1, "every torrent snapshotted")
        assert not cat.query("SELECT 1 FROM drills")  # the 1 h interval did not run: the schedule owns drills
        store = service_store(service)
        for tid, torrent in ((keep, keep_file), (gone, gone_file), (held, held_file)):
            for _ in range(2):
                store.snapshot(load_torrent(torrent), data, "manual")
        assert {t: len(store.snapshots(t)) for t in ids} == {t: 3 for t in ids}

        # forget: [retention] keep_last = 1 per torrent
        (job,) = run_entry(service, "forget")
        wait_until(lambda: job_done(service, job), 60, 0.1, "the forget job")
        assert {t: len(store.snapshots(t)) for t in ids} == {t: 1 for t in ids}
        assert [e for e in cat.events(None, 20) if e["kind"] == "forgot"][0]["message"].startswith(
            "retention: 6 snapshots forgotten")

        # torrents removed from qBittorrent: after removed_days, their snapshots go, unless a
        # quarantine entry still needs them
        qbt.client.torrents_delete(delete_files=False, torrent_hashes=[gone, held])
        wait_until(lambda: all(cat.get_torrent(t)["removed_at"] for t in (gone, held)), 60, 0.1, "both removed")
        folder = service.home.quarantine / "20260101T000000.000000Z-" f"{held[:12]}"
        folder.mkdir(parents=True)
        (folder / "drift.json").write_text(f'{{"torrent": "{held}", "name": "Held", "files": []}}')
        assert retention.forget(service, now=datetime.now(timezone.utc) + timedelta(days=29))["removed"] == []
        out = retention.forget(service, now=datetime.now(timezone.utc) + timedelta(days=31))
        assert out["removed_torrents"] == [gone] and len(out["removed"]) == 1
        assert store.snapshots(gone) == [] and len(store.snapshots(held)) == 1 and len(store.snapshots(keep)) == 1

        # prune frees what no snapshot uses any more: the removed torrent's chunks
        still_used = set(snap_rows.referenced_chunks(cat))
        (job,) = run_entry(service, "prune")
        wait_until(lambda: job_done(service, job), 60, 0.1, "the prune job")
        pruned = [e for e in cat.events(None, 20) if e["kind"] == "pruned"][0]
        assert "40,000 bytes freed" in pruned["message"]
        assert set(store.index.packs()) and all(cid in store.index for cid in still_used)

        # a week later: drills and scrub (weekly) and the quarantine expiry (daily, on by default) are
        # due, each once
        sched = Schedule.of(service)
        real = sched.clock
        sched.clock = lambda: real() + timedelta(days=8)
        try:
            jobs = sched.tick()
            assert sched.tick() == []  # once, not once per missed day
        finally:
            sched.clock = real
        kinds = {cat.one("SELECT kind FROM queue WHERE id = ?", (j,))["kind"]: j for j in jobs}
        assert set(kinds) == {"drills", "scrub", "quarantine_expiry"}
        wait_until(lambda: all(job_done(service, j) for j in jobs), 60, 0.1, "the scheduled jobs")
        wait_until(lambda: cat.query("SELECT 1 FROM drills WHERE state != 'running'") and not cat.pending_jobs(),
                   180, 0.2, "the scheduled drill and the scrub's read-back")
        drilled = cat.query("SELECT torrent_id, state, reason FROM drills")
        assert [(r["torrent_id"], r["state"], r["reason"]) for r in drilled] == [(keep, "passed", "schedule")]
        assert [e for e in cat.events(None, 50) if e["kind"] == "store_checked"]  # the scrub's store read-back

        # the expiry removed the entry dated 2026-01-01 (past keep_days = 90)
        assert quarantine.entries(service.home.quarantine) == [] and not folder.exists()
        assert [e for e in cat.events(None, 50) if e["kind"] == "quarantine_expired"]
        Schedule.of(service).tick()  # follows the finished jobs: each run is remembered as ok
        results = {r["name"]: r["last_result"] for r in cat.query("SELECT name, last_result FROM schedule_runs")}
        assert all(results[n] == "ok" for n in ("drills", "scrub", "quarantine_expiry")), results
    finally:
        service.stop()
        qbt.remove_all()
