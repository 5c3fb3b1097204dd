"""`seedward snapshot ID|--all`: snapshot payloads into the store."""

from ..errors import EXIT_OK, Error, NotFound
from ..ladder.wants import full_snapshot_refused
from ..locate import catalog_meta
from .context import print_json


def register(sub) -> None:
    p = sub.add_parser("snapshot", help="snapshot a torrent's payload into the store")
    p.add_argument("id", nargs="?", metavar="ID", help="any unique prefix of an info hash")
    p.add_argument("--all", action="store_true",
                   help="every cataloged torrent whose protection policy asks for snapshots (size cap included)")
    p.add_argument("--reason", choices=("manual", "auto", "preflight"), default="manual",
                   help="why, recorded with the snapshot (default manual)")
    p.add_argument("--dry-run", action="store_true", help="say which torrents would be snapshotted; read and write nothing")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def torrent_and_path(ctx, torrent_id: str):
    """(TorrentMeta, save path) of a cataloged torrent."""
    row = ctx.catalog.get_torrent(torrent_id)
    if row is None:
        raise NotFound(f"no torrent {torrent_id} in the catalog")
    if not row["torrent_file"] or not row["save_path"]:
        raise NotFound(f"{row['name']} ({torrent_id[:12]}): the catalog has no .torrent or save path for it")
    return catalog_meta(ctx.catalog, torrent_id)  # qBittorrent's renames applied


def run(args, ctx) -> int:
    if args.all == bool(args.id):
        raise Error("give a torrent ID or --all (not both)")
    skipped = []
    if args.all:
        ids = []
        for r in ctx.catalog.list_torrents(include_removed=False):
            why = skip_reason(ctx.settings, r, ctx.catalog)
            if why:
                skipped.append({"id": r["id"], "reason": why})
            else:
                ids.append(r["id"])
    else:
        ids = [ctx.catalog.resolve_id(args.id)]  # asked for by name: taken whatever the policy
    if args.dry_run:
        return dry_run(args, ctx, ids, skipped)
    store = ctx.store
    done, failed, code = [], [], EXIT_OK
    for tid in ids:
        try:
            meta, save_path = torrent_and_path(ctx, tid)
            with ctx.progress.bar(f"snapshot {meta.name}", meta.payload_size) as bar:
                snap = store.snapshot(meta, save_path, args.reason, progress=bar)
        except Error as exc:
            if not args.all:
                raise
            failed.append({"id": tid, "error": str(exc)})
            code = max(code, exc.exit_code)
            continue
        done.append(snap)
    if args.json:
        print_json({"snapshots": [s.to_json() for s in done], "failed": failed, "skipped": skipped})
        return code
    for s in done:
        trusted = f", {s.trusted_bytes:,} copied on the catalog's verification" if s.trusted_bytes else ""
        print(f"snapshot {s.id[:12]}  {s.name}: {s.files} files, {s.bytes:,} bytes ({s.new_bytes:,} new{trusted})")
    for f in failed:
        print(f"failed    {f['id'][:12]}  {f['error']}")
    for k in skipped:
        print(f"skipped   {k['id'][:12]}  {k['reason']}")
    return code


def dry_run(args, ctx, ids: list[str], skipped: list[dict]) -> int:
    """What `snapshot` would take: each torrent's cataloged files and bytes (unchanged files then
    cost stat calls only: the store says how many bytes were new once it has run)."""
    would = []
    for tid in ids:
        row = ctx.catalog.get_torrent(tid)
        files = ctx.catalog.get_files(tid)
        would.append({"id": tid, "name": row["name"], "files": len(files), "bytes": sum(f["size"] for f in files)})
    if args.json:
        print_json({"dry_run": True, "would_snapshot": would, "skipped": skipped})
        return EXIT_OK
    for w in would:
        print(f"would snapshot {w['id'][:12]}  {w['name']}: {w['files']} files, {w['bytes']:,} bytes")
    for k in skipped:
        print(f"skipped        {k['id'][:12]}  {k['reason']}")
    print("(dry run: nothing read or written)")
    return EXIT_OK


def skip_reason(settings, row, catalog) -> str | None:
    """Why --all leaves a torrent out: its state, or its protection policy (level, size cap)."""
    if row["protection"] in ("removed", "excluded", "baseline_bad"):
        return f"protection state {row['protection']}"
    return full_snapshot_refused(catalog, settings, row)  # level snapshot, or auto for a small torrent
