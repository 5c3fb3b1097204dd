"""Alerts: drift, heal results, failed drills, baseline-bad payloads; live.

The table shows one line per alert; the highlighted alert's whole message (and the torrent's
name, however long) is shown below it, wrapped: nothing is cut off.
"""

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from .cells import palette
from .client import ControlError, ServiceNotRunning
from .text import age

LAST_EVENTS = 2000  # the newest events the screen looks through
ALERT_PREFIXES = ("drift", "heal", "drill_fail", "baseline", "damage", "quarantine", "store_corrupt")


def is_alert(event: dict) -> bool:
    kind = str(event.get("kind") or event.get("event") or "")
    return event.get("level") in ("warning", "error") or kind.startswith(ALERT_PREFIXES)


class AlertsScreen(Screen):
    CSS_PATH = "alerts.tcss"
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("enter", "open", "Open torrent"),
        Binding("r", "reload", "Reload"),
    ]

    def __init__(self):
        super().__init__()
        self.alerts: list[dict] = []

    def compose(self) -> ComposeResult:
        yield Static("Alerts  (drift, heals, failed drills, baseline-bad)", id="title", classes="title")
        yield DataTable(id="alerts", cursor_type="row", zebra_stripes=True)
        yield Static(id="message")
        yield Static(id="empty")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label, width in (("When", 6), ("Level", 8), ("Kind", 14), ("Torrent", 30), ("Message", 60)):
            table.add_column(label, width=width)
        self.app.event_signal.subscribe(self, self.service_event)
        table.focus()
        self.load()

    @work(exclusive=True, group="alerts")
    async def load(self) -> None:
        try:
            answer = await self.app.client.read("events", last=LAST_EVENTS)
        except (ServiceNotRunning, ControlError) as exc:
            if self in self.app.screen_stack:
                self.show_empty(f"Cannot read events: {exc}")
            return
        if self not in self.app.screen_stack:  # closed meanwhile
            return
        self.alerts = sorted((e for e in answer.get("events", []) if is_alert(e)),
                             key=lambda e: e.get("id", 0), reverse=True)
        self.fill()

    def service_event(self, event: dict) -> None:
        if is_alert(event):
            self.alerts.insert(0, event)
            self.fill()

    def torrent_name(self, e: dict) -> str:
        tid = self.torrent_of(e)
        status = self.app.status
        view = status.torrents.get(tid) if status and tid else None
        return view.name if view else (tid or "-")[:12]

    @staticmethod
    def torrent_of(e: dict) -> str | None:
        return e.get("torrent_id") or (e.get("id") if isinstance(e.get("id"), str) else None)

    def fill(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        now = self.app.now()
        colors = palette(self.app.get_css_variables())
        tone = {"error": "error", "warning": "warning"}
        for i, e in enumerate(self.alerts):
            level = e.get("level", "")
            # Text cells: a name or message with [brackets] is shown as it is, never parsed as markup
            table.add_row(Text(age(e.get("at"), now)), Text(level, style=colors[tone.get(level, "")]),
                          Text(str(e.get("kind") or e.get("event", ""))), Text(self.torrent_name(e)),
                          Text(" ".join(str(e.get("message", "")).split())), key=f"{i}:{self.torrent_of(e) or ''}")
        self.show_empty("" if self.alerts else "No alerts. Everything seeded is as it should be.")
        self.show_message()

    @on(DataTable.RowHighlighted)
    def highlighted(self) -> None:
        self.show_message()

    def show_message(self) -> None:
        """The highlighted alert in full, wrapped."""
        pane = self.query_one("#message", Static)
        table = self.query_one(DataTable)
        if not self.alerts or table.row_count == 0:
            pane.display = False
            return
        e = self.alerts[min(table.cursor_row, len(self.alerts) - 1)]
        pane.display = True
        pane.update(Text.assemble((f"{e.get('kind') or e.get('event', '')}", "bold"), "  ", (self.torrent_name(e), "bold"),
                                  "  ", (str(e.get("at") or ""), "dim"), "\n", str(e.get("message", ""))))

    def show_empty(self, message: str) -> None:
        empty = self.query_one("#empty", Static)
        empty.update(Text(message))
        empty.display = bool(message)

    def action_open(self) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
            tid = key.split(":", 1)[1]
            if tid:
                self.app.open_torrent(tid)

    @on(DataTable.RowSelected)
    def selected(self) -> None:
        self.action_open()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_reload(self) -> None:
        self.load()
