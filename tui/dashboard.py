"""The dashboard: attention first, seeding continuity in the header, filter/search/sort, live.

The header is three lines, each a run of "label value" pairs separated by " · " that is cut at
the end (never wrapped into the next label) when the terminal is narrow.
"""

import asyncio
import time

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from .cells import COLUMNS, joined, palette, plan, row_cells
from .model import FILTERS, SORTS, Totals, matches, totals
from .text import age, headline, human_bytes
from .torrent_table import TorrentTable

NOT_RUNNING = ("The seedward service is not running, and there is no catalog to show yet.\n\n"
               "Start it with:  seedward serve\n\n"
               "This screen reconnects by itself.")
NO_TORRENTS = ("No torrents yet.\n\n"
               "Add torrents in qBittorrent: seedward protects each one as soon as it is complete.")
# Ages ("3h") of the rows on screen are recomputed this often.
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
        self.shown_total = 0
        self._replan = True  # the order must be computed again (first status, view change, a re-sort)
        self._search_timer = None
        self._dirty: set[str] = set()  # torrents changed since the last sync
        self._aged_at = time.monotonic()
        self._totals = Totals()

    def compose(self) -> ComposeResult:
        yield Static(id="health")
        yield Static(id="continuity")
        yield Static(id="totals")
        with Horizontal(id="bar"):
            yield Input(placeholder="search name or hash  ( / )", id="search")
            yield Static(id="view")
        yield TorrentTable(COLUMNS, self.cells_of, id="torrents")
        yield Static(id="empty")
        yield Footer()

    def on_mount(self) -> None:
        app = self.app
        table = self.query_one(TorrentTable)
        table.set_tones(palette(app.get_css_variables()))
        app.status_signal.subscribe(self, self.status_changed)
        app.connection_signal.subscribe(self, lambda _: self.show_state())
        app.theme_changed_signal.subscribe(self, lambda _: self.restyle())
        self.set_interval(AGES_SECONDS, self.refresh_ages)
        table.focus()
        self.show_state()
        if app.status is not None:
            self.sync()

    # -- live data --

    def cells_of(self, tid: str):
        status = self.app.status
        view = status.torrents.get(tid) if status else None
        if view is None:
            return [("-", "muted")] * len(COLUMNS)
        return row_cells(view, self.app.now())

    def status_changed(self, change) -> None:
        self._replan = True  # attention first: a changed torrent may move up (the cursor stays on its torrent)
        self._dirty.update(change.added, change.changed, change.removed)
        self.sync()

    @work(exclusive=True, group="sync")
    async def sync(self) -> None:
        """Bring the table to the current status. The order (filter, search, sort) and the totals are
        computed off the UI thread; the table then draws only the rows on screen."""
        status = self.app.status
        if status is None:
            return
        table = self.query_one(TorrentTable)
        dirty, self._dirty = self._dirty, set()
        table.refresh_rows(dirty)  # at once: a pushed change shows before the new order is known
        if self._replan:
            self._replan = False
            order, tot = await asyncio.to_thread(plan, list(status.torrents.values()), self.filter, self.search,
                                                 self.sort)
            if not self.is_attached:  # closed while the plan was made
                return
            table.set_rows(order)
        else:
            tot = await asyncio.to_thread(totals, list(status.torrents.values()))
            if not self.is_attached:
                return
        self.shown_total = table.row_count
        try:
            self.show_totals(tot)
            self.show_state()
        except NoMatches:  # the app is closing: its widgets are gone
            return

    def refresh_ages(self) -> None:
        self.query_one(TorrentTable).forget_cells()
        self.show_state()

    def restyle(self) -> None:
        self.query_one(TorrentTable).set_tones(palette(self.app.get_css_variables()))
        self.show_totals(self._totals)
        self.show_state()

    # -- header and states --

    def show_totals(self, tot: Totals) -> None:
        self._totals = tot
        parts = [(f"{tot.torrents} torrents", "bold")]
        if tot.attention:
            why = ", ".join(f"{n} {reason}" for reason, n in tot.reasons)
            parts.append((f"⚠ {tot.attention} need{'s' if tot.attention == 1 else ''} attention: {why}",
                          self._color("error")))
        else:
            parts.append(("nothing needs attention", self._color("success")))
        parts.append((f"✔ {tot.protected} protected", self._color("success")))
        if tot.healing:
            parts.append((f"⟳ {tot.healing} healing", self._color("warning")))
        if tot.unprotected:
            parts.append((f"… {tot.unprotected} unprotected", ""))
        parts.append((f"payload {human_bytes(tot.payload_bytes)}", ""))
        self.query_one("#totals", Static).update(joined(parts))
        self.query_one("#view", Static).update(
            Text(f"filter: {self.filter}  sort: {self.sort}  {self.shown_total} shown", no_wrap=True,
                 overflow="ellipsis"))

    def show_state(self) -> None:
        app = self.app
        health = self.query_one("#health", Static)
        empty = self.query_one("#empty", Static)
        table = self.query_one(TorrentTable)
        status = app.status
        if app.connection == "connecting" and status is None:
            health.update("○ connecting to the seedward service…")
            message = "Connecting to the seedward service…"
        elif status is None:
            health.update(joined([("● service not running", self._color("error")),
                                 (app.connection_error or "start it with `seedward serve`", "")]))
            message = NOT_RUNNING
        else:
            health.update(joined(self._health_parts(status.service)))
            if not status.torrents:
                message = NO_TORRENTS
            elif self.shown_total == 0 and not self._replan:
                message = NO_MATCH
            else:
                message = ""
        self._show_continuity(status)
        empty.update(Text(message))
        empty.display = bool(message)
        table.display = not message or message == NO_MATCH

    def _health_parts(self, svc) -> list:
        app = self.app
        if app.connection != "up" or not svc.running:
            why = f" ({app.connection_error})" if app.connection_error else ""
            return [("● service not running", self._color("error")),
                    (f"showing the catalog, read-only{why}; start it with `seedward serve`", "")]
        parts = [("● service running", self._color("success"))]
        where = f" at {svc.qbt_url}" if svc.qbt_url else ""
        if svc.qbt_connected is False:
            why = f": {svc.qbt_error}" if svc.qbt_error else ""
            what = "refused our login" if svc.qbt_state == "login_failed" else "unreachable"
            parts.append((f"● qBittorrent {what}{where}{why}", self._color("error")))
        elif svc.qbt_connected:
            version = f" {svc.qbt_version}" if svc.qbt_version else ""
            parts.append((f"● qBittorrent{version} connected", self._color("success")))
        else:
            parts.append(("○ qBittorrent: unknown", ""))
        scrub = age(svc.last_scrub, app.now())
        parts.append((f"last scrub {scrub} ago" if scrub != "-" else "no scrub yet", ""))
        if svc.store_bytes is not None:
            dedup = f" (dedup {svc.dedup_ratio:.2f}x)" if svc.dedup_ratio is not None else ""
            parts.append((f"store {human_bytes(svc.store_bytes)}{dedup}", ""))
        for owner, alive, protected, count in svc.fleet:  # several seedboxes on one catalog
            parts.append((f"{'●' if alive else '✖'} {owner} {protected}/{count}",
                          self._color("success" if alive else "error")))
        return parts

    def _show_continuity(self, status) -> None:
        widget = self.query_one("#continuity", Static)
        c = status.continuity if status else None
        if status is None:
            widget.update("")
            return
        parts = [(headline(c), "bold" if c is not None and c.watched else "")]
        if c is not None and c.last_incident:
            parts.append((f"last incident {age(c.last_incident, self.app.now())} ago", ""))
        widget.update(joined(parts))

    def _color(self, tone: str) -> str:
        return palette(self.app.get_css_variables())[tone]

    # -- user actions --

    def action_open(self) -> None:
        key = self.query_one(TorrentTable).cursor_key
        if key:
            self.app.open_torrent(key)

    @on(TorrentTable.Selected)
    def row_selected(self, event: TorrentTable.Selected) -> None:
        self.app.open_torrent(event.key)

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    @on(Input.Changed, "#search")
    def search_changed(self, event: Input.Changed) -> None:
        # typing fast must not re-filter 20,000 rows per key: apply once the keys pause
        if self._search_timer is not None:
            self._search_timer.stop()
        self._search_timer = self.set_timer(0.15, self.apply_search)

    def apply_search(self) -> None:
        self._search_timer = None
        value = self.query_one("#search", Input).value.strip()
        if value != self.search:
            self.search = value
            self._replan = True
            self.sync()

    @on(Input.Submitted, "#search")
    def search_done(self) -> None:
        if self._search_timer is not None:
            self._search_timer.stop()
        self.apply_search()
        self.query_one(TorrentTable).focus()

    def action_clear_search(self) -> None:
        search = self.query_one("#search", Input)
        if search.value:
            search.value = ""
        self.apply_search()
        self.query_one(TorrentTable).focus()

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
        self._replan = True
        self.sync()

    @on(TorrentTable.HeaderClicked)
    def header_selected(self, event: TorrentTable.HeaderClicked) -> None:
        by_column = {"torrent": "name", "protection": "protection", "attention": "protection", "qbt": "qbt",
                     "verified": "verified", "snapshot": "snapshot", "size": "size"}
        sort = by_column.get(event.column)
        if sort:
            self.set_view(sort=sort)

    def action_refresh(self) -> None:
        self.app.request_refresh()

    def visible_ids(self) -> list[str]:
        """The rows in their order (tests and tools)."""
        return list(self.query_one(TorrentTable).keys)

    def matches(self, tid: str) -> bool:
        view = self.app.status.torrents.get(tid) if self.app.status else None
        return view is not None and matches(view, self.filter, self.search)

