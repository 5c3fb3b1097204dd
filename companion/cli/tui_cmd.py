"""`seedward tui`: the terminal dashboard (Textual); without a terminal, the status table."""

import asyncio
import sqlite3
import sys
from datetime import datetime, timezone

from ..catalog.db import CatalogError
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
    SeedwardApp(ctx.home, theme=theme).run()
    return 0


def print_table(ctx) -> int:
    from tui.catalog_view import CatalogView, complete_status
    from tui.client import ControlClient, ControlRefused
    from tui.table import status_table

    try:
        raw = asyncio.run(ControlClient(ctx.home.socket).request("status"))
    except (ServiceNotRunning, ControlRefused) as exc:
        view = CatalogView(ctx.home.catalog_db)
        if not view.available():
            raise ServiceNotRunning(f"no answer on {ctx.home.socket}, and no catalog yet") from exc
        try:
            raw = view.offline_status()
        except sqlite3.Error as err:
            raise CatalogError(ctx.home.catalog_db, str(err)) from err
    now = datetime.now(timezone.utc)
    sys.stdout.write(status_table(complete_status(raw, CatalogView(ctx.home.catalog_db), now), now))
    return 0
