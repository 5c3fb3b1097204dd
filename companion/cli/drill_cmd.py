"""`seedward drill [ID ... | --sample N | --all] [--snapshot S] [--swarm] [--json]`."""

import random
import sys

from ..errors import EXIT_DAMAGE, EXIT_DISK_FULL, EXIT_ERROR, EXIT_OK, BadInput
from .context import print_json


def register(sub) -> None:
    p = sub.add_parser("drill", help="prove snapshots: restore into scratch, SHA-256, isolated libtorrent recheck")
    p.add_argument("ids", nargs="*", metavar="ID", help="torrents to drill (any unique prefix of an info hash)")
    p.add_argument("--sample", type=int, metavar="N", help="drill N torrents picked at random among those with a snapshot")
    p.add_argument("--all", action="store_true", help="drill every torrent that has a snapshot")
    p.add_argument("--snapshot", metavar="S", help="drill this snapshot (id prefix) instead of the latest")
    p.add_argument("--swarm", action="store_true", help="also seed the restore to a second isolated session")
    p.add_argument("--dry-run", action="store_true",
                   help="say which snapshots would be drilled and the scratch space needed; restore nothing")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def targets(args, ctx) -> list[str]:
    from ..catalog.drills import drill_candidates

    chosen = sum(bool(x) for x in (args.ids, args.sample is not None, args.all))
    if chosen > 1:
        raise BadInput("seedward drill", "give torrent IDs, --sample N or --all, not several")
    if args.sample is not None and args.sample < 1:
        raise BadInput("--sample", f"{args.sample}: expected a count of 1 or more")
    if args.ids:
        ids = list(dict.fromkeys(ctx.catalog.resolve_id(i) for i in args.ids))
        if args.snapshot and len(ids) > 1:
            raise BadInput("--snapshot", "drills one snapshot: give at most one torrent ID with it")
        return ids
    if args.snapshot and not (args.sample or args.all):
        return [snapshot_owner(ctx, args.snapshot)]
    if args.snapshot:
        raise BadInput("--snapshot", "drills one snapshot: not with --sample or --all")
    candidates = [r["torrent_id"] for r in drill_candidates(ctx.catalog)]
    if args.all:
        return candidates
    if args.sample:
        return random.sample(candidates, min(args.sample, len(candidates)))
    raise BadInput("seedward drill", "give torrent IDs, --sample N or --all")


def snapshot_owner(ctx, prefix: str) -> str:
    from ..catalog.snapshots import get_snapshot, resolve_snapshot

    ids = resolve_snapshot(ctx.catalog, prefix)
    if len(ids) != 1:
        raise BadInput("--snapshot", f"{prefix!r} matches {len(ids)} snapshots")
    return get_snapshot(ctx.catalog, ids[0])["torrent_id"]


def exit_code(results) -> int:
    if any(r.error and not r.damaged and r.error_code == EXIT_DISK_FULL for r in results):
        return EXIT_DISK_FULL  # the scratch disk is too small or filled up: nothing proven either way
    if any(r.error and not r.damaged for r in results):
        return EXIT_ERROR
    return EXIT_OK if all(r.ok for r in results) else EXIT_DAMAGE


def run(args, ctx) -> int:
    from ..drill import Drill, cleanup_scratch

    ids = targets(args, ctx)
    if args.dry_run:
        return dry_run(args, ctx, ids)
    cleanup_scratch(ctx.home, ctx.settings, ctx.catalog)
    if not ids:
        if args.json:
            print_json({"drills": []})
        else:
            print("no torrent has a snapshot to drill", file=sys.stderr)
        return EXIT_OK
    drill = Drill(ctx.catalog, ctx.store, ctx.home, ctx.settings, progress=ctx.progress.bar)
    results = []
    for torrent_id in ids:
        result = drill.run(torrent_id, snapshot=args.snapshot, swarm=args.swarm, reason="manual")
        results.append(result)
        if not args.json:
            print_result(result)
        if result.error:
            print(f"seedward: drill of {torrent_id[:12]}: {result.error}", file=sys.stderr)
    if args.json:
        print_json({"drills": [r.to_json() for r in results]})
    return exit_code(results)


def dry_run(args, ctx, ids: list[str]) -> int:
    """The snapshot each drill would restore (the newest, or --snapshot) and its bytes; nothing is
    restored, recorded or cleaned up."""
    from ..catalog.snapshots import get_snapshot, list_snapshots, resolve_snapshot

    plan = []
    for tid in ids:
        row = ctx.catalog.get_torrent(tid)
        if args.snapshot:
            found = [get_snapshot(ctx.catalog, s) for s in resolve_snapshot(ctx.catalog, args.snapshot)]
            snap = next((s for s in found if s["torrent_id"] == tid), None)
        else:
            snaps = list_snapshots(ctx.catalog, tid)
            snap = snaps[-1] if snaps else None
        plan.append({"id": tid, "name": row["name"] if row else None, "snapshot": snap["id"] if snap else None,
                     "bytes": int(snap["bytes"]) if snap else 0, "swarm": args.swarm})
    scratch = max((p["bytes"] * (2 if args.swarm else 1) for p in plan), default=0)  # one drill at a time
    if args.json:
        print_json({"dry_run": True, "drills": plan, "scratch_bytes": scratch})
        return EXIT_OK
    for p in plan:
        what = f"snapshot {p['snapshot'][:12]} ({p['bytes']:,} B)" if p["snapshot"] else "no snapshot: would fail"
        print(f"would drill {p['id'][:12]}  {p['name']}: {what}")
    print(f"scratch space needed: {scratch:,} B (one drill at a time); dry run: nothing restored or recorded")
    return EXIT_OK


def print_result(r) -> None:
    verdict = "PASS" if r.ok else "FAIL"
    rpo = "-" if r.rpo_seconds is None else f"{r.rpo_seconds:.0f}s"
    swarm = "" if r.swarm_seconds is None else f", swarm {r.swarm_seconds:.2f}s"
    print(f"{verdict} {r.torrent_id[:12]} snapshot {r.snapshot[:12] or '-'}: RTO {r.rto_seconds:.2f}s"
          f" (restore {r.restore_seconds:.2f}s, verify {r.verify_seconds:.2f}s, recheck {r.recheck_seconds:.2f}s)"
          f", RPO {rpo}, {r.bytes:,} B{swarm}")
    for path in r.bad_files:
        print(f"  bad file   {path}")
    if r.bad_pieces:
        shown = ", ".join(map(str, r.bad_pieces[:20]))
        more = f" (+{len(r.bad_pieces) - 20} more)" if len(r.bad_pieces) > 20 else ""
        print(f"  bad pieces {shown}{more}")
