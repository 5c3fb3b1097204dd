"""`seedward tui`: the Textual app, a client of the service's control socket only (tui/client.py);
all I/O in workers, never on the UI thread."""

import asyncio
import collections
import dataclasses
import logging
import time
from datetime import datetime, timezone

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.signal import Signal

from companion.home import Home
from companion.states import PROTECTION_STATES

from .client import ControlError, Door, Error, ServiceNotRunning, UnknownOp
from .model import Status, diff, parse_dashboard, parse_status

log = logging.getLogger(__name__)

# What an event says about its torrent's protection, shown at once (the next status confirms it).
EVENT_STATE = {"drift": "damaged", "quarantined": "damaged", "heal_failed": "damaged", "healing": "healing",
               "healed": "protected", "protected": "protected", "baseline_bad": "baseline_bad",
               "removed": "removed"}
STATE_HOLD_SECONDS = 0.6
# After drift, poll the status quickly for a while: heals move through states without an event each.
INCIDENT_SECONDS = 30.0
INCIDENT_POLL_SECONDS = 0.25


@dataclasses.dataclass(frozen=True)
class Change:
    """What one status refresh changed (ids), published to the screens."""

    added: list
    changed: list
    removed: list
    full: bool = False
    serial: int = 0  # the request the shown status answered; later requests have higher serials


class SeedwardApp(App):
    TITLE = "seedward"
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("a", "alerts", "Alerts"),
        Binding("j", "jobs", "Jobs"),
        Binding("t", "toggle_theme", "Light/dark"),
    ]

    def __init__(self, home: Home, *, clock=None, retry_seconds: float = 2.0, poll_seconds: float = 15.0,
                 debounce_seconds: float = 0.3, theme: str | None = None, offline=None, timeout: float = 30.0):
        """offline(op, fields) -> dict: read-only answers from the catalog while no service runs.
        timeout: seconds a request may wait for its answer before the service counts as not answering."""
        super().__init__()
        self.home = home
        self.client = Door(home.socket, offline, timeout=timeout)
        self.now = clock or (lambda: datetime.now(timezone.utc))
        self.retry_seconds = retry_seconds
        self.poll_seconds = poll_seconds
        self.debounce_seconds = debounce_seconds
        self.status: Status | None = None
        self.connection = "connecting"  # connecting | up | down
        self.connection_error = ""
        self.status_signal: Signal[Change] = Signal(self, "status")
        self.event_signal: Signal[dict] = Signal(self, "event")
        self.connection_signal: Signal[str] = Signal(self, "connection")
        self._refresh_pending = False
        self._refreshing = False
        self._refresh_again = False
        self._status_lock = asyncio.Lock()
        self.status_serial = 0  # the request number of the status shown
        self.requested_serial = 0  # the last status request's number (sent, maybe not answered yet)
        self._incident_until = 0.0
        self._offline_at = 0.0  # when the catalog's status was last read (no service)
        self._compact = True  # ask for the `dashboard` op (until a service says it has none)
        self._trails: dict[str, list[str]] = {}  # states waiting their turn on screen, per torrent
        self._held_until: dict[str, float] = {}
        self._shown: dict[str, str] = {}
        self.shown_history: collections.deque = collections.deque(maxlen=1000)  # (id, state) as shown, in order
        if theme:
            self.theme = theme

    def on_mount(self) -> None:
        from .dashboard import DashboardScreen

        self.push_screen(DashboardScreen())
        self.follow()
        self.set_interval(self.poll_seconds, self.request_refresh)
        self.set_interval(INCIDENT_POLL_SECONDS, self._incident_poll)

    def _incident_poll(self) -> None:
        if time.monotonic() < self._incident_until:
            self.request_refresh()

    # -- data: one long-lived worker follows the service; refreshes are coalesced --

    @work(exclusive=True, group="follow")
    async def follow(self) -> None:
        while True:
            sub = None
            try:
                sub = await self.client.subscribe()  # first, so no event between status and stream is lost
                await self.refresh_status()
                async for event in sub:
                    self.apply_event(event)
            except ServiceNotRunning:
                self.set_connection("down")  # the screens say how to start it
                await self.load_offline()
            except ControlError as exc:
                self.set_connection("down", str(exc))
            finally:
                if sub is not None:
                    sub.close()
            await asyncio.sleep(self.retry_seconds)

    async def load_offline(self) -> None:
        """No service: the catalog's status (read-only, through the `offline` callable `seedward tui`
        hands in), read again every poll_seconds while the service stays away."""
        if self.client.offline is None:
            if self.status is not None:  # what a service that went away said is not shown as now
                old, self.status = self.status.torrents, None
                self.status_signal.publish(Change([], [], list(old), full=True, serial=self.status_serial))
            return
        if time.monotonic() - self._offline_at < self.poll_seconds:
            return
        self._offline_at = time.monotonic()
        serial = self._next_serial()
        try:
            raw = await self.client.read("status")
        except (ServiceNotRunning, Error) as exc:  # no catalog yet, or it cannot be read
            log.info("no offline status: %s", exc)
            return
        async with self._status_lock:
            await self._apply_status(raw, serial, connection="down")

    async def refresh_status(self) -> None:
        async with self._status_lock:
            await self._refresh_status()

    def _next_serial(self) -> int:
        self.requested_serial += 1
        return self.requested_serial

    async def _refresh_status(self) -> None:
        serial = self._next_serial()
        if self._compact:
            try:  # the status, compact (service/dashboard.py): a third of the bytes to move and parse
                raw = await self.client.request("dashboard")
            except UnknownOp:  # a service from before it
                self._compact = False
        if not self._compact:
            raw = await self.client.request("status")
        self._offline_at = 0.0  # the service answers: once it goes, read the catalog again at once
        await self._apply_status(raw, serial)

    async def _apply_status(self, raw: dict, serial: int, connection: str = "up") -> None:
        new = await asyncio.to_thread(parse_dashboard if "rows" in raw else parse_status, raw)
        self._keep_shown(new.torrents)
        old = self.status.torrents if self.status else {}
        added, changed, removed = await asyncio.to_thread(diff, old, new.torrents)
        first = self.status is None
        self.status, self.status_serial = new, serial
        self.set_connection(connection, self.connection_error if connection != "up" else "")
        self.status_signal.publish(Change(added, changed, removed, full=first, serial=serial))

    def request_refresh(self) -> None:
        """Coalesce bursts of events into one status request; never more than one in flight."""
        if self.connection != "up":
            return
        if self._refreshing:
            self._refresh_again = True  # once this one is done
            return
        if self._refresh_pending:
            return
        self._refresh_pending = True
        self.set_timer(max(self.debounce_seconds, 0.001), self._refresh_now)  # (a zero timer divides by zero)

    @work(group="refresh")
    async def _refresh_now(self) -> None:
        self._refresh_pending = False
        self._refreshing = True
        try:
            await self.refresh_status()
        except (ServiceNotRunning, ControlError) as exc:
            # The event stream may still be open (a service that takes events but answers nothing):
            # follow again, so the status comes from the service once it answers, else the catalog.
            self.set_connection("down", "" if isinstance(exc, ServiceNotRunning) else str(exc))
            self.follow()
        finally:
            self._refreshing = False
        if self._refresh_again:
            self._refresh_again = False
            self.request_refresh()

    def apply_event(self, event: dict) -> None:
        """Show a state change at once; the coalesced refresh brings the rest."""
        tid = event.get("torrent_id")
        kind = event.get("event")
        # "state" events carry the new protection state itself; other kinds imply one
        state = event.get("protection") or (event.get("state") if kind == "state" else EVENT_STATE.get(kind))
        if kind in ("drift", "quarantined", "healing", "heal_progress"):
            self._incident_until = time.monotonic() + INCIDENT_SECONDS
        if self.status and tid in self.status.torrents and state in PROTECTION_STATES:
            self.show_state(tid, state)
        self.event_signal.publish(event)
        self.request_refresh()

    def show_state(self, tid: str, state: str) -> None:
        """Show a torrent's new state, each for at least STATE_HOLD_SECONDS: a heal that takes a few
        milliseconds still shows damaged -> healing -> protected instead of jumping to the end."""
        trail = self._trails.setdefault(tid, [])
        if trail or time.monotonic() < self._held_until.get(tid, 0.0):
            if not trail or trail[-1] != state:
                trail.append(state)
            if len(trail) == 1:
                self.set_timer(max(0.0, self._held_until[tid] - time.monotonic()), lambda: self._next_state(tid))
            return
        self._trails.pop(tid, None)
        self._set_shown(tid, state)

    def _next_state(self, tid: str) -> None:
        trail = self._trails.get(tid)
        if not trail:
            self._trails.pop(tid, None)
            return
        self._set_shown(tid, trail.pop(0))
        if trail:
            self.set_timer(STATE_HOLD_SECONDS, lambda: self._next_state(tid))
        else:
            self._trails.pop(tid, None)
            self.request_refresh()  # the trail is shown: back to the service's word

    def _set_shown(self, tid: str, state: str) -> None:
        self._held_until[tid] = time.monotonic() + STATE_HOLD_SECONDS
        self._shown[tid] = state
        self.shown_history.append((tid, state))
        view = self.status.torrents.get(tid) if self.status else None
        if view is not None and view.protection != state:
            self.status.torrents[tid] = dataclasses.replace(view, protection=state)
            self.status_signal.publish(Change([], [tid], [], serial=self.status_serial))

    def _keep_shown(self, torrents: dict) -> None:
        """A status must not skip states still waiting in a trail (or held on screen)."""
        now = time.monotonic()
        for tid, state in list(self._shown.items()):
            if self._trails.get(tid) or now < self._held_until.get(tid, 0.0):
                view = torrents.get(tid)
                if view is not None and view.protection != state:
                    torrents[tid] = dataclasses.replace(view, protection=state)
            else:
                del self._shown[tid]

    def set_connection(self, state: str, error: str = "") -> None:
        if (state, error) != (self.connection, self.connection_error):
            self.connection, self.connection_error = state, error
            self.connection_signal.publish(state)

    # -- navigation --

    def action_help(self) -> None:
        from .help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_alerts(self) -> None:
        from .alerts import AlertsScreen

        if not isinstance(self.screen, AlertsScreen):
            self.push_screen(AlertsScreen())

    def action_jobs(self) -> None:
        from .jobs import JobsScreen

        if not isinstance(self.screen, JobsScreen):
            self.push_screen(JobsScreen())

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def open_torrent(self, torrent_id: str) -> None:
        from .detail import DetailScreen

        self.push_screen(DetailScreen(torrent_id))
