"""`seedward start ID [--force] [--json]`: start a torrent in qBittorrent (clears your stop, and
takes over a torrent seedward stopped). A damaged or healing torrent is refused unless --force:
it would seed pieces that fail their hashes. Through the service when it runs."""

from .startstop import run_user


def register(sub) -> None:
    p = sub.add_parser("start", help="start a torrent in qBittorrent (refuses a damaged one without --force)")
    p.add_argument("id", metavar="ID", help="any unique prefix of an info hash")
    p.add_argument("--force", action="store_true", help="start it even if it is damaged or healing")
    p.add_argument("--dry-run", action="store_true", help="say what would happen; ask nothing of qBittorrent")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--instance", metavar="NAME", help="several qBittorrent instances: only in this one (default: "
                   "every instance holding the torrent)")
    p.set_defaults(func=lambda args, ctx: run_user("start", args, ctx))
