"""Alerts: drift, heal results, failed drills, baseline-bad payloads; live."""

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from .cells import palette
from .client import ControlError, ServiceNotRunning
from .model import age

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
            answer = await self.app.client.request("events", last=LAST_EVENTS)
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

    def fill(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        now = self.app.now()
        colors = palette(self.app.get_css_variables())
        tone = {"error": "error", "warning": "warning"}
        status = self.app.status
        for i, e in enumerate(self.alerts):
            tid = e.get("torrent_id") or (e.get("id") if isinstance(e.get("id"), str) else None)
            view = status.torrents.get(tid) if status and tid else None
            level = e.get("level", "")
            table.add_row(age(e.get("at"), now), Text(level, style=colors[tone.get(level, "")]),
                          e.get("kind") or e.get("event", ""), view.name if view else (tid or "-")[:12],
                          e.get("message", ""), key=f"{i}:{tid or ''}")
        self.show_empty("" if self.alerts else "No alerts. Everything seeded is as it should be.")

    def show_empty(self, message: str) -> None:
        empty = self.query_one("#empty", Static)
        empty.update(message)
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
