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
    from companion.control import request

    from .model import parse_status
    from .table import status_table

    now = datetime.now(timezone.utc)
    sys.stdout.write(status_table(parse_status(request(home, "status")), now))
    return 0
