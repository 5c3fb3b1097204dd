"""`seedward stop ID [--json]`: stop a torrent in qBittorrent as the user's choice (seedward will
not start it again; `seedward start ID` does). Through the service when it runs."""

from .startstop import run_user


def register(sub) -> None:
    p = sub.add_parser("stop", help="stop a torrent in qBittorrent (recorded as your choice: seedward keeps it stopped)")
    p.add_argument("id", metavar="ID", help="any unique prefix of an info hash")
    p.add_argument("--dry-run", action="store_true", help="say what would happen; ask nothing of qBittorrent")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--instance", metavar="NAME", help="several qBittorrent instances: only in this one (default: "
                   "every instance holding the torrent)")
    p.set_defaults(func=lambda args, ctx: run_user("stop", args, ctx))
