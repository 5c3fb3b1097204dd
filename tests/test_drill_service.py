"""Drills in the running service: the "drill" job via the control socket, the schedule, alerts,
and cleanup of a crashed drill's scratch at start. Real qbittorrent-nox, store and libtorrent."""

from datetime import datetime, timedelta, timezone

import pytest

from companion.catalog import drills as drill_rows
from companion.catalog.snapshots import snapshot_chunks
from companion.control import request, subscribe
from companion.drill import last_drills
from companion.drill.scratch import MARKER
from companion.drill.schedule import due, pick
from companion.drill.service import DrillSchedule, register
from companion.store.job import service_store
from companion.store.pack import pack_name
from companion.torrent import load_torrent
from tests.helpers import flip_byte, wait_until
from tests.qbt import seed_sample, wait_states

pytestmark = pytest.mark.qbt


def test_drills_run_as_service_jobs_and_on_schedule(qbt, make_service, tmp_path):
    # a drill that "crashed" before the service started: a marked folder of a dead process
    scratch = tmp_path / "home" / "scratch"
    leftover = scratch / "drill-deadbeef"
    (leftover / "payload").mkdir(parents=True)
    (leftover / MARKER).write_text('{"pid": 999999999, "start": "1", "drill": "deadbeef"}')

    service = make_service()
    data = tmp_path / "data"
    good, good_torrent = seed_sample(qbt, data, "good", seed=3)
    bad, bad_torrent = seed_sample(qbt, data, "bad", seed=4, kind="v1")
    wait_states(service, [good, bad])
    live = {p: p.read_bytes() for p in sorted(data.rglob("*")) if p.is_file()}
    store = service_store(service)
    snaps = {h: store.snapshot(load_torrent(t), data, "manual") for h, t in ((good, good_torrent), (bad, bad_torrent))}
    # corrupt one chunk of the "bad" torrent's snapshot inside its pack
    chunk = snapshot_chunks(service.catalog, snaps[bad].id)[1]
    (pack, at, _length), *_rest = store.locate(chunk["chunk_id"])  # the segment's bytes in its content chunk
    flip_byte(store.backend.local_path(pack_name(pack)), at + 7)

    service.settings.drill.interval_hours = 0  # the schedule is driven by hand below
    register(service)  # what `seedward serve` does through service.features
    assert not leftover.exists()  # the component's start removed it

    stream = subscribe(service.home, timeout=60)
    job = request(service.home, "action", action="drill", id=good[:8])
    assert job["id"] == good and job["job"]
    for event in stream:
        if event["event"] in ("drill_passed", "drill_failed") and event["torrent_id"] == good:
            break
    stream.close()
    assert event["event"] == "drill_passed"
    wait_until(lambda: not service.catalog.pending_jobs(), 60, what="the drill job to finish")

    # the schedule: due at once (never ran), least recently drilled first: "bad" before "good"
    service.settings.drill.per_run = 1
    service.settings.drill.interval_hours = 168
    schedule = DrillSchedule(service, clock=lambda: datetime.now(timezone.utc))
    queued = schedule.tick()
    assert len(queued) == 1
    assert schedule.tick() == []  # not due again before interval_hours
    wait_until(lambda: any(d["id"] == bad for d in last_drills(service.catalog)) and not service.catalog.pending_jobs(),
               60, what="the scheduled drill")
    [bad_drill] = [d for d in last_drills(service.catalog) if d["id"] == bad]
    assert bad_drill["state"] == "failed" and bad_drill["reason"] == "schedule"
    assert bad_drill["bad_pieces"] == [chunk["piece"]]
    assert drill_rows.is_suspect(service.catalog, snaps[bad].id)
    alerts = [e for e in service.catalog.events(bad) if e["kind"] == "drill_failed"]
    assert alerts and alerts[0]["level"] == "error"
    if hasattr(service, "register_op"):
        assert {d["id"] for d in request(service.home, "drills")["drills"]} == {good, bad}
    assert list(scratch.iterdir()) == []
    # the live payloads were never touched by any drill
    assert {p: p.read_bytes() for p in sorted(data.rglob("*")) if p.is_file()} == live


def test_schedule_is_due_after_its_interval_and_picks_what_fits():
    now = datetime(2026, 1, 8, tzinfo=timezone.utc)
    assert due(None, now, 168)
    assert not due(now - timedelta(hours=167), now, 168)
    assert due(now - timedelta(hours=168), now, 168)
    assert not due(None, now, 0)  # 0 turns the schedule off
    candidates = [{"torrent_id": "a", "payload_size": 10}, {"torrent_id": "b", "payload_size": 500},
                  {"torrent_id": "c", "payload_size": 20}, {"torrent_id": "d", "payload_size": 30}]
    assert pick(candidates, 2) == (["a", "b"], [])
    assert pick(candidates, 2, max_bytes=100) == (["a", "c"], ["b"])
    assert pick(candidates, 5, max_bytes=50, swarm=True) == (["a", "c"], ["b", "d"])
