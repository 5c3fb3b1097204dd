"""SVG snapshots of the main screens with realistic data (reviewed; `--snapshot-update` to accept changes)."""

from textual.widgets import DataTable

from companion.catalog import Catalog
from companion.home import Home
from tests.tui_fake_service import NOW, FakeService, h, iso
from tests.tui_fake_service import fake, home  # noqa: F401 (shared fixtures)
from tui.app import SeedwardApp
from tui.torrent_table import TorrentTable

DEBIAN = h(0xD4E5F6)
SIZE = (160, 36)


def catalog_with_detail(home: Home) -> None:
    """The real catalog schema, with the files and events of the damaged torrent (fixed times)."""
    from datetime import timedelta

    home.ensure()
    cat = Catalog(home.catalog_db)
    with cat.tx() as db:
        db.execute("INSERT INTO torrents (id, info_hash_v1, name, kind, piece_length, num_pieces, total_size,"
                   " payload_size, protection, added_at, updated_at) VALUES (?, ?, ?, 'v1', 16777216, 200,"
                   " 3994091520, 3994091520, 'damaged', ?, ?)",
                   (DEBIAN, DEBIAN, "Debian 12.7 amd64 DVD", iso(timedelta(days=30)), iso(timedelta(minutes=30))))
        for i, (path, size, status) in enumerate([
                ("debian-12.7.0-amd64-DVD-1/debian-12.7.0-amd64-DVD-1.iso", 3_994_000_000, "damaged"),
                ("debian-12.7.0-amd64-DVD-1/SHA256SUMS", 91_520, "ok")]):
            db.execute("INSERT INTO files (torrent_id, file_index, path, size, offset, status) VALUES (?, ?, ?, ?, ?, ?)",
                       (DEBIAN, i, path, size, 0, status))
        for at, kind, level, message in [
                (timedelta(days=30), "protected", "info", "verified against its torrent (200 pieces)"),
                (timedelta(minutes=30), "drift", "warning", "debian-12.7.0-amd64-DVD-1.iso: 2 damaged pieces"),
                (timedelta(minutes=29), "quarantined", "warning", "stopped in qBittorrent; drifted bytes kept")]:
            db.execute("INSERT INTO events (torrent_id, at, kind, level, message) VALUES (?, ?, ?, ?, ?)",
                       (DEBIAN, iso(at), kind, level, message))
    cat.close()


def make_app(home, theme=None):
    return SeedwardApp(home, clock=lambda: NOW, retry_seconds=0.2, theme=theme)


def loaded(rows=6, then=()):
    async def run_before(pilot):
        app = pilot.app
        for _ in range(800):
            tables = app.screen.query(TorrentTable) or app.screen.query(DataTable)
            if tables and tables.first().row_count == rows:
                break
            await pilot.pause(0.025)
        else:
            raise AssertionError(f"the screen never showed {rows} rows")
        for key in then:
            await pilot.press(key)
        await pilot.pause(0.3)
        await pilot.wait_for_scheduled_animations()
    return run_before


def test_dashboard_dark(snap_compare, home, fake):
    assert snap_compare(make_app(home), terminal_size=SIZE, run_before=loaded())


def test_dashboard_light(snap_compare, home, fake):
    assert snap_compare(make_app(home, theme="textual-light"), terminal_size=SIZE, run_before=loaded())


def test_dashboard_16_colors(snap_compare, home, fake):
    assert snap_compare(make_app(home, theme="ansi-dark"), terminal_size=SIZE, run_before=loaded())


def test_detail_damaged_torrent(snap_compare, home, fake):
    catalog_with_detail(home)

    async def run_before(pilot):
        await loaded()(pilot)
        await pilot.press("enter")  # the damaged torrent sorts first
        for _ in range(800):
            if "X damaged 2" in str(pilot.app.screen.query_one("#legend").render()):
                break
            await pilot.pause(0.025)
        else:
            raise AssertionError("the piece map never loaded")
        await pilot.pause(0.2)

    assert snap_compare(make_app(home), terminal_size=SIZE, run_before=run_before)


def test_alerts(snap_compare, home, fake):
    async def run_before(pilot):
        await loaded()(pilot)
        await pilot.press("a")
        await loaded(rows=4)(pilot)

    assert snap_compare(make_app(home), terminal_size=SIZE, run_before=run_before)


def test_service_not_running(snap_compare, home):
    async def run_before(pilot):
        for _ in range(800):
            if "seedward serve" in str(pilot.app.screen.query_one("#empty").render()):
                break
            await pilot.pause(0.025)
        else:
            raise AssertionError("the not-running state never showed")

    assert snap_compare(make_app(home), terminal_size=(100, 24), run_before=run_before)


def test_help(snap_compare, home, fake):
    assert snap_compare(make_app(home), terminal_size=SIZE, run_before=loaded(then=["question_mark"]))


def test_jobs(snap_compare, home):
    queue = [{"id": 41, "kind": "heal", "torrent_id": DEBIAN, "state": "running", "attempts": 1,
              "created_at": NOW.isoformat(), "updated_at": NOW.isoformat(), "error": None},
             {"id": 40, "kind": "drill", "torrent_id": h(0x0F0F0F), "state": "queued", "attempts": 0,
              "created_at": NOW.isoformat(), "updated_at": NOW.isoformat(), "error": None}]
    service = FakeService(home.socket, jobs=queue).start()
    try:
        async def run_before(pilot):
            await loaded()(pilot)
            await pilot.press("j")
            for _ in range(800):
                tables = pilot.app.screen.query("#queue")
                if tables and tables.first().row_count == 2:
                    break
                await pilot.pause(0.025)
            else:
                raise AssertionError("the queue never showed")
            await pilot.pause(0.2)

        assert snap_compare(make_app(home), terminal_size=SIZE, run_before=run_before)
    finally:
        service.stop()
