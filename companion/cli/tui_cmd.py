"""`seedward tui`: the terminal dashboard (Textual); without a terminal, the status table."""

import sys
from datetime import datetime, timezone
from functools import partial

from ..catalog import views
from ..control import ControlError, request
from ..errors import ServiceNotRunning


def register(subparsers) -> None:
    p = subparsers.add_parser("tui", help="the dashboard: every torrent's protection at a glance",
                              description="Open the dashboard. When stdout is not a terminal, print the "
                                          "status table instead.")
    p.add_argument("--light", action="store_true", help="start with the light theme")
    p.add_argument("--ansi", action="store_true", help="use the terminal's own 16 colors")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    if not sys.stdout.isatty():
        return print_table(ctx)
    from tui.app import SeedwardApp

    theme = "ansi-dark" if args.ansi else ("textual-light" if args.light else None)
    target = ctx.settings.catalog.target(ctx.home)  # the home's file, or a shared catalog ([catalog] url)
    if ctx.settings.catalog.url or ctx.home.catalog_db.exists():
        ctx.catalog.close()  # opening it migrates an older catalog before the TUI reads it read-only
    SeedwardApp(ctx.home, theme=theme, offline=partial(views.offline_answer, target)).run()
    return 0


def print_table(ctx) -> int:
    from tui.model import parse_status
    from tui.table import status_table

    try:
        raw = request(ctx.home, "status")
    except (ServiceNotRunning, ControlError) as exc:
        if not ctx.settings.catalog.url and not ctx.home.catalog_db.exists():
            raise ServiceNotRunning(f"no answer on {ctx.home.socket}, and no catalog yet") from exc
        raw = views.offline_status(ctx.catalog, ctx.home.root)
    now = datetime.now(timezone.utc)
    sys.stdout.write(status_table(parse_status(raw), now))
    return 0
