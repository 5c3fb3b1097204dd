"""`seedward qbt install-hook|uninstall-hook|login|backup|restore`: qBittorrent's "run external program"
settings, its login, and its own state (companion/qbtstate.py)."""

import json
import shutil
import sys
from pathlib import Path

from ..errors import EXIT_ERROR, EXIT_OK, BadInput
from ..manifests import atomic_write
from ..qbt import Qbt
from .context import print_json

# qBittorrent preference keys: (enabled, program) per hook event.
PREFS = {
    "added": ("autorun_on_torrent_added_enabled", "autorun_on_torrent_added_program"),
    "finished": ("autorun_enabled", "autorun_program"),
}
MARK = "seedward-hook"


def register(sub) -> None:
    p = sub.add_parser("qbt", help="qBittorrent integration")
    verbs = p.add_subparsers(dest="qbt_verb", metavar="VERB", required=True)
    for verb, helptext in (("install-hook", "make qBittorrent tell seedward about added and finished torrents"),
                           ("uninstall-hook", "remove seedward's hook, restoring any program it chained")):
        v = verbs.add_parser(verb, help=helptext)
        v.add_argument("--json", action="store_true")
        v.set_defaults(func=run_install if verb == "install-hook" else run_uninstall)
    b = verbs.add_parser("backup", help="keep qBittorrent's state (categories, tags, save paths, torrent options, "
                         ".torrent files) in the manifests repo (archive sets carry it)")
    b.add_argument("--dry-run", action="store_true", help="show what would change; write nothing")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=run_backup)
    r = verbs.add_parser("restore", help="re-add the backed-up torrents, categories and tags qBittorrent lacks")
    r.add_argument("--from", dest="source", metavar="DIR", help="a manifests folder (default: this home's "
                   "manifests repo; after `archive restore --to D`, give D/manifests)")
    r.add_argument("--dry-run", action="store_true", help="show what would be added; change nothing")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=run_restore)
    login = verbs.add_parser("login", help="log in to qBittorrent now, with the configured password, even one it "
                             "refused before (the service then reconnects by itself)")
    login.add_argument("--json", action="store_true")
    login.set_defaults(func=run_login)


def hook_executable() -> str:
    beside = Path(sys.executable).parent / "seedward-hook"
    found = str(beside) if beside.exists() else shutil.which("seedward-hook")
    if not found:
        raise BadInput("seedward-hook", "not found next to seedward or on PATH; reinstall seedward")
    return found


def _quoted(value: str, what: str) -> str:
    if '"' in value:
        raise BadInput(value, f"{what} must not contain a double quote (qBittorrent splits the command on quotes)")
    return f'"{value}"'


def hook_program(exe: str, home: Path, event: str, previous: str = "") -> str:
    program = (f'{_quoted(exe, "the hook path")} --home {_quoted(str(home), "the state home")} {event} '
               '"%I" "%J" "%N" "%D" "%F"')
    return f"{program} -- {previous}" if previous else program


def _connect(ctx) -> Qbt:
    qbt = Qbt.from_settings(ctx.settings.qbittorrent, home=ctx.home.ensure())
    qbt.connect()
    return qbt


def _saved_path(ctx) -> Path:
    return ctx.home.root / "hook.json"


def install(ctx) -> list[dict]:
    ctx.home.ensure()
    qbt = _connect(ctx)
    prefs = qbt.preferences()
    saved_file = _saved_path(ctx)
    saved = json.loads(saved_file.read_text()) if saved_file.exists() else {}
    exe = hook_executable()
    new, changes = {}, []
    for event, (enabled_key, program_key) in PREFS.items():
        if program_key not in prefs:
            changes.append({"event": event, "changed": False, "note": f"this qBittorrent ({qbt.version}) has no "
                            f"'run on torrent {event}' setting"})
            continue
        old_program, old_enabled = prefs[program_key] or "", bool(prefs.get(enabled_key))
        if MARK in old_program:
            previous = (saved.get(event) or {}).get("program", "") if (saved.get(event) or {}).get("enabled") else ""
        else:
            saved[event] = {"enabled": old_enabled, "program": old_program}
            previous = old_program if old_enabled and old_program.strip() else ""
        program = hook_program(exe, ctx.home.root, event, previous)
        if program != old_program or not old_enabled:
            new[enabled_key], new[program_key] = True, program
        changes.append({"event": event, "changed": program != old_program or not old_enabled, "setting": program_key,
                        "before": old_program if old_enabled else "", "after": program, "chained": previous})
    atomic_write(saved_file, (json.dumps(saved, indent=2) + "\n").encode())
    if new:
        qbt.set_preferences(new)
    return changes


def uninstall(ctx) -> list[dict]:
    qbt = _connect(ctx)
    prefs = qbt.preferences()
    saved_file = _saved_path(ctx)
    saved = json.loads(saved_file.read_text()) if saved_file.exists() else {}
    new, changes = {}, []
    for event, (enabled_key, program_key) in PREFS.items():
        current = prefs.get(program_key) or ""
        if MARK not in current:
            changes.append({"event": event, "changed": False, "setting": program_key, "before": current,
                            "after": current})
            continue
        restore = saved.get(event)
        if restore is None:  # no record: the chained part is what the user had
            rest = current.split(" -- ", 1)[1] if " -- " in current else ""
            restore = {"enabled": bool(rest), "program": rest}
        new[enabled_key], new[program_key] = bool(restore["enabled"]), restore["program"]
        changes.append({"event": event, "changed": True, "setting": program_key, "before": current,
                        "after": restore["program"] if restore["enabled"] else ""})
    if new:
        qbt.set_preferences(new)
    saved_file.unlink(missing_ok=True)
    return changes


def _report(changes: list[dict], args) -> int:
    if args.json:
        print_json({"changes": changes})
        return EXIT_OK
    for c in changes:
        if not c["changed"]:
            print(f"on torrent {c['event']}: unchanged" + (f" ({c['note']})" if c.get("note") else ""))
            continue
        print(f"on torrent {c['event']} ({c['setting']}):")
        print(f"  before: {c['before'] or '(none)'}")
        print(f"  after:  {c['after'] or '(none)'}")
        if c.get("chained"):
            print("  your previous program still runs after seedward's hook")
    return EXIT_OK


def run_install(args, ctx) -> int:
    return _report(install(ctx), args)


def run_uninstall(args, ctx) -> int:
    return _report(uninstall(ctx), args)


def run_login(args, ctx) -> int:
    """One login attempt now, whatever was refused before (qBittorrent's ban window still bounds the
    failures). Success clears the shared login record: a running service sees it and reconnects."""
    qbt = Qbt.from_settings(ctx.settings.qbittorrent, home=ctx.home.ensure())
    qbt.retry_login()
    version = qbt.connect()
    if args.json:
        print_json({"url": qbt.url, "username": qbt.username, "version": version, "logged_in": True})
    else:
        print(f"logged in to qBittorrent {version} at {qbt.url} as {qbt.username!r}; a running service "
              "reconnects by itself within a few seconds")
    return EXIT_OK


def run_backup(args, ctx) -> int:
    from .. import qbtstate

    result = qbtstate.backup(_connect(ctx), ctx.manifests, kept_torrents=ctx.home.torrents, dry_run=args.dry_run)
    if args.json:
        print_json(result.to_json())
        return EXIT_OK
    verb = "would write" if args.dry_run else "wrote"
    print(f"qBittorrent state: {result.torrents} torrents, {result.categories} categories, {result.tags} tags")
    if result.changed:
        print(f"  {verb} {len(result.changed)} documents in the manifests repo"
              + (f" (commit {result.commit[:12]})" if result.commit else ""))
    else:
        print("  unchanged since the last backup")
    return EXIT_OK


def run_restore(args, ctx) -> int:
    from .. import qbtstate

    state = qbtstate.load(Path(args.source).absolute() if args.source else ctx.manifests.path)
    report = qbtstate.restore(_connect(ctx), state, dry_run=args.dry_run)
    if args.json:
        print_json(report.to_json())
    else:
        print_restore_report(report.to_json())
    return EXIT_ERROR if report.failed else EXIT_OK


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
