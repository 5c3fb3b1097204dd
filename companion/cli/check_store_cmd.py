"""`seedward check-store [--new] [--metadata-only] [--repair]`: verify the snapshot store (restic's
`check`), and rewrite what is damaged from payloads that still verify (restic's `repair packs`)."""

from ..errors import EXIT_OK, EXIT_STORE_CORRUPT, BadInput
from .context import print_json


def register(sub) -> None:
    p = sub.add_parser("check-store", help="verify the snapshot store: packs, index, snapshots and chunk data")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--new", action="store_true",
                       help="read back only the packs no check has read yet (what the scheduled scrub does)")
    which.add_argument("--metadata-only", action="store_true",
                       help="check packs, index and snapshot records without reading chunk data")
    which.add_argument("--repair", action="store_true",
                       help="check everything, then rewrite damaged packs: bad or missing chunks are taken from"
                       " payload files that still verify against their torrent")
    p.add_argument("--dry-run", action="store_true", help="with --repair: say what would be rewritten, change nothing")
    p.add_argument("--read-rate-mb", type=float, default=0.0, help="limit reads to this many MB/s (0: no limit)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    store = ctx.store
    if args.repair:
        return _repair(args, store)
    if args.read_rate_mb < 0:
        raise BadInput("--read-rate-mb", "must not be negative")
    if args.metadata_only and args.read_rate_mb:
        raise BadInput("--read-rate-mb", "--metadata-only reads no chunk data: there is nothing to limit")
    with ctx.progress.bar("reading the store back") as bar:
        if args.new:
            result = store.scrub_packs(rate=args.read_rate_mb * 1e6, progress=bar)
        else:
            result = store.check(read_data=not args.metadata_only, rate=args.read_rate_mb * 1e6, progress=bar)
    if args.json:
        print_json(result.to_json())
    else:
        print(f"{result.packs} packs, {result.chunks} chunks, {result.bytes_read:,} bytes read back:"
              f" {'ok' if result.ok else f'{len(result.errors)} errors'}")
        for error in result.errors:
            print(f"  {error}")
        if result.unreferenced_packs:
            print(f"  {len(result.unreferenced_packs)} packs no index names (prune removes them)")
        if not result.ok:
            print("  `seedward check-store --repair` rewrites them from payloads that still verify")
    return EXIT_OK if result.ok else EXIT_STORE_CORRUPT


def _repair(args, store) -> int:
    result = store.repair_packs(dry_run=args.dry_run)
    if args.json:
        print_json(result.to_json())
        return EXIT_OK if result.ok else EXIT_STORE_CORRUPT
    if not result.packs_rewritten:
        print(f"nothing to repair ({len(result.check_errors)} check errors)" if result.check_errors
              else "nothing to repair: every chunk matches its id")
        return EXIT_OK if result.ok else EXIT_STORE_CORRUPT
    verb = "would rewrite" if result.dry_run else "rewrote"
    print(f"{verb} {len(result.packs_rewritten)} packs: {len(result.chunks_recovered)} chunks from payloads that"
          f" verify, {result.chunks_salvaged} good chunks moved, {len(result.chunks_lost)} lost")
    for cid in result.chunks_lost:
        print(f"  lost: chunk {cid} (no payload still gives it back; the next snapshot stores it again)")
    for sid in result.snapshots_cleared:
        print(f"  snapshot {sid[:12]} is whole again (no longer suspect)")
    return EXIT_OK if result.ok else EXIT_STORE_CORRUPT
