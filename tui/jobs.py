"""Jobs: AI jobs with their provenance and published companions, and the service's work queue."""

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from .cells import palette
from .client import ControlError, Error, ServiceNotRunning
from .text import age

STATE_TONE = {"done": "success", "published": "success", "ok": "success", "failed": "error", "tainted": "error",
              "running": "warning", "queued": "", "waiting": "warning"}


class JobsScreen(Screen):
    CSS_PATH = "jobs.tcss"
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("r", "reload", "Reload"),
    ]

    def compose(self) -> ComposeResult:
        yield Static("AI jobs  (provenance and companion torrents)", classes="title", id="ai-title")
        yield DataTable(id="ai", cursor_type="row", zebra_stripes=True)
        yield Static("Work queue  (verify, snapshot, heal, drill, ...)", classes="title", id="queue-title")
        yield DataTable(id="queue", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        for table_id, cols in (
            ("ai", (("Job", 10), ("State", 10), ("Torrent", 26), ("Model", 24), ("Operator", 10), ("When", 6),
                    ("Outputs", 8), ("Companion", 20))),
            ("queue", (("Job", 7), ("Kind", 10), ("Torrent", 26), ("State", 8), ("Tries", 5), ("Updated", 8),
                       ("Error", 40))),
        ):
            table = self.query_one(f"#{table_id}", DataTable)
            for label, width in cols:
                table.add_column(label, width=width)
        self.app.event_signal.subscribe(self, lambda _: self.load())
        self.query_one("#ai", DataTable).focus()
        self.load()

    @work(exclusive=True, group="jobs")
    async def load(self) -> None:
        try:  # AI jobs and the work queue, newest first: the service's, or the catalog's when it is down
            history = await self.app.client.read("job_history")
            ai, queue = history.get("ai", []), history.get("queue", [])
        except (ServiceNotRunning, Error) as exc:
            self.notify(str(exc), title="cannot read the jobs", severity="warning", markup=False)
            ai, queue = [], []
        try:  # the service's queued and running jobs are the freshest
            live = (await self.app.client.request("jobs")).get("jobs", [])
            by_id = {q["id"]: q for q in queue}
            by_id.update({q["id"]: q for q in live})
            queue = sorted(by_id.values(), key=lambda q: q["id"], reverse=True)
        except (ServiceNotRunning, ControlError):
            pass
        if self not in self.app.screen_stack:  # closed meanwhile
            return
        self.fill(ai, queue)

    def fill(self, ai: list[dict], queue: list[dict]) -> None:
        now = self.app.now()
        colors = palette(self.app.get_css_variables())
        names = self.app.status.torrents if self.app.status else {}

        def torrent(tid):
            return names[tid].name if tid in names else (tid or "-")[:12]

        def state(s):
            return Text(s or "-", style=colors[STATE_TONE.get(s, "")])

        table = self.query_one("#ai", DataTable)
        table.clear()
        for j in ai:
            model = " ".join(str(x) for x in (j.get("model"), j.get("model_version")) if x) or "-"
            companion = j.get("companion") or j.get("published") or "-"
            if isinstance(companion, dict):
                companion = companion.get("name") or companion.get("info_hash_v1") or "yes"
            outputs = j.get("outputs")
            table.add_row(Text(str(j.get("id", "-"))[:10]), state(j.get("state")), Text(torrent(j.get("torrent_id"))),
                          Text(model), Text(j.get("operator") or "-"),
                          Text(age(j.get("finished_at") or j.get("started_at") or j.get("created_at"), now)),
                          Text(str(len(outputs) if isinstance(outputs, list) else (outputs or "-"))),
                          Text(str(companion)[:20]))
        if not ai:
            table.add_row("", "", Text("no AI jobs yet", style="dim"), Text("seedward job run ...", style="dim"),
                          *[""] * 4)
        table = self.query_one("#queue", DataTable)
        table.clear()
        for q in queue:
            table.add_row(Text(str(q["id"])), Text(str(q["kind"])), Text(torrent(q.get("torrent_id"))), state(q["state"]),
                          Text(str(q.get("attempts", ""))), Text(age(q.get("updated_at"), now)), Text(q.get("error") or ""))
        if not queue:
            table.add_row("", "", Text("the queue is empty", style="dim"), *[""] * 4)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_reload(self) -> None:
        self.load()
