"""`seedward check-store [--new] [--metadata-only]`: verify the snapshot store (restic's `check`)."""

from ..errors import EXIT_OK, EXIT_STORE_CORRUPT
from .context import print_json


def register(sub) -> None:
    p = sub.add_parser("check-store", help="verify the snapshot store: packs, index, snapshots and chunk data")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--new", action="store_true",
                       help="read back only the packs no check has read yet (what the scheduled scrub does)")
    which.add_argument("--metadata-only", action="store_true",
                       help="check packs, index and snapshot records without reading chunk data")
    p.add_argument("--read-rate-mb", type=float, default=0.0, help="limit reads to this many MB/s (with --new)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    store = ctx.store
    if args.new:
        result = store.scrub_packs(rate=args.read_rate_mb * 1e6)
    else:
        result = store.check(read_data=not args.metadata_only)
    if args.json:
        print_json(result.to_json())
    else:
        print(f"{result.packs} packs, {result.chunks} chunks, {result.bytes_read:,} bytes read back:"
              f" {'ok' if result.ok else f'{len(result.errors)} errors'}")
        for error in result.errors:
            print(f"  {error}")
        if result.unreferenced_packs:
            print(f"  {len(result.unreferenced_packs)} packs no index names (prune removes them)")
    return EXIT_OK if result.ok else EXIT_STORE_CORRUPT
