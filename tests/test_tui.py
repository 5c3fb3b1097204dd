"""The TUI against a control socket speaking the protocol (Pilot): navigation, live updates, actions, states."""

import asyncio
import functools
import json

import pytest
from rich.text import Text
from textual.widgets import DataTable, Static

from tests.helpers import seedward
from tests.tui_fake_service import NOW, FakeService, h, sample_status
from tests.tui_fake_service import fake, home  # noqa: F401 (shared fixtures)
from tui.alerts import AlertsScreen
from tui.confirm import ConfirmScreen
from tui.dashboard import DashboardScreen
from tui.detail import DetailScreen
from tui.help import HelpScreen
from tui.jobs import JobsScreen
from tui.text import piece_cells
from tui.torrent_table import TorrentTable

DEBIAN, BACH, NOTLD = h(0xD4E5F6), h(0xA1B2C3), h(0x0F0F0F)


def aio(test):
    """Run an async test in its own event loop (no asyncio plugin needed)."""
    @functools.wraps(test)
    def run(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))
    return run


def make_app(home, **kw):
    from tui.app import SeedwardApp

    return SeedwardApp(home, clock=lambda: NOW, retry_seconds=0.2, debounce_seconds=0.05, **kw)


async def until(pilot, predicate, what="condition", tries=400):
    """Bounded poll inside the app's loop (no timing assertion)."""
    for _ in range(tries):
        if predicate():
            return
        await pilot.pause(0.025)
    raise AssertionError(f"never happened: {what}")


def table(app):
    """The screen's table: the dashboard's TorrentTable, or another screen's DataTable."""
    found = app.screen.query(TorrentTable)
    return found.first() if found else app.screen.query_one(DataTable)


def text(app, selector) -> str:
    return str(app.screen.query_one(selector, Static).render())


def cell(app, row_key, column) -> str:
    value = table(app).get_cell(row_key, column)
    return value.plain if isinstance(value, Text) else str(value)


def row_keys(app) -> list[str]:
    t = table(app)
    if isinstance(t, TorrentTable):
        return list(t.keys)
    return [t.coordinate_to_cell_key((i, 0)).row_key.value for i in range(t.row_count)]


@aio
async def test_dashboard_shows_every_torrent_and_totals(home, fake):
    app = make_app(home)
    async with app.run_test(size=(160, 30)) as pilot:
        await until(pilot, lambda: table(app).row_count == 6, "six rows")
        assert cell(app, DEBIAN, "protection") == "✖ damaged"
        assert cell(app, NOTLD, "protection") == "⟳ healing"
        assert cell(app, BACH, "swarm") == "12/3"
        assert cell(app, BACH, "drill") == "pass 41.3s 2d"
        assert cell(app, h(0x123456), "snapshot") == "-"  # absent field from a later feature
        totals = text(app, "#totals")
        assert "6 torrents" in totals and "2 protected" in totals
        assert "4 need attention: 1 damaged, 1 baseline-bad, 1 drill failed, 1 coverage gap" in totals
        assert "1 healing" in totals and "2 unprotected" in totals
        health = text(app, "#health")
        assert "qBittorrent v4.5.2 connected" in health and "last scrub 5h ago" in health and "dedup 1.86x" in health
        # continuity: the library's in the header, each torrent's in its row
        assert text(app, "#continuity").startswith("99.98 % seeding intact over 7 d · 5 incidents · median heal 0.5 s")
        assert cell(app, BACH, "intact") == "99.99%" and cell(app, h(0xC0FFEE), "intact") == "100%"
        assert cell(app, h(0x123456), "intact") == "-"  # pending: nothing watched seeding yet
        # attention first, then healing; a healed drift is history, not an alarm
        assert row_keys(app)[:2] == [DEBIAN, h(0xBADBAD)]
        assert cell(app, DEBIAN, "attention") == "damaged" and cell(app, h(0xC0FFEE), "attention") == "survives 5/7"
        assert cell(app, BACH, "incident") == "healed 2h ago" and cell(app, BACH, "attention") == "-"
        assert cell(app, DEBIAN, "incident") == "damaged 30m"


@aio
async def test_filter_search_sort(home, fake):
    app = make_app(home)
    async with app.run_test(size=(160, 30)) as pilot:
        await until(pilot, lambda: table(app).row_count == 6)
        await pilot.press("f")  # attention
        await until(pilot, lambda: table(app).row_count == 4, "attention filter")
        assert set(row_keys(app)) == {DEBIAN, NOTLD, h(0xBADBAD), h(0xC0FFEE)}
        await pilot.press("f")  # protected
        await until(pilot, lambda: set(row_keys(app)) == {BACH, h(0xC0FFEE)}, "protected filter")
        for _ in range(len(("damaged", "healing", "unprotected", "removed", "all"))):
            await pilot.press("f")
        await until(pilot, lambda: table(app).row_count == 6, "back to all")
        await pilot.press("slash", *"goldberg", "enter")
        await until(pilot, lambda: row_keys(app) == [BACH], "search by name")
        await pilot.press("slash", "ctrl+a", "ctrl+k", *DEBIAN[:6], "enter")  # an id prefix
        await until(pilot, lambda: row_keys(app) == [DEBIAN], "search by hash prefix")
        await pilot.press("escape")
        await until(pilot, lambda: table(app).row_count == 6, "search cleared")
        await pilot.press("s")  # sort by name
        await until(pilot, lambda: row_keys(app)[0] == BACH, "sorted by name")
        assert "sort: name" in text(app, "#view")
        await pilot.press("s")  # by size, biggest first
        await until(pilot, lambda: row_keys(app)[0] == h(0xC0FFEE), "sorted by size")


@aio
async def test_live_update_moves_the_torrent_up_and_the_cursor_stays(home, fake):
    app = make_app(home)
    async with app.run_test(size=(160, 30)) as pilot:
        await until(pilot, lambda: table(app).row_count == 6)
        await pilot.press("down", "down")
        chosen = table(app).cursor_key
        assert chosen not in (BACH, DEBIAN)
        fake.set_protection(BACH, "damaged")
        fake.push({"event": "drift", "id": 9, "torrent_id": BACH, "level": "warning", "at": NOW.isoformat(),
                   "message": "drift found"})
        await until(pilot, lambda: cell(app, BACH, "protection") == "✖ damaged", "pushed change shown")
        await until(pilot, lambda: "2 damaged" in text(app, "#totals"), "totals follow")
        await until(pilot, lambda: set(row_keys(app)[:2]) == {BACH, DEBIAN}, "attention first: it moved up")
        assert table(app).cursor_key == chosen  # the cursor stayed on the torrent it was on
        assert cell(app, DEBIAN, "protection") == "✖ damaged"


@aio
async def test_ten_thousand_torrents(home):
    service = FakeService(home.socket, status=sample_status(extra=10_000)).start()
    try:
        app = make_app(home)
        async with app.run_test(size=(160, 30)) as pilot:
            await until(pilot, lambda: table(app).row_count == 10_006, "10,006 rows", tries=2000)
            assert "10006 torrents" in text(app, "#totals")
            await pilot.press("slash", *"recording 09999", "enter")
            await until(pilot, lambda: row_keys(app) == [h(0x10000000 + 9999)], "search among 10,006",
                        tries=2000)
            await pilot.press("escape")
            await until(pilot, lambda: table(app).row_count == 10_006, "all back", tries=2000)
            service.set_protection(h(0x10000000 + 5000), "healing")
            service.push({"event": "healing", "id": 10, "torrent_id": h(0x10000000 + 5000), "level": "info"})
            await until(pilot, lambda: cell(app, h(0x10000000 + 5000), "protection") == "⟳ healing",
                        "one row of 10,006 updated", tries=2000)
            await pilot.press("f", "f", "f", "f")  # healing
            await until(pilot, lambda: set(row_keys(app)) == {NOTLD, h(0x10000000 + 5000)}, "healing filter",
                        tries=2000)
    finally:
        service.stop()


@aio
async def test_service_not_running_then_starts(home):
    app = make_app(home)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: "seedward serve" in text(app, "#empty"), "how to start the service")
        assert "service not running" in text(app, "#health")
        assert not table(app).display
        service = FakeService(home.socket).start()
        try:
            await until(pilot, lambda: table(app).row_count == 6, "reconnected by itself")
            assert table(app).display and not app.screen.query_one("#empty").display
        finally:
            service.stop()
        await until(pilot, lambda: "seedward serve" in text(app, "#empty"), "noticed the service stopped")


@aio
async def test_qbittorrent_unreachable_and_no_torrents(home):
    status = sample_status()
    status["torrents"] = []
    status["service"]["qbittorrent"] = {"url": "http://127.0.0.1:8080", "state": "unreachable",
                                        "error": "connection refused"}
    service = FakeService(home.socket, status=status).start()
    try:
        app = make_app(home)
        async with app.run_test(size=(140, 30)) as pilot:
            await until(pilot, lambda: "No torrents yet" in text(app, "#empty"), "no-torrents state")
            health = text(app, "#health")
            assert "qBittorrent unreachable at http://127.0.0.1:8080: connection refused" in health
    finally:
        service.stop()


@aio
async def test_detail_piece_map_and_verify_action(home, fake):
    app = make_app(home)
    async with app.run_test(size=(160, 40)) as pilot:
        await until(pilot, lambda: table(app).row_count == 6)
        await pilot.press("enter")  # the cursor is on the damaged torrent
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), "detail opened")
        assert app.screen.torrent_id == DEBIAN
        await until(pilot, lambda: "X damaged 2" in text(app, "#legend"), "piece map legend")
        assert "200 pieces" in text(app, "#legend") and "░ unverified 8" in text(app, "#legend")
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "confirmation asked")
        await pilot.press("n")  # declined: nothing sent
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.pause(0.1)
        assert fake.actions == []
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: "verify: queued" in text(app, "#progress-text")
                    and "job 101" in text(app, "#progress-text"), "job queued")
        assert fake.actions == [{"op": "action", "action": "verify", "id": DEBIAN}]
        fake.set_job(101, "running")
        fake.push({"event": "hook", "id": 11, "torrent_id": DEBIAN, "level": "info", "message": "verifying"})
        await until(pilot, lambda: "running (job 101)" in text(app, "#progress-text"), "job running")
        fake.set_job(101, None)
        fake.set_protection(DEBIAN, "protected")
        fake.push({"event": "protected", "id": 12, "torrent_id": DEBIAN, "level": "info",
                   "message": "verified against its torrent"})
        await until(pilot, lambda: "done (job 101); now protected" in text(app, "#progress-text"), "job done")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
        assert cell(app, DEBIAN, "protection") == "✔ protected"


@aio
async def test_alerts_jobs_help(home):
    jobs = [{"id": 7, "kind": "heal", "torrent_id": DEBIAN, "state": "running", "attempts": 1,
             "created_at": NOW.isoformat(), "updated_at": NOW.isoformat(), "error": None}]
    service = FakeService(home.socket, jobs=jobs).start()
    try:
        app = make_app(home)
        async with app.run_test(size=(160, 30)) as pilot:
            await until(pilot, lambda: table(app).row_count == 6)
            await pilot.press("a")
            await until(pilot, lambda: isinstance(app.screen, AlertsScreen) and table(app).row_count == 4,
                        "four alerts (the info event is not one)")
            kinds = [str(table(app).get_row_at(i)[2]) for i in range(4)]
            assert kinds == ["heal", "drift", "baseline_bad", "drill_failed"]  # newest first
            await pilot.press("down", "enter")  # the drift alert opens its torrent
            await until(pilot, lambda: isinstance(app.screen, DetailScreen), "alert opened its torrent")
            assert app.screen.torrent_id == DEBIAN
            await pilot.press("escape", "escape", "j")
            await until(pilot, lambda: isinstance(app.screen, JobsScreen))
            queue = app.screen.query_one("#queue", DataTable)
            await until(pilot, lambda: queue.row_count == 1 and str(queue.get_row_at(0)[1]) == "heal", "queue")
            assert str(queue.get_row_at(0)[2]) == "Debian 12.7 amd64 DVD"
            await pilot.press("escape", "question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
    finally:
        service.stop()


def test_piece_cells_show_the_worst_piece_of_each_cell():
    assert piece_cells("oooooooodoooooooh", 4) == "oodh"
    cells = piece_cells("o" * 99 + "d", 10)
    assert cells == "o" * 9 + "d"  # one damaged piece among a hundred stays visible
    assert piece_cells("od", 6) == "oooddd"  # few pieces stretch over the bar
    assert piece_cells("ohu", 3) == "ohu"


def test_cli_without_a_terminal_prints_the_table(home, fake):
    out = seedward("tui", home=home.root)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("service: running")
    assert "6 torrents: 2 protected, 1 damaged, 1 healing, 2 unprotected" in lines[1]
    assert any(line.startswith("Debian 12.7 amd64 DVD") and "✖ damaged" in line for line in lines)


def test_cli_without_service_or_catalog_says_how_to_start(home):
    out = seedward("tui", home=home.root)
    assert out.returncode == 3
    assert "seedward serve" in out.stderr and out.stdout == ""


@pytest.mark.parametrize("theme", ["ansi-dark"])
@aio
async def test_every_screen_renders_in_16_colors(home, fake, theme):
    app = make_app(home, theme=theme)
    async with app.run_test(size=(160, 34)) as pilot:
        await until(pilot, lambda: table(app).row_count == 6)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen) and "X damaged 2" in text(app, "#legend"))
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("escape", "escape", "a")
        await until(pilot, lambda: isinstance(app.screen, AlertsScreen) and table(app).row_count == 4)
        await pilot.press("j")
        await until(pilot, lambda: isinstance(app.screen, JobsScreen))
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape", "escape", "escape", "t")  # and the other of light/dark
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
        await pilot.pause(0.2)
        assert app.screen.query_one(TorrentTable).row_count == 6


@aio
async def test_mouse_sorts_opens_and_confirms(home, fake):
    app = make_app(home)
    async with app.run_test(size=(160, 34)) as pilot:
        await until(pilot, lambda: table(app).row_count == 6)
        await pilot.click(TorrentTable, offset=(153, 0))  # the "Size" header
        await until(pilot, lambda: row_keys(app)[0] == h(0xC0FFEE), "sorted by size from a header click")
        assert table(app).cursor_key == DEBIAN  # the cursor stayed on its torrent through the new order
        await pilot.click(TorrentTable, offset=(5, 3))  # the third row: the cursor goes there...
        await pilot.pause(0.1)
        assert not isinstance(app.screen, DetailScreen)
        await pilot.click(TorrentTable, offset=(5, 3))  # ...and a click on the cursor's row opens it
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), "opened by mouse")
        opened = app.screen.torrent_id
        assert opened == row_keys_of_dashboard(app)[2]
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.click("#yes")
        await until(pilot, lambda: fake.actions == [{"op": "action", "action": "stop", "id": opened}],
                    "stop sent after a click on Yes")


def row_keys_of_dashboard(app) -> list[str]:
    dashboard = next(s for s in app.screen_stack if isinstance(s, DashboardScreen))
    return list(dashboard.query_one(TorrentTable).keys)


@aio
async def test_a_heal_of_a_few_milliseconds_still_shows_each_state(home, fake):
    app = make_app(home)
    async with app.run_test(size=(160, 30)) as pilot:
        await until(pilot, lambda: table(app).row_count == 6)
        for i, state in enumerate(("damaged", "healing", "protected")):
            fake.push({"event": "state", "id": 20 + i, "torrent_id": BACH, "state": state, "level": "info",
                       "message": f"protection: {state}"})
        def shown():
            return [state for tid, state in app.shown_history if tid == BACH]

        await until(pilot, lambda: shown()[-1:] == ["protected"], "the trail ends protected")  # about two seconds
        assert shown() == ["damaged", "healing", "protected"]  # each state had its turn on screen
        assert cell(app, BACH, "protection") == "✔ protected"


def test_a_suspect_snapshot_is_flagged_and_needs_attention():
    from tui.cells import COLUMNS, row_cells
    from tui.model import matches, torrent_view

    base = {"id": "ab" * 20, "name": "x", "size": 1, "protection": "protected", "qbt_state": "stalledUP"}
    fine = torrent_view(dict(base, snapshot={"id": "s1", "created_at": "2026-11-22T10:00:00+00:00", "suspect": False}))
    bad = torrent_view(dict(base, snapshot={"id": "s1", "created_at": "2026-11-22T10:00:00+00:00", "suspect": True}))
    assert not fine.snapshot_suspect and bad.snapshot_suspect
    assert not matches(fine, "attention", "") and matches(bad, "attention", "")
    at = [c[0] for c in COLUMNS].index("snapshot")
    text, tone = row_cells(bad, NOW)[at]
    assert text.startswith("!") and tone == "error"
    assert row_cells(fine, NOW)[at][1] == ""


@aio
async def test_without_a_service_the_jobs_screen_reads_the_catalog_handed_in(home):
    """`seedward tui` hands the app the catalog's read-only answers: with no service running, the
    dashboard says so and the jobs screen still shows the recorded work queue; nothing is written."""
    from functools import partial

    from companion.catalog import Catalog, views

    home.ensure()
    cat = Catalog(home.catalog_db)
    cat.enqueue("drill", DEBIAN, reason="test")
    cat.close()
    before = home.catalog_db.stat().st_mtime_ns
    app = make_app(home, offline=partial(views.offline_answer, home.catalog_db))
    async with app.run_test(size=(160, 30)) as pilot:
        await until(pilot, lambda: app.connection == "down", "the not-running state")
        await pilot.press("j")
        await until(pilot, lambda: isinstance(app.screen, JobsScreen))
        queue = app.screen.query_one("#queue", DataTable)
        await until(pilot, lambda: queue.row_count == 1 and str(queue.get_row_at(0)[1]) == "drill", "the queue")
    assert home.catalog_db.stat().st_mtime_ns == before


def test_the_compact_dashboard_answer_says_what_the_status_says():
    from companion.service.dashboard import compact
    from tui.model import parse_dashboard, parse_status

    status = sample_status(extra=30)
    odd = dict(status["torrents"][1], info_hash_v1="ab" * 20, jobs=[{"id": 3, "kind": "heal", "state": "running"}],
               last_drill=None, companions=[{"parity": False}, {"parity": True}], hardlinked=["a.flac"])
    status["torrents"].append(dict(odd, id="cd" * 20, name="[odd] one"))
    compact_view, full_view = parse_dashboard(compact(status)), parse_status(status)
    assert compact_view.torrents == full_view.torrents
    assert compact_view.continuity == full_view.continuity and compact_view.service == full_view.service
    assert len(json.dumps(compact(sample_status(extra=2000)))) < len(json.dumps(sample_status(extra=2000))) * 0.7


def test_a_window_not_yet_watched_says_the_span_watched():
    """A fresh home 10 s after `serve` (the audit): the header says the 10 s watched, not '7 d'."""
    from companion.service.dashboard import compact
    from tui.model import parse_dashboard, parse_status
    from tui.text import headline

    status = sample_status()
    status["continuity"] = dict(status["continuity"], intact_share=1.0, interruptions=0, watched_seconds=10.0)
    status["torrents"][0]["continuity"] = dict(status["torrents"][0]["continuity"], watched_seconds=10.0)
    compact_view, full_view = parse_dashboard(compact(status)), parse_status(status)
    assert compact_view.torrents == full_view.torrents and compact_view.continuity == full_view.continuity
    assert compact_view.torrents[status["torrents"][0]["id"]].continuity.watched_seconds == 10.0
    assert headline(full_view.continuity).startswith("100 % seeding intact of the 10 s watched (window 7 d) · 0 incidents")
    status["continuity"]["watched_seconds"] = 7 * 86400.0
    assert headline(parse_status(status).continuity).startswith("100 % seeding intact over 7 d")


@aio
async def test_a_service_without_the_dashboard_op_still_works(home):
    service = FakeService(home.socket, dashboard=False).start()
    try:
        app = make_app(home)
        async with app.run_test(size=(160, 30)) as pilot:
            await until(pilot, lambda: table(app).row_count == 6, "rows from the full status")
            assert "dashboard" in service.requests and "status" in service.requests
    finally:
        service.stop()


@aio
async def test_a_coverage_gap_names_the_classes_not_covered(home, fake):
    blender = h(0xC0FFEE)
    app = make_app(home)
    async with app.run_test(size=(160, 40)) as pilot:
        await until(pilot, lambda: table(app).row_count == 6)
        assert cell(app, blender, "attention") == "survives 5/7"  # a warning, not a red alarm
        table(app).move_to(blender)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.torrent_id == blender)
        await until(pilot, lambda: "not: file deleted, file replaced" in text(app, "#summary"), "the gaps named")


@aio
async def test_a_hard_linked_payload_is_said_on_the_torrent_screen(home):
    """Issue 12 in the TUI: files with other hard links are named (a tagger editing the other copy
    writes into this payload), through the compact dashboard answer too."""
    status = sample_status()
    bach = next(t for t in status["torrents"] if t["id"] == BACH)
    bach["hardlinked"] = ["Bach [FLAC]/01.flac", "Bach [FLAC]/02.flac", "Bach [FLAC]/03.flac", "Bach [FLAC]/04.flac"]
    service = FakeService(home.socket, status=status).start()
    try:
        app = make_app(home)
        async with app.run_test(size=(160, 40)) as pilot:
            await until(pilot, lambda: table(app).row_count == 6)
            assert app.status.torrents[BACH].hardlinked == tuple(bach["hardlinked"])
            table(app).move_to(BACH)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.torrent_id == BACH)
            await until(pilot, lambda: "hard-linked elsewhere (watched through its inode): Bach [FLAC]/01.flac,"
                        " Bach [FLAC]/02.flac, Bach [FLAC]/03.flac and 1 more" in text(app, "#summary"),
                        "the hard-linked files named")
        assert "dashboard" in service.requests
    finally:
        service.stop()


async def open_detail_and_verify(app, pilot, fake):
    await until(pilot, lambda: table(app).row_count == 6)
    await pilot.press("enter")  # the cursor is on the damaged torrent
    await until(pilot, lambda: isinstance(app.screen, DetailScreen) and "X damaged" in text(app, "#legend"),
                "detail opened")
    await pilot.press("v")
    await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    await pilot.press("y")
    await until(pilot, lambda: "verify: queued" in text(app, "#progress-text")
                and "job 101" in text(app, "#progress-text"), "job queued")


@aio
async def test_a_status_asked_before_the_job_was_queued_does_not_say_it_is_done(home, fake):
    """The answer to a status request sent before the action's answer lacks the job: it says
    nothing about whether the job has finished, however late it arrives."""
    import threading

    app = make_app(home)
    async with app.run_test(size=(160, 40)) as pilot:
        await until(pilot, lambda: table(app).row_count == 6)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen) and "X damaged" in text(app, "#legend"))
        shown, show = [], app.screen.show_progress
        app.screen.show_progress = lambda words, *a, **kw: (shown.append(words), show(words, *a, **kw))
        fake.hold = threading.Event()
        fake.push({"event": "hook", "id": 21, "torrent_id": DEBIAN, "level": "info", "message": "looked at"})
        await until(pilot, lambda: app._refreshing, "a status request in flight, its answer made without the job")
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: "queued as job 101" in text(app, "#progress-text"), "job queued")
        asked = app.screen.job["serial"] if isinstance(app.screen, DetailScreen) else None
        fake.hold.set()
        fake.hold = None
        await until(pilot, lambda: app.status_serial > asked and "queued (job 101)" in text(app, "#progress-text"),
                    "a status asked after the job was queued, with the job in it")
        assert not [words for words in shown if "done" in words], shown
        fake.set_job(101, None)
        fake.set_protection(DEBIAN, "protected")
        fake.push({"event": "protected", "id": 22, "torrent_id": DEBIAN, "level": "info", "message": "verified"})
        await until(pilot, lambda: "done (job 101); now protected" in text(app, "#progress-text"), "job done")


@aio
async def test_a_service_that_stops_answering_is_said_and_followed_again(home, fake):
    """Found by the end-to-end test: the service stopped answering requests while its event
    stream went on; the torrent's screen kept showing its last status as if it were live, and the
    TUI never asked again. Now the screen says so, the job is not called done, and once the
    service answers again everything is its word again."""
    import threading

    from tests.tui_fake_service import sample_status

    catalog = sample_status()  # the catalog's word, read-only, while the service does not answer
    app = make_app(home, offline=lambda op, fields: {"ok": True, **catalog})
    async with app.run_test(size=(160, 40)) as pilot:
        await open_detail_and_verify(app, pilot, fake)
        # A short timeout only while the service holds its answers: under CI's load a normal answer
        # took longer than 0.5 s, and the torrent's screen never opened (a timeout is the app's).
        app.client.client.timeout = 1.0
        fake.hold = threading.Event()  # answers nothing (past the client's timeout); the stream goes on
        fake.push({"event": "hook", "id": 31, "torrent_id": DEBIAN, "level": "info", "message": "verifying"})
        await until(pilot, lambda: "the service is not answering" in text(app, "#summary"), "the screen says so")
        await until(pilot, lambda: "not answering; job 101 is followed again" in text(app, "#progress-text"))
        assert app.connection == "down"
        fake.set_job(101, None)
        fake.set_protection(DEBIAN, "protected")
        app.client.client.timeout = 30.0
        fake.hold.set()  # answering again
        fake.hold = None
        await until(pilot, lambda: app.connection == "up", "following the service again")
        await until(pilot, lambda: "done (job 101); now protected" in text(app, "#progress-text"), "job done")
        assert "not answering" not in text(app, "#summary")
