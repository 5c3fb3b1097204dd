"""`seedward tui [--web [--port N]]`: the dashboard (Textual); without a terminal, the status table.

With the service down the dashboard shows the catalog (read-only, through catalog/views.py, which
this command hands the TUI: the TUI never opens the catalog itself). `--web` serves the same app
to a browser on loopback with textual-serve (tui/web.py), behind a one-time token.
"""

import os
import shlex
import sys
from datetime import datetime, timezone

from ..catalog import views
from ..continuity.library import Ledger, attach
from ..continuity.library import detail as continuity_detail
from ..control import ControlError, request
from ..errors import BadInput, ServiceNotRunning

WEB_PORT = 8477


def register(subparsers) -> None:
    p = subparsers.add_parser("tui", help="the dashboard: every torrent's protection and continuity at a glance",
                              description="Open the dashboard. When stdout is not a terminal, print the "
                                          "status table instead.")
    p.add_argument("--light", action="store_true", help="start with the light theme")
    p.add_argument("--ansi", action="store_true", help="use the terminal's own 16 colors")
    p.add_argument("--web", action="store_true",
                   help="serve the dashboard to a browser on this machine (loopback only, with a one-time token)")
    p.add_argument("--port", type=int, default=WEB_PORT, metavar="N",
                   help=f"with --web: the loopback port (default {WEB_PORT})")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    if args.web:
        return serve_web(args, ctx)
    if not sys.stdout.isatty() and "web_driver" not in os.environ.get("TEXTUAL_DRIVER", ""):
        return print_table(ctx)
    from tui.app import SeedwardApp

    theme = "ansi-dark" if args.ansi else ("textual-light" if args.light else None)
    if ctx.settings.catalog.url or ctx.home.catalog_db.exists():
        ctx.catalog.close()  # opening it migrates an older catalog before the TUI reads it read-only
    SeedwardApp(ctx.home, theme=theme, offline=Offline(ctx)).run()
    return 0


class Offline:
    """The TUI's reads while no service runs: the catalog's answers (catalog/views.py), with the
    continuity the service would add."""

    def __init__(self, ctx):
        self.target = ctx.settings.catalog.target(ctx.home)  # the home's file, or a shared catalog
        self.home_root = ctx.home.root
        self.ledger = Ledger()

    def __call__(self, op: str, fields: dict) -> dict:
        # One read transaction each, taken before the ledger's lock (the service's order: see
        # service/status.py and tests/lockorder.py).
        if op == "status":
            cat = views.ReadOnly(self.target)
            try:
                with cat.snapshot():
                    return attach(views.offline_status(cat, self.home_root), self.ledger, cat)
            finally:
                cat.close()
        answer = views.offline_answer(self.target, op, fields)
        if op == "detail":
            cat = views.ReadOnly(self.target)
            try:
                entry = {"protection": answer.get("protection"), "last_verified": answer.get("last_verified")}
                with cat.snapshot():
                    answer["continuity"] = continuity_detail(self.ledger, fields["id"], entry, cat)
            finally:
                cat.close()
        return answer


def serve_web(args, ctx) -> int:
    from tui.web import serve

    if not 0 < args.port < 65536:
        raise BadInput("--port", f"{args.port}: expected a port from 1 to 65535")
    argv = [sys.executable, "-m", "companion.cli.main", "--home", str(ctx.home.root), "tui"]
    argv += ["--light"] if args.light else (["--ansi"] if args.ansi else [])
    serve(" ".join(shlex.quote(a) for a in argv), port=args.port, out=sys.stderr)
    return 0


def print_table(ctx) -> int:
    from tui.model import parse_status
    from tui.table import status_table

    try:
        raw = request(ctx.home, "status")
    except (ServiceNotRunning, ControlError) as exc:
        if not ctx.settings.catalog.url and not ctx.home.catalog_db.exists():
            raise ServiceNotRunning(f"no answer on {ctx.home.socket}, and no catalog yet") from exc
        raw = attach(views.offline_status(ctx.catalog, ctx.home.root), Ledger(), ctx.catalog)
    now = datetime.now(timezone.utc)
    sys.stdout.write(status_table(parse_status(raw), now))
    return 0
