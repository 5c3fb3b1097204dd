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

    from .client import ControlClient
    from .model import parse_status
    from .table import status_table

    raw = asyncio.run(ControlClient(home.socket).request("status"))
    sys.stdout.write(status_table(parse_status(raw), datetime.now(timezone.utc)))
    return 0
