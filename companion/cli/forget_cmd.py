"""`seedward forget --keep-last/--keep-daily/... N [--dry-run]` (restic's policy) or `--snapshot S`."""

from ..errors import EXIT_OK
from .context import print_json


def register(sub) -> None:
    p = sub.add_parser("forget", help="remove snapshots per a retention policy (restic's semantics)")
    p.add_argument("id", nargs="?", metavar="ID", help="only this torrent's snapshots")
    periods = {"hourly": "hours", "daily": "days", "weekly": "ISO weeks", "monthly": "months", "yearly": "years"}
    p.add_argument("--keep-last", type=int, default=0, metavar="N", help="keep the N newest (-1: all)")
    for rule, period in periods.items():
        p.add_argument(f"--keep-{rule}", type=int, default=0, metavar="N",
                       help=f"keep the newest snapshot of each of the last N {period} that have one (-1: all)")
    p.add_argument("--snapshot", action="append", metavar="S", help="remove exactly this snapshot (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="only show what would be removed")
    p.add_argument("--prune", action="store_true", help="prune the store afterwards")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    tid = ctx.catalog.resolve_id(args.id) if args.id else None
    result = ctx.store.forget(args.keep_last, args.keep_hourly, args.keep_daily, args.keep_weekly,
                                    args.keep_monthly, args.keep_yearly, dry_run=args.dry_run, torrent_id=tid,
                                    snapshot_ids=args.snapshot, prune=args.prune)
    if args.json:
        print_json(result.to_json())
        return EXIT_OK
    verb = "would remove" if args.dry_run else "removed"
    for tid, decision in result.decisions.items():
        print(f"torrent {tid[:12]}: keep {len(decision.keep)}, {verb} {len(decision.remove)}")
        for sid, reasons in decision.keep:
            print(f"  keep    {sid[:12]}  ({', '.join(reasons)})")
        for sid in decision.remove:
            print(f"  remove  {sid[:12]}")
    return EXIT_OK
