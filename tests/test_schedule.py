"""The service schedule (issue 19 item 7): `[schedule]` specs (pure, frozen clock), and archive tiers
queued by a real service (real qbittorrent-nox, store, 7z, PAR2, a local remote): a due run makes a
set; a failing run is retried, remembered across a service restart, and ends in one `archive_failed`
event after the last try."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from companion.archive import service as archive_feature
from companion.catalog import archives as records
from companion.catalog import schedule as runs
from companion.config import ConfigError, load_settings
from companion.service.schedule import Schedule
from companion.timespec import BadSpec, due, parse
from tests.helpers import wait_until
from tests.qbt import service_settings

TZ = timezone(timedelta(hours=2))  # a local time zone off UTC


def at(y, mo, d, h=0, mi=0):
    return datetime(y, mo, d, h, mi, tzinfo=TZ)


def test_specs():
    assert parse("") is None
    assert parse("03:00") == parse("daily 03:00")
    assert parse("sun 04:30").kind == "weekly" and parse("weekly Sunday 04:30").day == 6
    assert parse("monthly 31 05:00").day == 31 and parse("yearly jan 1 06:00").month == 1
    assert parse("every 6h").seconds == 6 * 3600 and parse("every 90m").seconds == 5400
    for bad in ("25:00", "daily", "weekly 04:00", "monthly 0 01:00", "yearly foo 1 01:00", "every 0h", "every 5x",
                "tuesday", "03:00 daily"):
        with pytest.raises(BadSpec):
            parse(bad)


def test_due_runs_once_per_moment_and_catches_up_once():
    daily = parse("03:00")
    assert due(daily, None, at(2026, 3, 2, 10)) is None  # first sight: count from now
    assert due(daily, at(2026, 3, 2, 10), at(2026, 3, 2, 23)) is None
    assert due(daily, at(2026, 3, 2, 10), at(2026, 3, 3, 3)) == at(2026, 3, 3, 3)
    # down for three days: one run on return, for the latest moment missed
    assert due(daily, at(2026, 3, 3, 3), at(2026, 3, 6, 12)) == at(2026, 3, 6, 3)
    weekly = parse("sun 04:00")  # 2026-03-08 is a Sunday
    assert due(weekly, at(2026, 3, 2), at(2026, 3, 8, 3, 59)) is None
    assert due(weekly, at(2026, 3, 2), at(2026, 3, 9)) == at(2026, 3, 8, 4)
    monthly = parse("monthly 31 05:00")
    assert due(monthly, at(2026, 2, 1), at(2026, 3, 1)) == at(2026, 2, 28, 5)  # a short month: its last day
    yearly = parse("yearly jan 1 00:30")
    assert due(yearly, at(2026, 6, 1), at(2027, 1, 1, 1)) == at(2027, 1, 1, 0, 30)
    every = parse("every 6h")
    assert due(every, None, at(2026, 3, 2)) == at(2026, 3, 2)
    assert due(every, at(2026, 3, 2), at(2026, 3, 2, 5, 59)) is None
    assert due(every, at(2026, 3, 2), at(2026, 3, 2, 6)) == at(2026, 3, 2, 6)


def test_a_bad_spec_is_a_config_error(tmp_path):
    conf = tmp_path / "config.toml"
    conf.write_text('[schedule]\narchive_weekly = "sunday at noon"\n')
    with pytest.raises(ConfigError, match="archive_weekly"):
        load_settings(conf)
    conf.write_text('[schedule]\narchive_hourly = "every 1h"\n')
    with pytest.raises(ConfigError, match="unknown key"):
        load_settings(conf)


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def scheduled_service(make_service, qbt, tmp_path, remote, clock, **schedule):
    """A real service with the archive feature installed (as `seedward serve` does); its schedule
    ticked by hand on a frozen clock."""
    settings = service_settings(qbt)
    settings.archive.remote = str(remote)
    settings.archive.volume_kb = 64
    settings.archive.passphrase_file = str(tmp_path / "pass")
    for key, value in schedule.items():
        setattr(settings.schedule, key, value)
    service = make_service(home=tmp_path / "home", settings=settings)
    service.schedule = Schedule(service, clock=clock)  # not started: no thread ticks on the real clock
    archive_feature.register(service)
    return service, service.schedule


def outcome(service, name):
    row = runs.get_run(service.catalog, name)
    return runs.job_outcome(service.catalog, row["job_id"]) if row and row["job_id"] else None


def events(service, kind):
    return [dict(r) for r in service.catalog.query("SELECT * FROM events WHERE kind = ? ORDER BY id", (kind,))]


def test_service_runs_a_due_tier_and_retries_a_failing_one(make_service, qbt, tmp_path):
    (tmp_path / "pass").write_text("scheduled passphrase\n")
    remote = tmp_path / "remote"
    clock = Clock(at(2026, 3, 2, 2, 0))
    service, sched = scheduled_service(make_service, qbt, tmp_path, remote, clock, archive_daily="03:00",
                                       retries=2, retry_minutes=10)
    assert sched.tick() == []  # first sight
    clock.now = at(2026, 3, 2, 3, 1)
    [job] = sched.tick()
    wait_until(lambda: outcome(service, "archive_daily") == ("done", None), 120, what="scheduled daily set made")
    sched.tick()
    row = runs.get_run(service.catalog, "archive_daily")
    assert row["last_result"] == "ok" and row["job_id"] is None
    [folder] = [p for p in (remote / "daily").iterdir() if p.is_dir()]
    assert (folder / "set.json").is_file() and json.loads((folder / "set.json").read_text())["tier"] == "daily"
    # the run refreshed qBittorrent's state first: the set carries it
    members = {m["path"] for m in records.get_set(service.catalog, folder.name)["manifest"]["members"]}
    assert "manifests/qbittorrent/state.json" in members
    assert [e["kind"] for e in events(service, "archive_created")] == ["archive_created"]
    assert sched.tick() == []  # not due again today

    # the remote goes away (a file where its folder should be): every try fails
    remote.rename(tmp_path / "remote-gone")
    remote.write_text("not a folder")
    clock.now = at(2026, 3, 3, 3, 0)
    [first] = sched.tick()
    wait_until(lambda: (outcome(service, "archive_daily") or ("",))[0] == "failed", 120, what="try 1 failed")
    assert sched.tick() == []  # the retry waits retry_minutes
    row = runs.get_run(service.catalog, "archive_daily")
    assert row["attempt"] == 1 and row["next_try"] and "remote" in row["last_error"]

    # the service restarts: the pending retry is remembered
    service.stop()
    service, sched = scheduled_service(make_service, qbt, tmp_path, remote, clock, archive_daily="03:00",
                                       retries=2, retry_minutes=10)
    clock.now = at(2026, 3, 3, 3, 11)
    [second] = sched.tick()
    assert second != first
    wait_until(lambda: (outcome(service, "archive_daily") or ("",))[0] == "failed", 120, what="try 2 failed")
    sched.tick()
    clock.now = at(2026, 3, 3, 3, 22)
    [third] = sched.tick()
    wait_until(lambda: (outcome(service, "archive_daily") or ("",))[0] == "failed", 120, what="try 3 failed")
    assert events(service, "archive_failed") == []
    sched.tick()  # the last try failed: one event, no more retries
    [failed] = events(service, "archive_failed")
    detail = json.loads(failed["detail"])
    assert failed["level"] == "error" and detail["attempts"] == 3 and detail["job_kind"] == "archive_daily"
    assert "remote" in failed["message"]
    clock.now = at(2026, 3, 3, 4, 0)
    assert sched.tick() == [] and len(events(service, "archive_failed")) == 1
    row = runs.get_run(service.catalog, "archive_daily")
    assert row["last_result"] == "failed" and row["attempt"] == 0 and row["next_try"] is None
    assert len([e for e in events(service, "job_failed") if json.loads(e["detail"])["job_kind"] == "archive_daily"]) == 3
