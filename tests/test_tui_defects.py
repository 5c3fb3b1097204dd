"""The TUI defects issue 18 lists, each proven on screen (Pilot) against the control protocol or a
real catalog: header labels that run together, a file that is not ok under a `protected` torrent,
user strings parsed as markup, alert text cut short, a dashboard blank while the catalog could
be read, and job outputs shown as torrents."""

import json
import sys
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from textual.geometry import Region
from textual.widgets import DataTable, Static

from companion.catalog import Catalog, views
from companion.cli.context import Context
from companion.cli.tui_cmd import Offline
from tests.helpers import make_torrent, seedward, write_payload
from tests.test_tui import aio, make_app, table, until
from tests.tui_fake_service import NOW, FakeService, h, iso, sample_status
from tests.tui_fake_service import fake, home  # noqa: F401 (shared fixtures)
from tui.alerts import AlertsScreen
from tui.confirm import ConfirmScreen
from tui.detail import DetailScreen

TRICKY = "Artist - Album (2020) [FLAC] [b]not bold[/b] [red]"


def on_screen(widget) -> str:
    """What a widget draws, line by line (its strips' text)."""
    region = Region(0, 0, widget.size.width, widget.size.height)
    return "\n".join(strip.text for strip in widget.render_lines(region))


@aio
async def test_header_labels_never_run_together(home, fake):
    for width in (160, 100, 70):
        app = make_app(home)
        async with app.run_test(size=(width, 30)) as pilot:
            await until(pilot, lambda: table(app).row_count == 6)
            await pilot.pause(0.1)
            for selector in ("#health", "#continuity", "#totals"):
                widget = app.screen.query_one(selector, Static)
                lines = on_screen(widget).splitlines()
                assert len(lines) == 1, (width, selector, lines)  # one line: cut, never wrapped into the next
                line = lines[0].rstrip()
                # every label is followed by " · " or ends the line (cut with "…" when too long)
                for label in ("service running", "connected", "last scrub 5h ago", "torrents", "protected",
                              "seeding intact over 7 d", "5 incidents"):
                    at = line.find(label)
                    if at >= 0 and at + len(label) < len(line):
                        assert line[at + len(label):].startswith((" · ", "…", ":", " (")), (width, line)
                if width >= 160 and selector == "#totals":
                    assert "6 torrents · ⚠ 4 need attention: " in line and " · ✔ 2 protected · " in line


def tricky_status() -> dict:
    status = sample_status()
    status["torrents"][0]["name"] = TRICKY  # Bach: protected
    return status


@aio
async def test_user_strings_are_shown_as_they_are(home):
    events = [{"id": 1, "at": iso(timedelta(minutes=5)), "kind": "drift", "level": "warning", "torrent_id": h(0xA1B2C3),
               "message": "[bonus]/track [1].flac: drift found [FLAC] "
               + " ".join(f"piece{i}" for i in range(80)) + " the end"}]
    service = FakeService(home.socket, status=tricky_status(), events=events).start()
    try:
        app = make_app(home)
        async with app.run_test(size=(160, 40)) as pilot:
            await until(pilot, lambda: table(app).row_count == 6)
            dashboard = table(app)
            dashboard.move_to(h(0xA1B2C3))
            await pilot.pause(0.1)
            assert TRICKY[:26] in on_screen(dashboard)  # the row, as drawn
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, DetailScreen))
            await pilot.pause(0.2)
            assert TRICKY in on_screen(app.screen.query_one("#summary"))
            await pilot.press("h")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.pause(0.1)
            question = on_screen(app.screen.query_one("#question"))
            assert f"Heal: {TRICKY}?" in " ".join(question.split())  # not "Heal: Artist - Album (2020) ?"
            await pilot.press("n", "escape", "a")
            await until(pilot, lambda: isinstance(app.screen, AlertsScreen) and table(app).row_count == 1)
            await pilot.pause(0.2)
            row = on_screen(app.screen.query_one(DataTable))
            assert "[bonus]/track [1].flac" in row and TRICKY[:25] in row
            # the whole message, wrapped below the table: nothing cut off
            pane = on_screen(app.screen.query_one("#message"))
            flat = "".join(pane.split())
            assert "".join(events[0]["message"].split()) in flat, pane.splitlines()  # 600 characters, all of them
    finally:
        service.stop()


def catalog_home(home, files: list[tuple[str, int, str]], protection: str = "protected", name: str = TRICKY):
    """A real catalog with one torrent (and its files: path, size, status), as scans write them."""
    home.ensure()
    cat = Catalog(home.catalog_db)
    tid = h(0x5EED)
    with cat.tx() as db:
        db.execute("INSERT INTO torrents (id, info_hash_v1, name, kind, piece_length, num_pieces, total_size,"
                   " payload_size, protection, last_verified, added_at, updated_at) VALUES (?, ?, ?, 'v1', 16384, 4,"
                   " ?, ?, ?, ?, ?, ?)", (tid, tid, name, sum(f[1] for f in files), sum(f[1] for f in files),
                                          protection, iso(timedelta(hours=1)), iso(timedelta(days=3)),
                                          iso(timedelta(hours=1))))
        for i, (path, size, status) in enumerate(files):
            db.execute("INSERT INTO files (torrent_id, file_index, path, size, offset, status) VALUES (?, ?, ?, ?, ?, ?)",
                       (tid, i, path, size, 0, status))
    cat.add_event(tid, "protected", f"{name}: verified [FLAC]")
    cat.close()
    return tid


@aio
async def test_offline_the_dashboard_reads_the_catalog_and_a_bad_file_is_never_protected(home):
    tid = catalog_home(home, [("[bonus]/track [1].flac", 30_000, "ok"), ("cover.jpg", 2_000, "size_mismatch")])
    app = make_app(home, offline=Offline(Context(home.root)))
    async with app.run_test(size=(160, 40)) as pilot:
        await until(pilot, lambda: table(app).row_count == 1, "the catalog's torrent, with no service")
        health = on_screen(app.screen.query_one("#health"))
        assert "service not running" in health and "showing the catalog, read-only" in health
        # the catalog says protected, but a file's last verdict is size_mismatch: never shown protected
        assert table(app).get_cell(tid, "protection") == "✖ damaged"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.detail.files, "offline detail")
        await pilot.pause(0.2)
        files = on_screen(app.screen.query_one("#files"))
        assert "size_mismatch" in files and "[bonus]/track [1].flac" in files
        assert "✔ protected" not in on_screen(app.screen.query_one("#summary"))


STATUS = st.sampled_from(["ok", "ok", "ok", "damaged", "missing", "size_mismatch", "suspect"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(STATUS, st.one_of(st.none(), st.booleans()), st.booleans()), min_size=1, max_size=5))
def test_protected_only_when_every_file_is_ok(tmp_path_factory, files):
    """Whatever scans and later checks said of each file, status and detail agree, and `protected`
    is shown only when every file's last verdict is ok."""
    from companion.home import Home

    home = Home(tmp_path_factory.mktemp("cat"))
    tid = catalog_home(home, [(f"f{i}", 1000, s) for i, (s, _, _) in enumerate(files)])
    cat = Catalog(home.catalog_db)
    with cat.tx() as db:  # later quick checks, before or after the last full scan
        for i, (_, check, after) in enumerate(files):
            if check is not None:
                at = iso(timedelta(minutes=30) if after else timedelta(hours=2))
                db.execute("INSERT INTO file_checks VALUES (?, ?, ?, 'quick', 'scrub', ?)", (tid, i, at, int(check)))
    cat.close()
    ro = views.ReadOnly(home.catalog_db)
    try:
        entry = next(e for e in views.torrent_entries(ro) if e["id"] == tid)
        detail = views.detail(ro, tid)
    finally:
        ro.close()
    shown = [f["status"] for f in detail["files"]]
    assert detail["protection"] == entry["protection"]
    assert (entry["protection"] == "protected") == all(s == "ok" for s in shown)
    for (scan, check, after), s in zip(files, shown):
        assert s == (("ok" if check else ("damaged" if scan == "ok" else scan)) if check is not None and after else scan)


def test_job_outputs_are_not_torrents_in_status(tmp_path):
    content = write_payload(tmp_path / "seed" / "Show.S01E02.Pack", {"e02.mkv": 90_000})
    torrent = make_torrent(content, piece_size=16384, out=tmp_path / "show.torrent")
    home = tmp_path / "home"
    assert seedward("catalog", "add", torrent, content.parent, home=home).returncode == 0
    tid = json.loads(seedward("status", "--json", home=home).stdout)["torrents"][0]["id"]
    make = "import os; open(os.path.join(os.environ['SEEDWARD_OUTPUT'], 'subs.srt'), 'w').write('1\\n' * 900)"
    r = seedward("job", "run", "--torrent", tid, "--model", "subs", "--model-version", "1", "--json", "--",
                 sys.executable, "-c", make, home=home)
    assert r.returncode == 0, r.stderr
    status = json.loads(seedward("status", "--json", home=home).stdout)
    assert [t["id"] for t in status["torrents"]] == [tid]  # no ".seedward-<job>" row for the job's stored outputs
    out = seedward("tui", home=home).stdout  # the table a pipe gets, with its totals line
    assert "1 torrents: 1 protected, 0 damaged, 0 healing, 0 unprotected" in out and ".seedward-" not in out
    # nor anywhere else a torrent is counted: Prometheus' gauges, the coverage list
    from companion.catalog.metrics import torrents_by_state
    from companion.home import Home

    cat = Catalog(Home(home).catalog_db)
    try:
        assert [(state, n) for state, n, _ in torrents_by_state(cat)] == [("protected", 1)]
    finally:
        cat.close()
    cover = json.loads(seedward("coverage", "--json", home=home).stdout)
    assert [t["torrent_id"] for t in cover["torrents"]] == [tid], cover
