"""`seedward restore ID [--snapshot S] [--files PATH...] [--to DIR] [--dry-run] [--json]`.

With --to: the snapshot's files are written under DIR, laid out as the torrent does. Without:
in place, only the damaged pieces (found by a quick verify against the catalog's baseline, which
is always the torrent's own bytes) are written back from the snapshot, with the drifted bytes
kept in the quarantine folder; qBittorrent stops the torrent, rechecks it when sizes changed and
starts it again (queued in the catalog when it does not answer: the service carries it out).
Through the service when it runs (companion/drift/restore.py). --dry-run only shows the damage.
"""

import sys
from pathlib import Path

from ..errors import EXIT_DAMAGE, EXIT_OK, NotFound, QbtError, ServiceNotRunning
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
        return _restore_to(args, store, snap, ctx.progress)
    # In place, the newest snapshot holding the damaged pieces is used unless one is named.
    report = _in_place(args, ctx, tid, snap.id if args.snapshot else None, store)
    if args.json:
        print_json(report)
    else:
        _print(report)
    if report["outcome"] in ("intact", "healed") or report["dry_run"]:
        return EXIT_OK
    return report.get("exit_code") or EXIT_DAMAGE


def _in_place(args, ctx, tid: str, snapshot_id: str, store) -> dict:
    """Through the service, else locally (with qBittorrent when it answers)."""
    from ..control import request

    try:
        report = request(ctx.home, "restore", timeout=3600, id=tid, snapshot=snapshot_id, files=args.files,
                         dry_run=args.dry_run)
        report["via"] = "service"
        return report
    except ServiceNotRunning:
        pass
    from ..drift.respond import Responder
    from ..drift.restore import restore_in_place

    qbt = None if args.dry_run else _qbt(ctx.settings)
    responder = Responder(ctx.catalog, ctx.settings, ctx.home.ensure().quarantine, qbt=qbt,
                          read_chunk=store.read_chunk, recheck_timeout=ctx.settings.drift.recheck_timeout_seconds)
    if responder.steps is not None:
        responder.steps.live = qbt.torrent  # no sync loop here: ask qBittorrent itself
    report = restore_in_place(ctx.catalog, responder, tid, snapshot_id=snapshot_id, files=args.files,
                              dry_run=args.dry_run)
    report["via"] = "local" if qbt is not None else "local, without qBittorrent"
    return report


def _qbt(settings):
    from ..instances import connect

    try:
        return connect(settings)  # every instance holding the torrent is stopped, rechecked, started
    except QbtError as exc:
        print(f"seedward: {exc}; writing back without qBittorrent (its stop, recheck and start wait in the catalog "
              "for the service)", file=sys.stderr)
        return None


def _print(r: dict) -> None:
    snap = (r.get("snapshot") or "")[:12]
    if r["outcome"] == "intact":
        print(f"{r['name']}: intact, nothing to restore")
        return
    for path, kind in r["files"].items():
        print(f"  {kind:13} {path}")
    if r["dry_run"]:
        print(f"{r['name']}: would write back pieces {r['pieces'][:20]} from snapshot {snap}")
    elif r["outcome"] == "healed":
        steps = ", ".join(f"{k} {v:.2f}s" for k, v in r.get("timings", {}).items() if isinstance(v, (int, float)))
        print(f"{r['name']}: wrote back {len(r['pieces'])} pieces ({r['bytes_written']:,} bytes) from snapshot {snap}"
              f" [{steps}] ({r['via']}); qBittorrent: {r.get('qbittorrent')}")
        print(f"  drifted bytes kept in {r['quarantine']}")
    else:
        print(f"{r['name']}: not restored, nothing written: {r.get('error') or r['outcome']}", file=sys.stderr)


def _restore_to(args, store, snap, progress) -> int:
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
    total = sum(r["size"] for r in store.select_files(snap.id, args.files))
    with progress.bar(f"restoring {snap.name}", total) as bar:
        result = store.restore(snap.id, dest, files=args.files, progress=bar.advance)
    if args.json:
        print_json(result.to_json())
        return EXIT_OK
    print(f"restored {len(result.files)} files ({result.bytes:,} bytes) from snapshot {snap.id[:12]} to {dest}"
          f" in {result.seconds:.2f}s")
    return EXIT_OK
