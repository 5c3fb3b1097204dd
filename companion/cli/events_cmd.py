"""`seedward events [ID] [--since T] [--kind K] [--follow] [--json]`: the catalog's event stream
(drift, heals, drills, jobs, archives, qBittorrent connectivity, ...) as a table or JSON lines.

From the running service over the control socket; without one, from the catalog (read-only
views). `--follow` needs the service: it subscribes, and on each pushed event (and every couple of
seconds, for events other processes wrote to the catalog) asks for the events after the last one
shown, so every event is printed once, in the catalog's order, with its id.
"""

import json
import sys
import threading
import time

from ..catalog import views
from ..control import ControlError, request, subscribe
from ..errors import EXIT_OK, ServiceNotRunning
from . import timefmt

# --kind groups: a group names the kinds (exact, or a prefix ending in "_") it stands for.
GROUPS = {
    "drift": ("drift", "drift_error", "intact", "false_alarm", "intended", "hardlinked", "unlinked", "reconcile",
              "scrub", "invariant", "stopped", "quarantined", "restopped", "damaged"),
    "heal": ("healing", "healed", "heal_failed", "heal_progress", "alert", "resumed", "state"),
    "drill": ("drill_", "drills_"),
    "job": ("job_", "companion_published", "parity"),
    "archive": ("archive_",),
    "qbittorrent": ("qbt_", "user_stopped", "user_started"),
    "protection": ("protected", "baseline_bad", "excluded", "removed", "relocated", "state", "damaged", "zones",
                   "over_budget"),
    "store": ("snapshot", "store_", "pruned", "forgot", "quarantine_"),
    "service": ("service_", "spool_bad", "disk_full", "disk_space_back", "hook", "notify_", "metrics_"),
}
PAGE = 5000  # events per request (the service's ceiling)
POLL_SECONDS = 2.0  # --follow: also look for events other processes wrote, this often


def register(sub) -> None:
    p = sub.add_parser("events", help="the event stream: drift, heals, drills, jobs, archives, qBittorrent",
                       description="Events from the catalog, oldest first: a table, or one JSON object per line "
                                   "with --json. --follow keeps printing new ones (through the running service).")
    p.add_argument("id", nargs="?", metavar="ID", help="only this torrent's events (any unique prefix of its hash)")
    p.add_argument("--since", metavar="T", help="events at or after T: an ISO date/time (local without an offset) "
                                                 "or an age (30m, 2h, 7d)")
    p.add_argument("--kind", action="append", metavar="K",
                   help=f"only these kinds (repeatable): an event kind, or a group: {', '.join(GROUPS)}")
    p.add_argument("--limit", type=int, metavar="N",
                   help="without --since: the newest N (default 50; 10 with --follow); with it: at most N")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new events until interrupted")
    p.add_argument("--json", action="store_true", help="one JSON object per event, one per line")
    p.set_defaults(func=run)


class Source:
    """The events op: the service's answer, or the catalog's when no service runs."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.offline = False

    def fetch(self, **fields) -> list[dict]:
        if not self.offline:
            try:
                return request(self.ctx.home, "events", **fields)["events"]
            except ServiceNotRunning:
                self.offline = True
        if not self.ctx.settings.catalog.url and not self.ctx.home.catalog_db.exists():
            return []
        return views.events(self.ctx.catalog, **fields)


def run(args, ctx) -> int:
    source = Source(ctx)
    fields = {}
    if args.id:
        fields["torrent_id"] = _resolve(ctx, args.id)
    if args.since:
        fields["after"] = timefmt.iso(timefmt.since(args.since))
    wanted = KindFilter(args.kind)
    show = Printer(args.json)
    last_id = 0
    if args.since:
        left = args.limit
        while left is None or left > 0:
            page = source.fetch(since=last_id, limit=PAGE if left is None else min(PAGE, left), **fields)
            if not page:
                break
            last_id = page[-1]["id"]
            shown = [e for e in page if wanted(e)]
            show.many(shown)
            if left is not None:
                left -= len(page)
            if len(page) < PAGE:
                break
    else:
        n = args.limit if args.limit is not None else (10 if args.follow else 50)
        # with --kind, the newest N that match among the newest PAGE events
        recent = source.fetch(last=PAGE if wanted.narrow else max(1, min(n, PAGE)), **fields) if n > 0 else []
        if recent:
            last_id = recent[-1]["id"]
        show.many([e for e in recent if wanted(e)][-n:] if n > 0 else [])
    if args.follow:
        if source.offline:
            raise ServiceNotRunning(f"--follow needs it; no answer on {ctx.home.socket}")
        follow(ctx, last_id, fields, wanted, show)
    elif not show.count and not args.json:
        print("no events" + (" match" if args.kind or args.since or args.id else ""), file=sys.stderr)
    return EXIT_OK


def follow(ctx, last_id: int, fields: dict, wanted, show) -> None:
    """Until interrupted; a service that stops is waited for (said once on stderr)."""
    wake, gone = threading.Event(), threading.Event()
    waiting = False
    while True:
        try:
            request(ctx.home, "ping")
            gone.clear()
            threading.Thread(target=_pump, args=(subscribe(ctx.home), wake, gone), daemon=True,
                             name="events-follow").start()
            if waiting:
                print("seedward: the service is back", file=sys.stderr, flush=True)
                waiting = False
            while not gone.is_set():
                last_id = _catch_up(ctx, last_id, fields, wanted, show)
                wake.wait(POLL_SECONDS)
                wake.clear()
            last_id = _catch_up(ctx, last_id, fields, wanted, show)  # what came before it stopped
            raise ServiceNotRunning("the service stopped")
        except (ServiceNotRunning, ControlError) as exc:
            if not waiting:
                print(f"seedward: {exc}; waiting for it (Ctrl-C to stop)", file=sys.stderr, flush=True)
                waiting = True
            time.sleep(POLL_SECONDS)


def _catch_up(ctx, last_id: int, fields: dict, wanted, show) -> int:
    """Print every event after last_id (from the service); returns the new last id."""
    while True:
        page = request(ctx.home, "events", since=last_id, limit=PAGE, **fields)["events"]
        if not page:
            return last_id
        last_id = page[-1]["id"]
        show.many([e for e in page if wanted(e)])
        if len(page) < PAGE:
            return last_id


def _pump(stream, wake: threading.Event, gone: threading.Event) -> None:
    """Read the subscription; every pushed event wakes the follower."""
    try:
        for _ in stream:
            wake.set()
    except (OSError, ValueError, ServiceNotRunning, ControlError):
        pass
    finally:
        gone.set()
        wake.set()


def _resolve(ctx, prefix: str) -> str:
    return ctx.catalog.resolve_id(prefix)


class KindFilter:
    """--kind values -> a predicate over events."""

    def __init__(self, kinds: list[str] | None):
        self.exact, self.prefixes = set(), []
        for k in kinds or ():
            for name in GROUPS.get(k.strip().lower(), (k.strip(),)):
                (self.prefixes.append(name) if name.endswith("_") else self.exact.add(name))
        self.narrow = bool(self.exact or self.prefixes)

    def __call__(self, event: dict) -> bool:
        if not self.narrow:
            return True
        kind = str(event.get("kind") or "")
        return kind in self.exact or kind.startswith(tuple(self.prefixes))


class Printer:
    def __init__(self, as_json: bool):
        self.as_json = as_json
        self.count = 0

    def many(self, events: list[dict]) -> None:
        out = sys.stdout
        for e in events:
            out.write(json_line(e) if self.as_json else table_line(e))
            self.count += 1
        out.flush()


def json_line(e: dict) -> str:
    record = {"id": e.get("id"), "at": timefmt.iso(e.get("at")), "torrent_id": e.get("torrent_id"),
              "kind": e.get("kind"), "level": e.get("level"), "message": e.get("message"),
              "detail": e.get("detail") if isinstance(e.get("detail"), dict) else {}}
    return json.dumps(record, default=timefmt.json_default) + "\n"


def table_line(e: dict) -> str:
    tid = (e.get("torrent_id") or "-")[:12]
    message = " ".join(str(e.get("message") or "").split())  # one line per event
    return (f"{timefmt.local(e.get('at'), seconds=True):19}  {str(e.get('level') or ''):7}  "
            f"{str(e.get('kind') or ''):16}  {tid:12}  {message}\n")
