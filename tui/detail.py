"""One torrent: files, piece map, snapshots, drills, events, companions; actions with confirmation."""

from dataclasses import dataclass, field

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import DataTable, Footer, ProgressBar, Static, TabbedContent, TabPane

from .cells import ATTENTION_TONE, PROTECTION_TONE, joined, palette
from .client import ControlError, ServiceNotRunning
from .confirm import ConfirmScreen
from .model import PROTECTION_LABEL, attention
from .text import age, companions_text, drill_text, duration, human_bytes, percent, span, swarm_text
from .piece_map import PieceMap
from .strip import ContinuityStrip, legend

ACTIONS = {
    "verify": ("Verify now", "Read the payload and check every piece against the torrent's own hashes."),
    "snapshot": ("Snapshot now", "Record the payload in the store (unchanged files cost stat calls only)."),
    "heal": ("Heal", "Move drifted bytes to quarantine and write damaged pieces back from the last snapshot."),
    "drill": ("Restore drill", "Restore the last snapshot to scratch and recheck it in an isolated session."),
    "stop": ("Stop in qBittorrent", "Stop seeding this torrent until you start it again."),
    "start": ("Start in qBittorrent", "Resume seeding this torrent."),
}
# The service's job kind for each action (a job shows in the torrent's status while queued or running).
JOB_KIND = {"verify": "protect", "snapshot": "snapshot", "heal": "heal", "drill": "drill", "stop": "stop",
            "start": "start"}


@dataclass
class Detail:
    """The service's `detail` answer."""

    files: list[dict] = field(default_factory=list)
    pieces: str = ""
    events: list[dict] = field(default_factory=list)
    snapshots: list[dict] = field(default_factory=list)
    drills: list[dict] = field(default_factory=list)
    companions: list[dict] = field(default_factory=list)
    continuity: dict = field(default_factory=dict)  # every window, and the 7-day timeline

    @classmethod
    def from_answer(cls, answer: dict) -> "Detail":
        empty = {"pieces": "", "continuity": {}}
        return cls(**{k: answer.get(k) or empty.get(k, []) for k in cls.__dataclass_fields__})


class DetailScreen(Screen):
    CSS_PATH = "detail.tcss"
    BINDINGS = [
        Binding("escape,backspace", "back", "Back"),
        Binding("v", "act('verify')", "Verify"),
        Binding("n", "act('snapshot')", "Snapshot"),
        Binding("h", "act('heal')", "Heal"),
        Binding("d", "act('drill')", "Drill"),
        Binding("p", "act('stop')", "Stop"),
        Binding("s", "act('start')", "Start"),
        Binding("r", "reload", "Reload"),
    ]

    def __init__(self, torrent_id: str):
        super().__init__()
        self.torrent_id = torrent_id
        self.detail = Detail()
        self.job: dict | None = None  # the action in progress: {"action", "job"}

    def compose(self) -> ComposeResult:
        yield Static(id="summary")
        yield Static(id="continuity-title")
        yield ContinuityStrip(id="strip")
        yield Static(id="strip-legend")
        yield PieceMap(id="pieces")
        yield Static(id="legend")
        with Horizontal(id="progress-row"):
            yield Static(id="progress-text")
            yield ProgressBar(id="progress", show_eta=False)
        with TabbedContent(id="tabs"):
            with TabPane("Files", id="files-tab"):
                yield DataTable(id="files", cursor_type="row", zebra_stripes=True)
            with TabPane("Events", id="events-tab"):
                yield DataTable(id="events", cursor_type="row")
            with TabPane("Snapshots", id="snapshots-tab"):
                yield DataTable(id="snapshots", cursor_type="row")
            with TabPane("Drills", id="drills-tab"):
                yield DataTable(id="drills", cursor_type="row")
            with TabPane("Companions", id="companions-tab"):
                yield DataTable(id="companions", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#progress-row").display = False
        columns = {
            "files": (("Status", 14), ("Size", 10), ("Path", 60)),
            "events": (("When", 6), ("Level", 8), ("Kind", 14), ("Message", 70)),
            "snapshots": (("Snapshot", 12), ("Age", 6), ("Reason", 10), ("Bytes", 10), ("New", 10)),
            "drills": (("When", 6), ("Result", 7), ("RTO", 8), ("Bytes", 10), ("Bad pieces", 30)),
            "companions": (("Companion", 34), ("Info hash", 14), ("Job", 8), ("Parity", 8), ("Provenance", 40)),
        }
        for table_id, cols in columns.items():
            table = self.query_one(f"#{table_id}", DataTable)
            for label, width in cols:
                table.add_column(label, width=width)
        self.app.status_signal.subscribe(self, self.status_changed)
        self.app.event_signal.subscribe(self, self.service_event)
        self.app.connection_signal.subscribe(self, lambda _: self.show_summary())
        self.show_summary()
        self.load()

    @property
    def gone(self) -> bool:
        """Closed while a worker awaited: nothing left to update."""
        return self not in self.app.screen_stack

    @property
    def view(self):
        status = self.app.status
        return status.torrents.get(self.torrent_id) if status else None

    # -- data --

    @work(exclusive=True, group="detail")
    async def load(self) -> None:
        try:  # files, piece map, events (newest first), snapshots, drills, companions
            detail = Detail.from_answer(await self.app.client.read("detail", id=self.torrent_id))
        except (ServiceNotRunning, ControlError) as exc:  # e.g. not cataloged yet: try again on reload
            self.notify(str(exc), title="no detail for this torrent", severity="warning", markup=False)
            detail = Detail()
        if self.gone:
            return
        self.detail = detail
        try:
            self.fill()
        except NoMatches:  # the app is closing: its widgets are already gone
            if not self.app.is_running or self.gone:
                return
            raise

    def fill(self) -> None:
        now = self.app.now()
        colors = palette(self.app.get_css_variables())
        d = self.detail
        pieces = self.query_one(PieceMap)
        pieces.pieces = d.pieces
        pieces.refresh()
        self.query_one("#legend", Static).update(pieces.legend() if d.pieces else "")
        self.show_continuity()
        file_tone = {"ok": "success", "damaged": "error", "missing": "error", "size_mismatch": "error",
                     "suspect": "warning", "replaced": "error"}
        self._fill("files", [((f.get("status") or "-", file_tone.get(f.get("status"), "")),
                              human_bytes(f.get("size")), f.get("path", "")) for f in d.files],
                   colors, "no files in the catalog yet")
        level_tone = {"error": "error", "warning": "warning"}
        self._fill("events", [(age(e.get("at"), now), (e.get("level", ""), level_tone.get(e.get("level"), "")),
                               e.get("kind", ""), e.get("message", "")) for e in d.events], colors, "no events")
        self._fill("snapshots", [(str(s.get("id", "-"))[:12], age(s.get("created_at"), now), s.get("reason", "-"),
                                  human_bytes(s.get("bytes")), human_bytes(s.get("new_bytes")))
                                 for s in d.snapshots], colors, "no snapshots")
        self._fill("drills", [(age(r.get("finished_at") or r.get("created_at") or r.get("started_at"), now),
                               ("-", "") if r.get("ok") is None else (
                                   ("pass", "success") if r.get("ok") else ("FAIL", "error")),
                               "-" if r.get("rto_seconds") is None else f"{float(r['rto_seconds']):.1f}s",
                               human_bytes(r.get("bytes")), str(r.get("bad_pieces") or "-"))
                              for r in d.drills], colors, "no drills")
        self._fill("companions", [(c.get("name") or c.get("content_path") or "-", str(c.get("info_hash_v1") or c.get("info_hash_v2")
                                                            or c.get("id") or "-")[:12],
                                   str(c.get("job_id", "-")), "yes" if c.get("parity") else "no",
                                   _provenance(c)) for c in d.companions], colors, "no companion torrents")

    def _fill(self, table_id: str, rows: list, colors: dict, empty: str) -> None:
        table = self.query_one(f"#{table_id}", DataTable)
        table.clear()
        if not rows:  # the message goes in the widest column
            widths = [c.width for c in table.columns.values()]
            cells = [""] * len(widths)
            cells[widths.index(max(widths))] = Text(empty, style="dim")
            table.add_row(*cells)
            return
        for row in rows:
            table.add_row(*(Text(c[0], style=colors.get(c[1], "")) if isinstance(c, tuple) else Text(str(c))
                            for c in row))

    def status_changed(self, change) -> None:
        if self.job and self.app.connection != "up":  # the catalog's word cannot tell how the job went
            self.show_progress(f"{self.job['action']}: the service is not answering; job {self.job['job']}"
                               " is followed again once it does", None)
        elif self.job and change.serial > self.job["serial"]:
            self.track_job()
        if change.full or self.torrent_id in change.changed or self.torrent_id in change.removed:
            self.show_summary()
            self.load()

    def service_event(self, event: dict) -> None:
        if event.get("torrent_id") != self.torrent_id:
            return
        if self.job:
            self.job_event(event)
        self.load()

    def show_summary(self) -> None:
        t = self.view
        summary = self.query_one("#summary", Static)
        if t is None:
            summary.update(Text(f"torrent {self.torrent_id}: not in the service's status", style="bold"))
            return
        now = self.app.now()
        colors = palette(self.app.get_css_variables())
        reason = attention(t)
        lines = [] if self.app.connection == "up" else [Text(
            f"● the service is not answering{f' ({self.app.connection_error})' if self.app.connection_error else ''}:"
            " showing the catalog, read-only", style=colors["error"], no_wrap=True, overflow="ellipsis")]
        lines += [
            Text(t.name, style="bold", no_wrap=True, overflow="ellipsis"),
            joined([f"id {t.id}", f"v1 {t.info_hash_v1 or '-'}",
                    f"v2 {(t.info_hash_v2 or '-')[:16]}{'…' if t.info_hash_v2 else ''}"]),
            joined([(PROTECTION_LABEL.get(t.protection, t.protection), colors[PROTECTION_TONE.get(t.protection, "")]),
                    (f"needs attention: {reason}", colors[ATTENTION_TONE.get(reason, "")]) if reason else "",
                    f"qBittorrent {t.qbt_state or '-'}", f"seeds/peers {swarm_text(t)}", f"size {human_bytes(t.size)}"]),
            joined([f"verified {age(t.last_verified, now)}", f"snapshot {age(t.snapshot_at, now)}"
                    + (" (SUSPECT)" if t.snapshot_suspect else ""), f"drill {drill_text(t.drill, now)}",
                    f"companions {companions_text(t)}",
                    (f"survives {t.coverage[0]}/{t.coverage[1]} damage classes"
                     + (f" (not: {', '.join(g.replace('_', ' ') for g in t.coverage[2])}; the swarm is the last resort)"
                        if t.coverage[2] else "")) if t.coverage else ""]),
        ]
        if t.stopped_by:
            who = {"seedward": "stopped by seedward", "user": "stopped by you"}.get(t.stopped_by, f"stopped by {t.stopped_by}")
            since = f" since {age(t.stopped_since, now)} ago" if t.stopped_since else ""
            because = f": {t.stopped_because}" if t.stopped_because else ""
            lines.append(Text(f"{who}{since}{because}", style=colors["warning"] if t.stopped_by == "seedward" else "",
                              no_wrap=True, overflow="ellipsis"))
        if t.hardlinked:  # issue 12: a tagger editing the other copy writes into this payload
            more = f" and {len(t.hardlinked) - 3} more" if len(t.hardlinked) > 3 else ""
            lines.append(Text(f"hard-linked elsewhere (watched through its inode): {', '.join(t.hardlinked[:3])}{more}",
                              style="dim", no_wrap=True, overflow="ellipsis"))
        summary.update(Text("\n").join(lines))

    def show_continuity(self) -> None:
        """Every window's intact share, heal and detect times, and the 7-day strip."""
        colors = palette(self.app.get_css_variables())
        c = self.detail.continuity or {}
        windows = c.get("windows") or {}
        week = windows.get("7d") or {}
        title = self.query_one("#continuity-title", Static)
        if not week:
            title.update(Text("continuity: not reported by this service", style="dim"))
        else:
            shares = [(f"{percent(w['intact_share'])} " if w.get("observed_seconds") else "- ")
                      + span(name, w.get("watched_seconds")) for name, w in windows.items()]
            heal, detect = week.get("heal_seconds") or {}, week.get("detect_seconds") or {}
            title.update(Text("\n").join([joined([("seeding intact " + ", ".join(shares), "bold")]), joined([
                f"{week.get('interruptions', 0)} incidents over 7 d",
                f"heal median {duration(heal.get('median'))}, max {duration(heal.get('max'))}" if heal.get("count") else "",
                f"detect median {duration(detect.get('median'))}" if detect.get("count") else "",
                f"stopped by seedward {duration(week.get('stopped_by_seedward_seconds'))}"
                if week.get("stopped_by_seedward_seconds") else "",
                f"longest outage {duration(week.get('longest_outage_seconds'))}" if week.get("longest_outage_seconds") else "",
            ])]))
        self.query_one(ContinuityStrip).show(c.get("timeline") or [], colors)
        self.query_one("#strip-legend", Static).update(legend(colors))

    # -- actions --

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_reload(self) -> None:
        self.load()

    def action_act(self, action: str) -> None:
        title, what = ACTIONS[action]
        name = self.view.name if self.view else self.torrent_id

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_action(action)

        self.app.push_screen(ConfirmScreen(f"{title}: {name}?", what), answered)

    @work(group="action")
    async def run_action(self, action: str) -> None:
        self.show_progress(f"{action}: asking the service…", None)
        try:
            answer = await self.app.client.request("action", action=action, id=self.torrent_id)
        except (ServiceNotRunning, ControlError) as exc:
            if self.gone:
                return
            self.show_progress(f"{action}: {exc}", 0, failed=True)
            self.notify(str(exc), title=f"{action} refused", severity="error", markup=False)
            return
        if self.gone:
            return
        job = answer.get("job")
        if job is None:  # the same job was already queued: follow that one
            job = next((j[0] for j in (self.view.jobs if self.view else ()) if j[1] == JOB_KIND[action]), None)
        # only a status requested after this answer can tell that the job has finished
        self.job = {"action": action, "job": job, "serial": self.app.requested_serial, "failed": None}
        self.show_progress(f"{action}: queued as job {job}" if job is not None else f"{action}: queued", None)
        self.app.request_refresh()

    def track_job(self) -> None:
        """Follow the job through the torrent's queued/running jobs in the status."""
        job = self.job
        jobs = {j[0]: j for j in (self.view.jobs if self.view else ())}
        if job["job"] in jobs:
            self.show_progress(f"{job['action']}: {jobs[job['job']][2]} (job {job['job']})", job.get("fraction"))
            return
        failed = job["failed"]
        if failed:
            self.show_progress(f"{job['action']}: failed: {failed}", 0, failed=True)
        else:
            state = self.view.protection if self.view else "?"
            self.show_progress(f"{job['action']}: done (job {job['job']}); now {state}", 1)
        self.job = None

    def job_event(self, event: dict) -> None:
        kind = str(event.get("event", ""))
        if kind == "job_failed" and event.get("job") in (self.job["job"], None):
            self.job["failed"] = event.get("message") or "failed"
        fraction = event.get("progress")
        if fraction is None and event.get("done") is not None and event.get("total"):
            fraction = event["done"] / event["total"]
        if fraction is not None:
            self.job["fraction"] = float(fraction)
        self.show_progress(f"{self.job['action']}: {event.get('message') or kind}", self.job.get("fraction"))

    def show_progress(self, text: str, fraction: float | None, failed: bool = False) -> None:
        self.query_one("#progress-row").display = True
        label = self.query_one("#progress-text", Static)
        label.update(Text(text, style=palette(self.app.get_css_variables())["error"] if failed else ""))
        bar = self.query_one("#progress", ProgressBar)
        if fraction is None:
            bar.update(total=None)
        else:
            bar.update(total=100, progress=round(100 * fraction))


def _provenance(c: dict) -> str:
    prov = c.get("provenance") or {}
    if isinstance(prov, dict):
        model = prov.get("model") or prov.get("model_name")
        version = prov.get("model_version")
        return " ".join(str(x) for x in (model, version) if x) or "-"
    return str(prov)[:40]
