"""`seedward qbt install-hook|uninstall-hook|login|backup|restore [--instance NAME]`: qBittorrent's "run
external program" settings (companion/hookinstall.py), its login, and its own state (companion/qbtstate.py),
for every configured instance or the one named."""

import sys
from pathlib import Path

from .. import hookinstall
from ..errors import EXIT_ERROR, EXIT_OK, EXIT_QBT, QbtError
from ..instances import pick
from ..qbt import Qbt
from .context import print_json

INSTANCE_HELP = "only this qBittorrent instance ([[instances]] name; default: every configured one)"


def register(sub) -> None:
    p = sub.add_parser("qbt", help="qBittorrent integration")
    verbs = p.add_subparsers(dest="qbt_verb", metavar="VERB", required=True)
    for verb, helptext in (("install-hook", "make qBittorrent tell seedward about added and finished torrents"),
                           ("uninstall-hook", "remove seedward's hook, restoring any program it chained")):
        v = verbs.add_parser(verb, help=helptext)
        v.add_argument("--dry-run", action="store_true", help="show qBittorrent's settings before and after; change nothing")
        v.add_argument("--json", action="store_true", help="print one JSON object")
        v.add_argument("--instance", metavar="NAME", help=INSTANCE_HELP)
        v.set_defaults(func=run_install if verb == "install-hook" else run_uninstall)
    b = verbs.add_parser("backup", help="keep qBittorrent's state (categories, tags, save paths, torrent options, "
                         ".torrent files) in the manifests repo (archive sets carry it)")
    b.add_argument("--dry-run", action="store_true", help="show what would change; write nothing")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.add_argument("--instance", metavar="NAME", help=INSTANCE_HELP)
    b.set_defaults(func=run_backup)
    r = verbs.add_parser("restore", help="re-add the backed-up torrents, categories and tags qBittorrent lacks")
    r.add_argument("--from", dest="source", metavar="DIR", help="a manifests folder (default: this home's "
                   "manifests repo; after `archive restore --to D`, give D/manifests)")
    r.add_argument("--dry-run", action="store_true", help="show what would be added; change nothing")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.add_argument("--instance", metavar="NAME", help=INSTANCE_HELP)
    r.set_defaults(func=run_restore)
    login = verbs.add_parser("login", help="log in to qBittorrent now, with the configured password, even one it "
                             "refused before (the service then reconnects by itself)")
    login.add_argument("--json", action="store_true", help="print one JSON object")
    login.add_argument("--instance", metavar="NAME", help=INSTANCE_HELP)
    login.set_defaults(func=run_login)


def _targets(ctx, args) -> list[tuple]:
    """(QbtSettings, is it the first configured instance) of --instance NAME, or of every instance."""
    every = ctx.settings.qbt_instances()
    return [(st, st is every[0]) for st in pick(ctx.settings, getattr(args, "instance", None))]


def _client(ctx, settings) -> Qbt:
    return Qbt.from_settings(settings, home=ctx.home.ensure(), one_try=True)


def _connect(ctx, settings) -> Qbt:
    qbt = _client(ctx, settings)
    qbt.connect()
    return qbt


def _several(ctx) -> bool:
    return len(ctx.settings.qbt_instances()) > 1


def _per_instance(ctx, args, work) -> tuple[list, list]:
    """work(settings, first) for each target instance: (results, [(instance, error)]). With one
    target a failure is raised (the exit code says what); with several each is tried."""
    targets = _targets(ctx, args)
    if len(targets) == 1:
        return [work(*targets[0])], []
    results, failed = [], []
    for st, first in targets:
        try:
            results.append(work(st, first))
        except QbtError as exc:
            failed.append((st.name, str(exc)))
            print(f"seedward: {st.name}: {exc}", file=sys.stderr)
    return results, failed


def _report(changes: list[dict], args) -> int:
    if args.json:
        print_json({"changes": changes, "dry_run": args.dry_run})
        return EXIT_OK
    if args.dry_run:
        print("dry run: qBittorrent's settings stay as they are; this is what would change")
    several = len({c.get("instance") for c in changes}) > 1
    for c in changes:
        where = f"{c['instance']}: " if several else ""
        if not c["changed"]:
            print(f"{where}on torrent {c['event']}: unchanged" + (f" ({c['note']})" if c.get("note") else ""))
            continue
        print(f"{where}on torrent {c['event']} ({c['setting']}):")
        print(f"  before: {c['before'] or '(none)'}")
        print(f"  after:  {c['after'] or '(none)'}")
        if c.get("chained"):
            print("  your previous program still runs after seedward's hook")
        if c.get("container"):
            print("  (a container's hook: its events wait in the instance's hook_dir/spool for the service)")
        if c.get("note"):
            print(f"  note: {c['note']}")
    return EXIT_OK


def run_install(args, ctx) -> int:
    several = _several(ctx)
    results, failed = _per_instance(ctx, args, lambda st, first: hookinstall.install(
        _connect(ctx, st), ctx.home, st, several=several, first=first, dry_run=args.dry_run))
    code = _report([c for r in results for c in r], args)
    return EXIT_QBT if failed else code


def run_uninstall(args, ctx) -> int:
    results, failed = _per_instance(ctx, args, lambda st, first: hookinstall.uninstall(
        _connect(ctx, st), ctx.home, st, first=first, dry_run=args.dry_run))
    code = _report([c for r in results for c in r], args)
    return EXIT_QBT if failed else code


def run_login(args, ctx) -> int:
    """One login attempt now, whatever was refused before (qBittorrent's ban window still bounds the
    failures). Success clears the instance's login record: a running service sees it and reconnects."""
    def login(st, _first):
        qbt = _client(ctx, st)
        qbt.retry_login()
        version = qbt.connect()
        return {"instance": st.name, "url": qbt.url, "username": qbt.username, "version": version, "logged_in": True}

    results, failed = _per_instance(ctx, args, login)
    if args.json:
        print_json(results[0] if len(results) == 1 and not failed else
                   {"instances": results + [{"instance": n, "logged_in": False, "error": e} for n, e in failed]})
    else:
        for r in results:
            print(f"logged in to qBittorrent {r['version']} at {r['url']} as {r['username']!r}"
                  + (f" ({r['instance']})" if _several(ctx) else "") + "; a running service reconnects by itself "
                  "within a few seconds")
    return EXIT_QBT if failed else EXIT_OK


def _folder(st, first: bool) -> str:
    from .. import qbtstate

    return qbtstate.folder_for(st.name, first)


def run_backup(args, ctx) -> int:
    from .. import qbtstate

    def backup(st, first):
        result = qbtstate.backup(_connect(ctx, st), ctx.manifests, kept_torrents=ctx.home.torrents,
                                 dry_run=args.dry_run, folder=_folder(st, first))
        return st.name, result

    results, failed = _per_instance(ctx, args, backup)
    if args.json:
        docs = [dict(r.to_json(), instance=name) for name, r in results]
        print_json(docs[0] if len(docs) == 1 and not failed else {"instances": docs})
        return EXIT_QBT if failed else EXIT_OK
    verb = "would write" if args.dry_run else "wrote"
    for name, result in results:
        where = f"{name}: " if _several(ctx) else ""
        print(f"{where}qBittorrent state: {result.torrents} torrents, {result.categories} categories, {result.tags} tags")
        if result.changed:
            print(f"  {verb} {len(result.changed)} documents in the manifests repo"
                  + (f" (commit {result.commit[:12]})" if result.commit else ""))
        else:
            print("  unchanged since the last backup")
    return EXIT_QBT if failed else EXIT_OK


def run_restore(args, ctx) -> int:
    from .. import qbtstate

    root = Path(args.source).absolute() if args.source else ctx.manifests.path

    def restore(st, first):
        state = qbtstate.load(root, folder=_folder(st, first))
        return st.name, qbtstate.restore(_connect(ctx, st), state, dry_run=args.dry_run)

    results, failed = _per_instance(ctx, args, restore)
    reports = [dict(r.to_json(), instance=name) for name, r in results]
    if args.json:
        print_json(reports[0] if len(reports) == 1 and not failed else {"instances": reports})
    else:
        for r in reports:
            if _several(ctx):
                print(f"{r['instance']}:")
            print_restore_report(r)
    return EXIT_QBT if failed else EXIT_ERROR if any(r["failed"] for r in reports) else EXIT_OK


def print_restore_report(r: dict) -> None:
    verb = "would " if r["dry_run"] else ""
    for name in r["categories_created"]:
        print(f"{verb}create category {name}")
    if r["tags_created"]:
        print(f"{verb}create tags {', '.join(r['tags_created'])}")
    for a in r["added"]:
        note = f"; {a['note']}" if a.get("note") else ""
        print(f"{verb}add {a['name']} at {a['save_path']} (hash check: {a['checked_by']}"
              f"{', stopped' if a['stopped'] else ''}{note})")
    for h in r["present"]:
        print(f"{h[:12]}: already in qBittorrent, left alone")
    for f in r["failed"]:
        print(f"{f['name'] or f['hash'][:12]}: not added: {f['error']}")
