"""`seedward restore ID [--snapshot S] [--files PATH...] [--to DIR] [--dry-run] [--json]`.

With --to: the snapshot's files are written under DIR, laid out as the torrent does. Without:
in place, only the damaged pieces (found by a quick verify against the snapshot) are written
back, with the drifted bytes kept in the quarantine folder and the torrent stopped, rechecked
when sizes changed, and resumed in qBittorrent (through the service when it runs; see
companion/drift/restore.py). --dry-run only shows the damage.
"""

from pathlib import Path

from ..errors import EXIT_OK, NotFound
from ..store.repair import heal_in_place
from .context import print_json


def register(sub) -> None:
    p = sub.add_parser("restore", help="restore a payload from a snapshot (default: damaged pieces, in place)")
    p.add_argument("id", metavar="ID", help="any unique prefix of an info hash")
    p.add_argument("--snapshot", metavar="S", help="snapshot id prefix (default: the latest)")
    p.add_argument("--files", nargs="+", metavar="PATH", help="only these files (paths as in the torrent)")
    p.add_argument("--to", metavar="DIR", help="restore the whole files under DIR instead of repairing in place")
    p.add_argument("--dry-run", action="store_true", help="only show what would be written")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    tid = ctx.catalog.resolve_id(args.id)
    store = ctx.store
    snap = store.get(args.snapshot) if args.snapshot else store.latest(tid)
    if snap is None:
        raise NotFound(f"torrent {tid[:12]} has no snapshot")
    if snap.torrent_id != tid:
        raise NotFound(f"snapshot {snap.id[:12]} belongs to torrent {snap.torrent_id[:12]}, not {tid[:12]}")
    if args.to:
        return _restore_to(args, store, snap)
    if not args.dry_run:
        # In place: quarantine, stop, write the damaged pieces, recheck, resume (issue 4, drift).
        from ..drift.restore import run_restore

        return run_restore(args, ctx, tid, snap.id, store)
    row = ctx.catalog.get_torrent(tid)
    save_path = Path(row["save_path"] or snap.save_path)
    damage, healed = heal_in_place(store, snap.id, save_path, files=args.files, dry_run=args.dry_run)
    if args.json:
        print_json({"snapshot": snap.id, "save_path": str(save_path), "dry_run": args.dry_run,
                    "damage": damage.to_json(), "healed": healed.to_json() if healed else None})
        return EXIT_OK
    if damage.ok:
        print(f"{snap.name}: intact, nothing to restore (snapshot {snap.id[:12]})")
        return EXIT_OK
    for path, status in damage.files.items():
        if status != "ok":
            print(f"  {status:13} {path}")
    pieces = ", ".join(f"{fi}:{p}" for fi, p in damage.segments[:20])
    if healed is None:
        print(f"would write back {len(damage.segments)} segments (file:piece {pieces}) from snapshot {snap.id[:12]}")
    else:
        print(f"wrote back {len(healed.segments)} segments ({healed.bytes:,} bytes, file:piece {pieces})"
              f" from snapshot {snap.id[:12]} in {healed.seconds:.2f}s")
    return EXIT_OK


def _restore_to(args, store, snap) -> int:
    dest = Path(args.to)
    if args.dry_run:
        rows = store.select_files(snap.id, args.files)
        out = {"snapshot": snap.id, "dest_dir": str(dest), "dry_run": True, "files": [r["path"] for r in rows],
               "bytes": sum(r["size"] for r in rows)}
        if args.json:
            print_json(out)
        else:
            for r in rows:
                print(f"would restore {r['size']:>15,}  {dest / r['path']}")
        return EXIT_OK
    result = store.restore(snap.id, dest, files=args.files)
    if args.json:
        print_json(result.to_json())
        return EXIT_OK
    print(f"restored {len(result.files)} files ({result.bytes:,} bytes) from snapshot {snap.id[:12]} to {dest}"
          f" in {result.seconds:.2f}s")
    return EXIT_OK

