"""`seedward snapshots [ID] [--json]`: list snapshots, suspect ones marked with why."""

from ..catalog.drills import suspect_snapshots
from ..errors import EXIT_OK
from . import timefmt
from .context import print_json


def register(sub) -> None:
    p = sub.add_parser("snapshots", help="list snapshots in the store")
    p.add_argument("id", nargs="?", metavar="ID", help="only this torrent (any unique prefix of an info hash)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    tid = ctx.catalog.resolve_id(args.id) if args.id else None
    snaps = ctx.store.snapshots(tid)
    marks = {r["snapshot_id"]: r for r in suspect_snapshots(ctx.catalog, tid)}
    if args.json:
        out = []
        for s in snaps:
            mark = marks.get(s.id)
            out.append({**s.to_json(), "suspect": mark is not None,
                        "suspect_because": None if mark is None else {
                            "by": "store check" if mark["drill_id"] == "store-check" else f"drill {mark['drill_id']}",
                            "at": mark["marked_at"], "reason": mark["reason"]}})
        print_json({"snapshots": out})
        return EXIT_OK
    if not snaps:
        print("no snapshots")
    for s in snaps:
        mark = marks.get(s.id)
        print(f"{s.id[:12]}  {timefmt.local(s.created_at)}  {s.reason:9}  {s.bytes:>15,}"
              f"  {s.new_bytes:>15,} new  {s.torrent_id[:12]}  {s.name}{'  SUSPECT' if mark else ''}")
        if mark:
            by = "store check" if mark["drill_id"] == "store-check" else f"drill {mark['drill_id']}"
            print(f"{'':14}suspect since {timefmt.local(mark['marked_at'])} ({by}): {mark['reason']}")
    return EXIT_OK
