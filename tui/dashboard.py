"""The dashboard: every torrent's protection at a glance, header totals, filter/search/sort, live."""

import asyncio
import time

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from .cells import COLUMNS, palette, plan, render, row_cells
from .model import FILTERS, SORTS, Totals, age, human_bytes, matches, totals
from .torrent_table import TorrentTable

NOT_RUNNING = ("The seedward service is not running.\n\n"
               "Start it with:  seedward serve\n\n"
               "This screen reconnects by itself.")
NO_TORRENTS = ("No torrents yet.\n\n"
               "Add torrents in qBittorrent: seedward protects each one as soon as it is complete.")
# Ages ("3h") of unchanged rows are recomputed this often.
AGES_SECONDS = 30.0
NO_MATCH = "No torrent matches this filter and search.  (f: next filter, esc: clear search)"


class DashboardScreen(Screen):
    CSS_PATH = "dashboard.tcss"
    BINDINGS = [
        Binding("enter", "open", "Open", show=True),
        Binding("slash", "search", "Search", key_display="/"),
        Binding("f", "next_filter", "Filter"),
        Binding("s", "next_sort", "Sort"),
        Binding("r", "refresh", "Refresh"),
        Binding("escape", "clear_search", "Clear", show=False),
    ]

    def __init__(self):
        super().__init__()
        self.filter = "all"
        self.sort = "protection"
        self.search = ""
        self.cells: dict[str, tuple] = {}
        self.shown_total = 0
        self._rebuild = True
        self._search_timer = None
        self._full = True  # plan every row at the next sync
        self._dirty: set[str] = set()  # torrents changed since the last sync
        self._planned_at = 0.0

    def compose(self) -> ComposeResult:
        yield Static(id="health")
        yield Static(id="totals")
        with Horizontal(id="bar"):
            yield Input(placeholder="search name or hash  ( / )", id="search")
            yield Static(id="view")
        yield TorrentTable(id="torrents", cursor_type="row", zebra_stripes=True)
        yield Static(id="empty")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label, width in COLUMNS:
            table.add_column(label, width=width, key=key)
        app = self.app
        app.status_signal.subscribe(self, self.status_changed)
        app.connection_signal.subscribe(self, lambda _: self.show_state())
        app.theme_changed_signal.subscribe(self, lambda _: self.restyle())
        table.focus()
        self.show_state()
        if app.status is not None:
            self.sync()

    # -- live data --

    def status_changed(self, change) -> None:
        if change.full:
            self._full = True
        else:
            self._dirty.update(change.added, change.changed, change.removed)
        self.sync()

    @work(exclusive=True, group="sync")
    async def sync(self) -> None:
        """Bring the table to the current status, touching only rows that changed.

        A few changed torrents cost a few rows; the whole list is planned again (off the UI thread)
        only when the view changes, on the first status, and now and then to refresh the ages."""
        status = self.app.status
        if status is None:
            return
        now = self.app.now()
        views = list(status.torrents.values())
        full = self._rebuild or self._full or time.monotonic() - self._planned_at > AGES_SECONDS
        if full:
            rows, tot = await asyncio.to_thread(plan, views, self.filter, self.search, self.sort, now)
        else:
            tot = await asyncio.to_thread(totals, views)
        # No await below: the table changes in one go on the UI thread.
        table = self.query_one(DataTable)
        colors = palette(self.app.get_css_variables())
        status = self.app.status  # may be newer than the plan: the dirty ids below catch up with it
        dirty, self._dirty = self._dirty, set()
        if full:
            self._full = False
            self._planned_at = time.monotonic()
            if self._rebuild:
                current = self._cursor_key()
                table.clear()
                table.add_rows_keyed((tid, [render(c, colors) for c in cells]) for tid, cells in rows)
                self.cells = dict(rows)
                self._rebuild = False
                self._restore_cursor(current)
            else:
                wanted = {tid for tid, _ in rows}
                for tid in [t for t in self.cells if t not in wanted]:
                    self._apply(table, tid, None, colors)
                for tid, cells in rows:
                    self._apply(table, tid, cells, colors)
        for tid in dirty:
            view = status.torrents.get(tid)
            wanted = view is not None and matches(view, self.filter, self.search)
            self._apply(table, tid, row_cells(view, now) if wanted else None, colors)
        self.shown_total = len(self.cells)
        self.show_totals(tot)
        self.show_state()

    def _apply(self, table, tid: str, cells, colors) -> None:
        """One row to `cells` (None: not shown): add, remove, or update only the cells that differ."""
        old = self.cells.get(tid)
        if cells is None:
            if old is not None:
                table.remove_row(tid)
                del self.cells[tid]
        elif old is None:
            table.add_rows_keyed([(tid, [render(c, colors) for c in cells])])
            self.cells[tid] = cells
        elif old != cells:
            for (key, _, _), before, after in zip(COLUMNS, old, cells):
                if before != after:
                    table.update_cell(tid, key, render(after, colors))
            self.cells[tid] = cells

    def _cursor_key(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:  # the cursor sits outside the rows: nothing to keep
            return None

    def _restore_cursor(self, key: str | None) -> None:
        table = self.query_one(DataTable)
        if key is not None and key in self.cells:
            table.move_cursor(row=table.get_row_index(key), animate=False)

    def restyle(self) -> None:
        self._rebuild = True
        self.sync()
        self.show_state()

    # -- header and states --

    def show_totals(self, tot: Totals) -> None:
        svc = self.app.status.service if self.app.status else None
        store = "-" if svc is None or svc.store_bytes is None else human_bytes(svc.store_bytes)
        dedup = "-" if svc is None or svc.dedup_ratio is None else f"{svc.dedup_ratio:.2f}x"
        text = Text.assemble(
            (f"{tot.torrents} torrents  ", "bold"),
            (f"✔ {tot.protected} protected", self._color("success")), "  ",
            (f"✖ {tot.damaged} damaged", self._color("error") if tot.damaged else ""), "  ",
            (f"⟳ {tot.healing} healing", self._color("warning") if tot.healing else ""), "  ",
            f"… {tot.unprotected} unprotected", "   ",
            f"payload {human_bytes(tot.payload_bytes)}  store {store}  dedup {dedup}",
        )
        self.query_one("#totals", Static).update(text)
        self.query_one("#view", Static).update(
            f"filter: {self.filter}  sort: {self.sort}  {self.shown_total} shown")

    def show_state(self) -> None:
        app = self.app
        health = self.query_one("#health", Static)
        empty = self.query_one("#empty", Static)
        table = self.query_one(DataTable)
        if app.connection == "down":
            health.update(Text.assemble(("● service not running", self._color("error")),
                                        f"  {app.connection_error or 'start it with `seedward serve`'}"))
            message = NOT_RUNNING
        elif app.connection == "connecting" or app.status is None:
            health.update("○ connecting to the seedward service…")
            message = "Connecting to the seedward service…"
        else:
            svc = app.status.service
            parts = [("● service running", self._color("success")), "  "]
            if not svc.running:
                parts = [("● service not running", self._color("error")),
                          "  (showing the catalog; start it with `seedward serve`)"]
            elif svc.qbt_connected is False:
                where = f" at {svc.qbt_url}" if svc.qbt_url else ""
                why = f": {svc.qbt_error}" if svc.qbt_error else ""
                what = "refused our login" if svc.qbt_state == "login_failed" else "unreachable"
                parts.append((f"● qBittorrent {what}{where}{why}", self._color("error")))
            elif svc.qbt_connected:
                parts.append(("● qBittorrent connected", self._color("success")))
            else:
                parts.append("○ qBittorrent: unknown")
            parts.append(f"   last scrub {age(svc.last_scrub, app.now())}")
            for owner, alive, protected, count in svc.fleet:  # several seedboxes on one catalog
                parts += ["   ", (f"{'●' if alive else '✖'} {owner} {protected}/{count}",
                                  self._color("success" if alive else "error"))]
            health.update(Text.assemble(*parts))
            if not app.status.torrents:
                message = NO_TORRENTS
            elif self.shown_total == 0 and not self._rebuild:
                message = NO_MATCH
            else:
                message = ""
        empty.update(message)
        empty.display = bool(message)
        table.display = not message or message == NO_MATCH

    def _color(self, tone: str) -> str:
        return palette(self.app.get_css_variables())[tone]

    # -- user actions --

    def action_open(self) -> None:
        key = self._cursor_key()
        if key:
            self.app.open_torrent(key)

    @on(DataTable.RowSelected)
    def row_selected(self, event: DataTable.RowSelected) -> None:
        self.app.open_torrent(event.row_key.value)

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    @on(Input.Changed, "#search")
    def search_changed(self, event: Input.Changed) -> None:
        # typing fast must not rebuild 10,000 rows per key: apply once the keys pause
        if self._search_timer is not None:
            self._search_timer.stop()
        self._search_timer = self.set_timer(0.15, self.apply_search)

    def apply_search(self) -> None:
        self._search_timer = None
        value = self.query_one("#search", Input).value.strip()
        if value != self.search:
            self.search = value
            self._rebuild = True
            self.sync()

    @on(Input.Submitted, "#search")
    def search_done(self) -> None:
        if self._search_timer is not None:
            self._search_timer.stop()
        self.apply_search()
        self.query_one(DataTable).focus()

    def action_clear_search(self) -> None:
        search = self.query_one("#search", Input)
        if search.value:
            search.value = ""
        self.apply_search()
        self.query_one(DataTable).focus()

    def action_next_filter(self) -> None:
        self.set_view(filter_name=FILTERS[(FILTERS.index(self.filter) + 1) % len(FILTERS)])

    def action_next_sort(self) -> None:
        self.set_view(sort=SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)])

    def set_view(self, filter_name: str | None = None, sort: str | None = None, search: str | None = None):
        if filter_name is not None:
            self.filter = filter_name
        if sort is not None:
            self.sort = sort
        if search is not None:
            self.query_one("#search", Input).value = search
            self.search = search
        self._rebuild = True
        self.sync()

    @on(DataTable.HeaderSelected)
    def header_selected(self, event: DataTable.HeaderSelected) -> None:
        by_column = {"torrent": "name", "protection": "protection", "qbt": "qbt", "verified": "verified",
                     "snapshot": "snapshot", "size": "size"}
        sort = by_column.get(event.column_key.value)
        if sort:
            self.set_view(sort=sort)

    def action_refresh(self) -> None:
        self.app.request_refresh()
