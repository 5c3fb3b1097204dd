"""The quickstart demo's last step: the dashboard, or the status table when there is no terminal."""

import sys
from datetime import datetime, timezone


def finale(ctx) -> int:
    """ctx: the demo's DemoContext (its service is running, so the control socket answers)."""
    home = ctx.service.home
    print("\n== seedward tui: every torrent at a glance (press q to quit)" if sys.stdout.isatty()
          else "\n== seedward tui (no terminal here: the status table instead)", flush=True)
    if sys.stdout.isatty():
        from .app import SeedwardApp

        SeedwardApp(home).run()
        return 0
    import asyncio

    from .catalog_view import CatalogView, complete_status
    from .client import ControlClient
    from .table import status_table

    raw = asyncio.run(ControlClient(home.socket).request("status"))
    now = datetime.now(timezone.utc)
    sys.stdout.write(status_table(complete_status(raw, CatalogView(home.catalog_db), now), now))
    return 0
