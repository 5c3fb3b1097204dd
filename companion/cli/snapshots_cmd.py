"""`seedward snapshots [ID] [--json]`: list snapshots."""

from ..errors import EXIT_OK
from .context import print_json


def register(sub) -> None:
    p = sub.add_parser("snapshots", help="list snapshots in the store")
    p.add_argument("id", nargs="?", metavar="ID", help="only this torrent (any unique prefix of an info hash)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    tid = ctx.catalog.resolve_id(args.id) if args.id else None
    snaps = ctx.store.snapshots(tid)
    if args.json:
        print_json({"snapshots": [s.to_json() for s in snaps]})
        return EXIT_OK
    if not snaps:
        print("no snapshots")
    for s in snaps:
        print(f"{s.id[:12]}  {s.created_at[:19].replace('T', ' ')}  {s.reason:9}  {s.bytes:>15,}"
              f"  {s.new_bytes:>15,} new  {s.torrent_id[:12]}  {s.name}")
    return EXIT_OK
