"""Seeding continuity (issue 18): the pure timeline and report over events, and the Ledger over a
real catalog (its events and heal records as seedward writes them)."""

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from companion.catalog.db import catalog_for
from companion.config import Settings
from companion.continuity import seeding
from companion.continuity.library import Ledger, attach, detail
from companion.continuity.seeding import COUNTED, Dims, Event, Heal, World, interruptions, report, timeline
from companion.home import Home

DAY = 86400.0
NOW = 1_800_000_000.0  # 2027-01-15


def world(*changes) -> World:
    w = World(service=True)
    for at, kind in changes:
        w.apply(Event(at, kind))
    return w.freeze(True)


def protected_at(t):
    return Event(t, "state", "protected")


def test_a_heal_is_one_interruption_with_its_heal_time():
    t = NOW - DAY
    events = [protected_at(NOW - 6 * DAY), Event(t, "state", "damaged"), Event(t + 0.01, "stopped"),
              Event(t + 0.02, "drift"), Event(t + 0.1, "state", "healing"), Event(t + 0.3, "healed"),
              Event(t + 0.5, "state", "protected"), Event(t + 0.5, "resumed")]
    segs = timeline(events, world(), NOW - 7 * DAY, NOW)
    assert [s.state for s in segs] == ["unwatched", "seeding", "damaged", "healing", "seeding"]
    r = report(segs, [Heal("a", t, t + 0.3, "healed", 0.35)], "7d", NOW)
    short = r.short()
    assert short["interruptions"] == 1 and short["longest_outage_seconds"] == 0.5
    assert short["median_heal_seconds"] == 0.5  # drift found -> seeding again
    assert short["last_incident"] == seeding.iso(t)
    assert 0.999998 < short["intact_share"] < 1.0
    assert set(short) == {"window", "intact_share", "interruptions", "median_heal_seconds", "longest_outage_seconds",
                          "last_incident", "watched_seconds", "covered_from"}
    assert short["watched_seconds"] == 6 * DAY and short["covered_from"] == seeding.iso(NOW - 6 * DAY)
    full = r.full()
    assert full["detect_seconds"] == {"count": 1, "median": 0.35, "max": 0.35}
    assert full["seconds"]["unwatched"] == 1 * DAY  # before its first verification: not counted
    # a day later the 24-hour window has no incident left, the 7-day one keeps it
    assert report(segs + [seeding.Segment(NOW, NOW + DAY, "seeding")], [], "24h", NOW + DAY).interruptions == 0


def test_a_window_not_yet_watched_says_the_span_watched_not_the_window():
    """Found by the audit: a fresh home, 10 s after `serve`, said '100 % seeding intact over 7 d'."""
    w = World(service=False)
    w.apply(Event(NOW - 12, "service_started"))
    w = w.freeze(False)
    fresh = [protected_at(NOW - 10)]
    r = report(timeline(fresh, w, NOW - 7 * DAY, NOW), [], "7d", NOW)
    short = r.short()
    assert short["intact_share"] == 1.0 and short["watched_seconds"] == 10.0
    assert short["covered_from"] == seeding.iso(NOW - 10)
    assert seeding.headline(short).startswith("100 % seeding intact of the 10 s watched (window 7 d) · 0 incidents")
    library = seeding.combine([r, report(timeline([protected_at(NOW - 5)], w, NOW - 7 * DAY, NOW), [], "7d", NOW)], "7d")
    assert library.short()["watched_seconds"] == 10.0  # the longest-watched torrent's, not torrent-seconds
    assert library.short()["covered_from"] == seeding.iso(NOW - 10)
    # watched the whole window: the share speaks for it
    old = report(timeline([], world(), NOW - 7 * DAY, NOW, Dims(protection="protected")), [], "7d", NOW).short()
    assert old["watched_seconds"] == 7 * DAY and old["covered_from"] == seeding.iso(NOW - 7 * DAY)
    assert seeding.headline(old).startswith("100 % seeding intact over 7 d · 0 incidents")
    # an older service's continuity (no watched_seconds) still reads
    assert seeding.headline({k: v for k, v in short.items() if k != "watched_seconds"}).startswith(
        "100 % seeding intact over 7 d")


def test_the_users_stop_and_a_down_service_are_not_counted_but_seedwards_stop_is():
    events = [protected_at(NOW - 7 * DAY), Event(NOW - 5 * DAY, "user_stopped"), Event(NOW - 4 * DAY, "user_started"),
              Event(NOW - 2 * DAY, "job_paused_seeding"), Event(NOW - 2 * DAY + 60, "job_done")]
    w = world((NOW - 3 * DAY, "service_stopping"), (NOW - 3 * DAY + 3600, "service_started"))
    segs = timeline(events, w, NOW - 7 * DAY, NOW)
    assert [s.state for s in segs] == ["seeding", "paused", "seeding", "unwatched", "seeding", "stopped", "seeding"]
    r = report(segs, [], "7d", NOW)
    assert r.seconds["paused"] == DAY and r.seconds["unwatched"] == 3600 and r.seconds["stopped"] == 60
    assert r.interruptions == 1 and r.full()["stopped_by_seedward_seconds"] == 60
    assert abs(r.intact_share - (1 - 60 / (7 * DAY - DAY - 3600))) < 1e-9


def test_never_protected_is_never_intact():
    segs = timeline([Event(NOW - DAY, "baseline_bad")], world(), NOW - 7 * DAY, NOW)
    r = report(segs, [], "7d", NOW)
    assert r.intact_share == 0.0 and r.ongoing and r.interruptions == 1
    pending = report(timeline([], world(), NOW - 7 * DAY, NOW), [], "7d", NOW)
    assert pending.intact_share == 0.0 and pending.interruptions == 0 and pending.counted == 0


def test_qbittorrent_down_is_not_watched():
    w = world((NOW - DAY, "qbt_unreachable"), (NOW - DAY + 600, "qbt_connected"))
    segs = timeline([protected_at(NOW - 7 * DAY)], w, NOW - 7 * DAY, NOW)
    assert [s.state for s in segs] == ["seeding", "unwatched", "seeding"]
    assert report(segs, [], "7d", NOW).intact_share == 1.0


def test_a_stuck_service_is_not_watched():
    """service_stuck (its own status did not answer, service/watchdog.py) until service_answering."""
    w = world((NOW - DAY, "service_stuck"), (NOW - DAY + 300, "service_answering"))
    segs = timeline([protected_at(NOW - 7 * DAY)], w, NOW - 7 * DAY, NOW)
    assert [s.state for s in segs] == ["seeding", "unwatched", "seeding"]
    assert report(segs, [], "7d", NOW).seconds["unwatched"] == 300


KINDS = st.sampled_from(sorted(seeding.TORRENT_KINDS - {"state"}) + ["state"] * 6)
STATE = st.sampled_from(["protected", "damaged", "healing", "pending", "baseline_bad", "excluded", "unreachable"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 7 * 86400 - 1), KINDS, STATE), max_size=40),
       st.lists(st.tuples(st.integers(0, 7 * 86400 - 1), st.sampled_from(sorted(seeding.GLOBAL_KINDS))), max_size=8))
def test_invariants_of_any_event_history(raw, raw_world):
    start = NOW - 7 * DAY
    events = sorted((Event(start + t, k, s if k == "state" else None) for t, k, s in raw), key=lambda e: e.at)
    w = world(*sorted((start + t, k) for t, k in raw_world))
    segs = timeline(events, w, start, NOW)
    # the segments tile the window, in order, each with one of the states
    assert segs[0].start == start and segs[-1].end == NOW
    assert all(a.end == b.start and a.state != b.state for a, b in zip(segs, segs[1:]))
    assert all(s.state in seeding.STATES and s.end > s.start for s in segs)
    r = report(segs, [], "7d", NOW)
    assert abs(sum(r.seconds.values()) - 7 * DAY) < 1e-3
    assert 0.0 <= r.intact_share <= 1.0
    assert (r.intact_share == 1.0) == (r.counted > 0 and r.seconds.get("seeding", 0) == r.counted)
    runs = interruptions(segs)
    assert r.interruptions == len(runs) and all(o >= 0 for o in r.outages)
    # an interruption ends only when seeding starts again; the last one is open iff the torrent is
    # in a counted non-seeding state now (or since, through unwatched time)
    counted_now = [s.state for s in segs if s.state in COUNTED]
    assert r.ongoing == bool(counted_now and counted_now[-1] != "seeding")
    # the state now is what the events say now
    dims = Dims()
    for e in events:
        dims.apply(e)
    assert segs[-1].state == seeding.state_of(dims, w.at(NOW))


def fill(home: Path):
    cat = catalog_for(Home(home).ensure(), Settings())
    cat.add_event(None, "service_started", "up")
    with cat.tx() as db:
        db.executemany("INSERT INTO torrents (id, name, kind, piece_length, num_pieces, total_size, payload_size,"
                       " protection, last_verified, added_at, updated_at) VALUES (?, ?, 'v1', 16384, 1, 1, 1, ?, ?, ?, ?)",
                       [(f"{i:040x}", f"t{i}", "protected", "2020-01-01T00:00:00.000+00:00",
                         "2020-01-01T00:00:00.000+00:00", "2020-01-01T00:00:00.000+00:00") for i in range(1, 1001)])
    return cat


def test_the_ledger_over_a_real_catalog(tmp_path):
    cat = fill(tmp_path / "home")
    sick = f"{7:040x}"
    for kind, level, extra in (("state", "info", {"state": "damaged"}), ("stopped", "info", {}),
                                ("drift", "warning", {"reason": "drift"}), ("state", "info", {"state": "healing"}),
                                ("healed", "info", {})):
        cat.add_event(sick, kind, f"{kind} [FLAC]", level=level, **extra)
    from companion.catalog import drift as heals

    heal = heals.start_heal(cat, sick, "heal", {})
    heals.finish_heal(cat, heal, outcome="healed", timings={"total": 0.9, "respond": 0.5})
    ledger = Ledger().refresh(cat)
    status = {"torrents": [{"id": f"{i:040x}", "protection": "protected",
                            "last_verified": "2020-01-01T00:00:00.000+00:00"} for i in range(1, 1001)]}
    attach(status, ledger)
    by_id = {t["id"]: t["continuity"] for t in status["torrents"]}
    assert by_id[sick]["interruptions"] == 1 and by_id[sick]["last_incident"] is not None
    assert by_id[sick]["median_heal_seconds"] is None  # still healing: not seeding again yet
    quiet = by_id[f"{8:040x}"]
    assert quiet["interruptions"] == 0 and quiet["intact_share"] == 1.0 and quiet["last_incident"] is None
    assert status["continuity"]["interruptions"] == 1 and 0.99 < status["continuity"]["intact_share"] < 1.0
    cat.add_event(sick, "state", "protection: protected", state="protected")
    cat.add_event(sick, "resumed", "resumed")
    attach(status, ledger.refresh(cat))  # only the new events are read
    healed = {t["id"]: t["continuity"] for t in status["torrents"]}[sick]
    assert healed["median_heal_seconds"] is not None and healed["median_heal_seconds"] >= 0
    full = detail(ledger, sick, {"id": sick, "protection": "protected"})
    assert set(full["windows"]) == {"24h", "7d", "30d"}
    assert full["windows"]["7d"]["detect_seconds"]["median"] == 0.4
    # (no event said it was protected before its drift: that time is not counted)
    states = [s["state"] for s in full["timeline"]]  # (damaged lasted < 1 ms here: it may not show)
    assert states[0] == "unwatched" and states[-2:] == ["healing", "seeding"]
    cat.close()


def test_several_instances_each_torrent_watched_through_its_own():
    w = World(service=True)
    for at, kind, instance in ((NOW - DAY, "qbt_unreachable", "box-a"), (NOW - DAY + 600, "qbt_connected", "box-a")):
        w.apply(Event(at, kind, instance))
    w.freeze(True)
    on_a = timeline([protected_at(NOW - 7 * DAY)], w, NOW - 7 * DAY, NOW, instance="box-a")
    on_b = timeline([protected_at(NOW - 7 * DAY)], w, NOW - 7 * DAY, NOW, instance="box-b")
    unknown = timeline([protected_at(NOW - 7 * DAY)], w, NOW - 7 * DAY, NOW)
    assert [s.state for s in on_a] == ["seeding", "unwatched", "seeding"]
    assert [s.state for s in on_b] == ["seeding"]  # box-a's outage says nothing of box-b's torrents
    assert [s.state for s in unknown] == ["seeding", "unwatched", "seeding"]  # not known where: not counted
