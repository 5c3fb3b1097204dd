"""`seedward prune [--dry-run]`: delete chunks no snapshot uses."""

from ..errors import EXIT_OK
from .context import print_json


def register(sub) -> None:
    p = sub.add_parser("prune", help="delete store data no snapshot uses (repacking mostly-unused packs)")
    p.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    result = ctx.store.prune(dry_run=args.dry_run)
    if args.json:
        print_json(result.to_json())
        return EXIT_OK
    verb = "would free" if args.dry_run else "freed"
    print(f"{verb} {result.bytes_freed:,} bytes: {result.chunks_removed} chunks, {result.packs_deleted} packs"
          f" deleted, {result.packs_repacked} repacked, {result.trees_deleted} stale snapshot trees")
    return EXIT_OK
