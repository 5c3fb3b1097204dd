"""`seedward archive create|list|prune|restore`: encrypted, self-repairing offsite tiers.

The archive modules (7z, PAR2, rclone, GitPython) are imported by the verb that runs: `seedward
--help` and every other command start without them."""

import sys
from pathlib import Path

from ..archive.errors import EXIT_REMOTE, NoRemote, SetNotFound
from ..archive.tiers import TIERS, RetentionPolicy
from ..catalog import archives as records
from ..errors import EXIT_DAMAGE, EXIT_ERROR, EXIT_OK
from . import timefmt
from .context import print_json


def register(sub) -> None:
    p = sub.add_parser("archive", help="encrypted offsite tiers (7z volumes + PAR2) to any rclone remote")
    verbs = p.add_subparsers(dest="archive_verb", metavar="VERB", required=True)

    def remote_opts(q, default: str = "default: [archive] remote in config.toml"):
        q.add_argument("--remote", metavar="DEST", help=f"rclone destination (name:path or a local path); {default}")
        q.add_argument("--json", action="store_true", help="print one JSON object")

    c = verbs.add_parser("create", help="make an archive set and upload it")
    c.add_argument("--tier", choices=TIERS, required=True, help="which tier the set belongs to (its retention)")
    c.add_argument("--passphrase-file", metavar="FILE", help="read the passphrase from FILE "
                   "(else $SEEDWARD_ARCHIVE_PASSPHRASE, else [archive] passphrase_file, else the system keyring)")
    c.add_argument("--dry-run", action="store_true", help="show what the set would hold; write nothing")
    remote_opts(c)
    c.set_defaults(func=run_create)

    ls = verbs.add_parser("list", help="list archive sets: on the remote, or the ones this state home made")
    remote_opts(ls, "default: [archive] remote; without one, the sets recorded in the catalog")
    ls.set_defaults(func=run_list)

    pr = verbs.add_parser("prune", help="promote weeklies, delete expired sets and interrupted uploads")
    pr.add_argument("--dry-run", action="store_true", help="show what would change; change nothing")
    remote_opts(pr)
    pr.set_defaults(func=run_prune)

    rs = verbs.add_parser("restore", help="download, repair, decrypt and verify a set")
    rs.add_argument("set_id", metavar="SET", help="a set id (any unique prefix)")
    rs.add_argument("--to", metavar="DIR", help="where to restore (default: ./SET); must be empty or absent")
    rs.add_argument("--passphrase-file", metavar="FILE", help="read the passphrase from FILE (else "
                    "$SEEDWARD_ARCHIVE_PASSPHRASE, else [archive] passphrase_file, else the system keyring)")
    rs.add_argument("--drill", action="store_true", help="then recheck each restored payload with libtorrent")
    rs.add_argument("--into-qbittorrent", action="store_true",
                    help="then add every restored torrent to qBittorrent at its restored payload, with its category, "
                    "tags and options from the set's qBittorrent state")
    remote_opts(rs, "default: the remote the catalog recorded for the set, else [archive] remote")
    rs.set_defaults(func=run_restore)


def _remote(args, ctx, required: bool = True, dest: str = ""):
    """The archive.remote.Remote to use (None: none configured and none required)."""
    from ..archive.remote import Remote

    dest = args.remote or dest or ctx.settings.archive.remote
    if not dest and not required:
        return None
    if not dest:
        raise NoRemote("give --remote NAME:PATH or set [archive] remote in config.toml")
    cfg = ctx.settings.archive
    return Remote(dest, cfg.rclone_config, s3_tags=cfg.s3_tags,
                  volume_size=cfg.volume_kb * 1024 if cfg.volume_kb else cfg.volume_mb << 20)


def _passphrase(args, ctx) -> str:
    from ..archive.passphrase import get_passphrase

    return get_passphrase(args.passphrase_file, configured=ctx.settings.archive.passphrase_file)


def run_create(args, ctx) -> int:
    from ..archive.create import archive_lock, create_set

    passphrase = None if args.dry_run else _passphrase(args, ctx)
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
        print("  " + protection_line(result.volumes, result.par2, result.protection, estimate=result.dry_run))
        print("  " + repairs_line(result.protection))
        if result.locked_until:
            print(f"  immutable (S3 Object Lock) until {timefmt.local(result.locked_until)}")
        for s in result.skipped:
            print(f"  skipped {s['torrent_id'][:12]}: {s['reason']}")
        for s in result.resumed:
            print(f"  also uploaded {s} (left by an earlier run)")
        if result.uploaded:
            print(f"  uploaded to {result.remote}")
    if result.error:  # built, the upload failed: the set waits in the outbox
        print(f"seedward: archive set {result.set_id}: {result.error}", file=sys.stderr)
        return EXIT_REMOTE
    return EXIT_OK


def protection_line(volumes: int, par2: dict, g: dict, estimate: bool = False) -> str:
    about = "about " if estimate else ""
    return (f"{about}{volumes} volumes, PAR2 {par2['strategy']} for the {par2['size_class']} {par2['redundancy']}% "
            f"class: {about}{g['par2_bytes']:,} B of PAR2 = {g['overhead_percent']}% of the volumes"
            f"{' (if nothing compresses)' if estimate else ''}")


def repairs_line(g: dict) -> str:
    blocks = f"{g['anywhere_blocks']} damaged blocks of {g['block_size']:,} B ({_size(g['anywhere_bytes'])})"
    if g["anywhere_volumes"] == 0:
        why = "it is one volume" if g["volumes"] == 1 else "a volume holds more blocks than the recovery data"
        return f"repairs any {blocks} anywhere; not a whole lost volume ({why})"
    plural = "s" if g["anywhere_volumes"] > 1 else ""
    return (f"repairs any {g['anywhere_volumes']} lost volume{plural} ({g['anywhere_percent']}%), "
            f"any {g['burst_volumes']} in a row, or any {blocks}")


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def run_list(args, ctx) -> int:
    from ..archive.prune import list_all

    remote = _remote(args, ctx, required=False)
    sets = list_all(remote, ctx.catalog)
    note = "" if remote else ("no remote configured ([archive] remote or --remote): listing the sets this state home "
                              "made, from its catalog" if sets else
                              "no remote configured ([archive] remote or --remote), and this state home made no set")
    if remote and not sets:  # say it: an empty answer must not look like a typo'd path that holds sets
        missing = remote.folder_path is not None and not remote.folder_path.exists()
        note = f"no sets on {remote.dest}" + (" (no such folder)" if missing else "")
    if args.json:
        print_json({"remote": remote.dest if remote else None, "note": note or None, "sets": sets})
        return EXIT_OK
    if note:
        print(note)
    for s in sets:
        prot = s.get("protection") or {}
        stored = s.get("as_stored") or {}
        kind = "full" if s["full"] else "incr" if s["full"] is not None else "?"
        line = (f"{s['set_id']}  {s['tier']:8} {kind:4} {s['bytes'] or 0:>14,} B  "
                f"keep until {timefmt.local_date(s['retain_until'])}  {s['state']}")
        if s.get("locked_until"):
            line += f"  locked until {timefmt.local_date(s['locked_until'])}"
        if not remote and s.get("remote"):
            line += f"  on {s['remote']}"
        if prot:
            line += (f"  [PAR2 {stored.get('overhead_percent', prot.get('overhead_percent'))}%: any "
                     f"{prot.get('anywhere_volumes')} lost volumes or {prot.get('anywhere_blocks')} blocks]")
        print(line)
    return EXIT_OK


def run_prune(args, ctx) -> int:
    from ..archive.create import archive_lock, archive_root
    from ..archive.prune import prune

    with archive_lock(ctx.home):
        report = prune(_remote(args, ctx), ctx.catalog, RetentionPolicy.from_settings(ctx.settings.archive),
                       archive_root(ctx.home) / "scratch", dry_run=args.dry_run, settings=ctx.settings.archive)
    if args.json:
        print_json(report)
        return EXIT_OK
    verb = "would " if args.dry_run else ""
    for p in report["promoted"]:
        print(f"{verb}promote {p['set_id']} {p['old_tier']} -> {p['new_tier']} ({p['reason']})")
    for s in report["expired"]:
        print(f"{verb}delete {s['set_id']} ({s['tier']}, expired)")
    for s in report["cleaned"]:
        print(f"{verb}delete {s['set_id']} ({s.get('why', 'interrupted upload')})")
    for s in report["locked"]:
        print(f"keep {s['set_id']} ({s['tier']}): locked until {timefmt.local(s['locked_until'])}")
    print(f"{len(report['kept'])} sets kept")
    return EXIT_OK


def _recorded_remote(ctx, set_ref: str) -> str:
    """The remote the catalog recorded for the set (restore without --remote)."""
    rows = records.find_sets(ctx.catalog, set_ref)
    if not rows and not ctx.settings.archive.remote:
        raise SetNotFound(set_ref, "in this state home's catalog, and no remote is configured to look on "
                          "(give --remote DEST)")
    if len({r["set_id"] for r in rows}) > 1:
        raise SetNotFound(set_ref, f"in the catalog: it matches {len(rows)} sets, give more of its id")
    if rows and rows[0]["state"] == "local":
        raise SetNotFound(set_ref, f"on any remote yet: its upload has not happened, it waits in {rows[0]['local_path']} "
                          "(the next `archive create` uploads it)")
    return rows[0]["remote"] if rows else ""


def run_restore(args, ctx) -> int:
    from ..archive.create import archive_root
    from ..archive.restore import restore_set

    passphrase = _passphrase(args, ctx)
    to = Path(args.to or args.set_id).absolute()
    remote = _remote(args, ctx, dest="" if args.remote else _recorded_remote(ctx, args.set_id))
    result = restore_set(remote=remote, set_ref=args.set_id, to=to, passphrase=passphrase,
                         work=archive_root(ctx.home) / "restore", catalog=ctx.catalog, drill=args.drill,
                         drill_timeout=ctx.settings.drill.timeout_seconds, sevenzip=ctx.settings.archive.sevenzip)
    if args.into_qbittorrent:
        result.qbittorrent = into_qbittorrent(ctx, to, result)
    if args.json:
        print_json(result.to_json())
    else:
        print(f"restored set {result.set_id} ({result.tier}) from {result.remote}: {result.files} files, "
              f"{result.bytes:,} bytes, {result.torrent_files} .torrent files to {to}")
        if result.repaired_volumes:
            print(f"  repaired {len(result.repaired_volumes)} damaged volumes with PAR2: {', '.join(result.repaired_volumes)}")
        print(f"  every SHA-256 checked; {result.checked_against_catalog} also against the catalog")
        for d in result.drill:
            print(f"  drill {d['torrent_id'][:12]}: {'ok' if d['ok'] else d.get('why') or 'FAILED'}")
        if result.qbittorrent is not None:
            from .qbt_cmd import print_restore_report

            print_restore_report(result.qbittorrent)
    if any(d["ok"] is False for d in result.drill):
        return EXIT_DAMAGE
    if result.qbittorrent and result.qbittorrent["failed"]:
        return EXIT_ERROR
    return EXIT_OK


def into_qbittorrent(ctx, to: Path, result) -> dict:
    """Add the restored torrents to qBittorrent at to/payload/<hash>, with the set's qBittorrent
    state (categories, tags, options); no hash check where the drill or a scan just verified it.
    Several instances: each torrent goes back to the instance whose backup in the set has it, the
    others to the first instance."""
    from .. import qbtstate
    from ..qbt import Qbt

    state_root = to / "manifests"
    verified = {d["torrent_id"] for d in result.drill if d["ok"]}
    left = list(result.torrents)
    merged: dict = {}
    for n, st in enumerate(ctx.settings.qbt_instances()):
        folder = qbtstate.folder_for(st.name, n == 0)
        if (state_root / folder / "state.json").is_file():
            state = qbtstate.load(state_root, folder)
        else:
            state = {"categories": {}, "tags": [], "torrents": {}}
        mine = [tid for tid in left if tid in state["torrents"]]
        if n == 0:
            for tid in left:  # a torrent no backup knows is added plainly, to the first instance
                raw = to / "torrents" / f"{tid}.torrent"
                if tid not in state["torrents"] and raw.is_file() and not _in_other_backup(state_root, ctx, tid):
                    state["torrents"][tid] = qbtstate.bare_document(tid, raw.read_bytes())
                    mine.append(tid)
        if not mine:
            continue
        qbt = Qbt.from_settings(st, home=ctx.home.ensure(), one_try=True)
        qbt.connect()
        report = qbtstate.restore(qbt, state, only=mine, save_paths={tid: str(to / "payload" / tid) for tid in mine},
                                  verified=verified).to_json()
        left = [tid for tid in left if tid not in mine]
        for key, value in report.items():
            merged[key] = merged.get(key, []) + value if isinstance(value, list) else value
    return merged or qbtstate.RestoreReport(dry_run=False).to_json()


def _in_other_backup(state_root: Path, ctx, tid: str) -> bool:
    from .. import qbtstate

    return any((state_root / qbtstate.torrent_relpath(tid, qbtstate.folder_for(st.name, False))).is_file()
               for st in ctx.settings.qbt_instances()[1:])
