"""`seedward drills [ID] [--json]`: the drill record, newest first."""

from ..errors import EXIT_OK
from . import timefmt
from .context import print_json


def register(sub) -> None:
    p = sub.add_parser("drills", help="show past restore drills")
    p.add_argument("id", nargs="?", metavar="ID", help="only this torrent (any unique prefix of an info hash)")
    p.add_argument("--limit", type=int, default=50, help="at most this many drills (default 50)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    from ..catalog.drills import list_drills, suspect_snapshots
    from ..drill.records import drill_json

    torrent_id = ctx.catalog.resolve_id(args.id) if args.id else None
    drills = [drill_json(r) for r in list_drills(ctx.catalog, torrent_id, max(1, args.limit))]
    suspects = [dict(r) for r in suspect_snapshots(ctx.catalog, torrent_id)]
    if args.json:
        print_json({"drills": drills, "suspect_snapshots": suspects})
        return EXIT_OK
    if not drills:
        print("no drills yet")
    for d in drills:
        verdict = {"passed": "PASS", "failed": "FAIL"}.get(d["state"], "RUNNING")
        rpo = "-" if d["rpo_seconds"] is None else f"{d['rpo_seconds']:.0f}s"
        print(f"{timefmt.local(d['started_at'])}  {verdict:7} {d['id'][:12]}  snapshot {d['snapshot'][:12] or '-':12}"
              f"  RTO {d['rto_seconds']:.2f}s  RPO {rpo}  {d['reason']}{'  swarm' if d['swarm'] else ''}")
        if d["error"]:
            print(f"    {d['error']}")
        if d["bad_files"]:
            print(f"    bad files: {', '.join(d['bad_files'][:10])}")
        if d["bad_pieces"]:
            print(f"    bad pieces: {', '.join(map(str, d['bad_pieces'][:20]))}")
    for s in suspects:
        print(f"suspect snapshot {s['snapshot_id'][:12]} of {s['torrent_id'][:12]}: {s['reason']}")
    return EXIT_OK
