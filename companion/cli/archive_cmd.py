"""`seedward archive create|list|prune|restore`: encrypted, self-repairing offsite tiers."""

import sys
from pathlib import Path

from ..archive.create import archive_lock, archive_root, create_set
from ..archive.passphrase import get_passphrase
from ..archive.prune import list_all, prune
from ..archive.remote import Remote
from ..archive.restore import restore_set
from ..archive.tiers import TIERS, RetentionPolicy
from ..errors import EXIT_DAMAGE, EXIT_ERROR, EXIT_OK
from .context import print_json


def register(sub) -> None:
    p = sub.add_parser("archive", help="encrypted offsite tiers (7z volumes + PAR2) to any rclone remote")
    verbs = p.add_subparsers(dest="archive_verb", metavar="VERB", required=True)

    def remote_opts(q):
        q.add_argument("--remote", metavar="DEST", help="rclone destination (name:path or a local path); "
                       "default: [archive] remote in config.toml")
        q.add_argument("--json", action="store_true", help="print one JSON object")

    c = verbs.add_parser("create", help="make an archive set and upload it")
    c.add_argument("--tier", choices=TIERS, required=True)
    c.add_argument("--passphrase-file", metavar="FILE", help="read the passphrase from FILE "
                   "(else $SEEDWARD_ARCHIVE_PASSPHRASE, else the system keyring)")
    c.add_argument("--dry-run", action="store_true", help="show what the set would hold; write nothing")
    remote_opts(c)
    c.set_defaults(func=run_create)

    ls = verbs.add_parser("list", help="list archive sets on the remote and waiting in the outbox")
    remote_opts(ls)
    ls.set_defaults(func=run_list)

    pr = verbs.add_parser("prune", help="promote weeklies, delete expired sets and interrupted uploads")
    pr.add_argument("--dry-run", action="store_true", help="show what would change; change nothing")
    remote_opts(pr)
    pr.set_defaults(func=run_prune)

    rs = verbs.add_parser("restore", help="download, repair, decrypt and verify a set")
    rs.add_argument("set_id", metavar="SET", help="a set id (any unique prefix)")
    rs.add_argument("--to", metavar="DIR", help="where to restore (default: ./SET); must be empty or absent")
    rs.add_argument("--passphrase-file", metavar="FILE")
    rs.add_argument("--drill", action="store_true", help="then recheck each restored payload with libtorrent")
    remote_opts(rs)
    rs.set_defaults(func=run_restore)


def _remote(args, ctx, required: bool = True) -> Remote | None:
    dest = args.remote or ctx.settings.archive.remote
    if not dest and not required:
        return None
    cfg = ctx.settings.archive
    return Remote(dest, cfg.rclone_config, s3_tags=cfg.s3_tags,
                  volume_size=cfg.volume_kb * 1024 if cfg.volume_kb else cfg.volume_mb << 20)


def run_create(args, ctx) -> int:
    passphrase = None if args.dry_run else get_passphrase(args.passphrase_file)
    remote = _remote(args, ctx, required=not args.dry_run)
    with archive_lock(ctx.home):
        result = create_set(home=ctx.home, settings=ctx.settings, catalog=ctx.catalog, manifests=ctx.manifests,
                            store=ctx.store, tier=args.tier, remote=remote, passphrase=passphrase,
                            dry_run=args.dry_run)
    if args.json:
        print_json(result.to_json())
    else:
        what = "would hold" if result.dry_run else "holds"
        print(f"set {result.set_id} ({result.tier}{', promoted: ' + result.promoted if result.promoted else ''}, "
              f"{'full' if result.full else 'incremental'}) {what} {result.members} files, {result.bytes:,} bytes")
        if not result.dry_run:
            g = result.protection
            print(f"  {result.volumes} volumes, PAR2 {result.par2['strategy']} at {result.par2['redundancy']}% "
                  f"({result.par2['size_class']}): repairs any {g['anywhere_volumes']} lost volumes "
                  f"({g['anywhere_percent']}%), any {g['burst_volumes']} in a row, "
                  f"or any {g['anywhere_blocks']} damaged blocks of {g['block_size']:,} B")
        for s in result.skipped:
            print(f"  skipped {s['torrent_id'][:12]}: {s['reason']}")
        for s in result.resumed:
            print(f"  also uploaded {s} (left by an earlier run)")
        if result.uploaded:
            print(f"  uploaded to {result.remote}")
    if result.error:
        print(f"seedward: archive set {result.set_id}: {result.error}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def run_list(args, ctx) -> int:
    sets = list_all(_remote(args, ctx, required=False), ctx.catalog)
    if args.json:
        print_json({"sets": sets})
        return EXIT_OK
    for s in sets:
        prot = s.get("protection") or {}
        print(f"{s['set_id']}  {s['tier']:8} {'full' if s['full'] else 'incr' if s['full'] is not None else '?':4} "
              f"{s['bytes']:>14,} B  keep until {(s['retain_until'] or '-')[:10]}  {s['state']}"
              + (f"  [{s['strategy']}: any {prot.get('anywhere_volumes')} / {prot.get('burst_volumes')} in a row]"
                 if prot else ""))
    return EXIT_OK


def run_prune(args, ctx) -> int:
    with archive_lock(ctx.home):
        report = prune(_remote(args, ctx), ctx.catalog, RetentionPolicy.from_settings(ctx.settings.archive),
                       archive_root(ctx.home) / "scratch", dry_run=args.dry_run)
    if args.json:
        print_json(report)
        return EXIT_OK
    verb = "would " if args.dry_run else ""
    for p in report["promoted"]:
        print(f"{verb}promote {p['set_id']} {p['old_tier']} -> {p['new_tier']} ({p['reason']})")
    for s in report["expired"]:
        print(f"{verb}delete {s['set_id']} ({s['tier']}, expired)")
    for s in report["cleaned"]:
        print(f"{verb}delete {s['set_id']} (interrupted upload)")
    print(f"{len(report['kept'])} sets kept")
    return EXIT_OK


def run_restore(args, ctx) -> int:
    passphrase = get_passphrase(args.passphrase_file)
    to = Path(args.to or args.set_id).absolute()
    result = restore_set(remote=_remote(args, ctx), set_ref=args.set_id, to=to, passphrase=passphrase,
                         work=archive_root(ctx.home) / "restore", catalog=ctx.catalog, drill=args.drill,
                         drill_timeout=ctx.settings.drill.timeout_seconds)
    if args.json:
        print_json(result.to_json())
    else:
        print(f"restored set {result.set_id} ({result.tier}): {result.files} files, {result.bytes:,} bytes to {to}")
        if result.repaired_volumes:
            print(f"  repaired {len(result.repaired_volumes)} damaged volumes with PAR2: {', '.join(result.repaired_volumes)}")
        print(f"  every SHA-256 checked; {result.checked_against_catalog} also against the catalog")
        for d in result.drill:
            print(f"  drill {d['torrent_id'][:12]}: {'ok' if d['ok'] else d.get('why') or 'FAILED'}")
    if any(d["ok"] is False for d in result.drill):
        return EXIT_DAMAGE
    return EXIT_OK
