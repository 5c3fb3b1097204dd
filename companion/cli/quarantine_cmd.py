"""`seedward quarantine list|show|export|purge`: the drifted bytes heals kept.

  list [ID] [--json]                     every entry (ID: only this torrent's), oldest first
  show ENTRY [--json]                    what each file kept (whole file, link, changed ranges)
  export ENTRY DEST [--file PATH] [--json]
                                         rebuild the drifted files under DEST (the tagger's version)
  purge [ENTRY...] [--older-than DAYS] [--dry-run] [--json]
                                         remove entries; with no ENTRY, the [quarantine] expiry
"""

from datetime import datetime, timezone

from ..errors import EXIT_OK, BadInput
from ..errors import human_bytes as _size
from . import timefmt
from .context import print_json


def register(sub) -> None:
    p = sub.add_parser("quarantine", help="list, show, export (rebuild) or purge the drifted bytes heals kept")
    verbs = p.add_subparsers(dest="quarantine_verb", metavar="VERB", required=True)
    ls = verbs.add_parser("list", help="every quarantine entry, oldest first")
    ls.add_argument("id", nargs="?", metavar="ID", help="only this torrent's (any unique prefix of its hash)")
    show = verbs.add_parser("show", help="what an entry kept, file by file")
    show.add_argument("entry", metavar="ENTRY", help="an entry id (or unique prefix), or a torrent id with one entry")
    export = verbs.add_parser("export", help="rebuild the drifted files (kept ranges over the torrent's own bytes)")
    export.add_argument("entry", metavar="ENTRY", help="an entry id (or unique prefix)")
    export.add_argument("dest", metavar="DEST", help="folder to write them under (existing files are never replaced)")
    export.add_argument("--file", action="append", metavar="PATH", help="only this file of the entry (repeatable)")
    export.add_argument("--dry-run", action="store_true", help="say which files would be written; write nothing")
    purge = verbs.add_parser("purge", help="remove entries (none named: what [quarantine] keep_days/max_mb expire)")
    purge.add_argument("entries", nargs="*", metavar="ENTRY", help="entry ids (or unique prefixes) to remove")
    purge.add_argument("--older-than", type=float, metavar="DAYS", help="remove the entries older than DAYS")
    purge.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    for q in (ls, show, export, purge):
        q.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    ctx.settings  # a bad config.toml is an error in every verb, before anything is read or removed
    return {"list": _list, "show": _show, "export": _export, "purge": _purge}[args.quarantine_verb](args, ctx)


def _root(ctx):
    return ctx.home.ensure().quarantine


def _list(args, ctx) -> int:
    from .. import quarantine

    tid = ctx.catalog.resolve_id(args.id) if args.id else None
    found = quarantine.entries(_root(ctx), ctx.catalog, tid)
    if args.json:
        print_json({"entries": [e.to_json() for e in found], "bytes": sum(e.bytes for e in found)})
        return EXIT_OK
    if not found:
        print("the quarantine is empty")
        return EXIT_OK
    keep = ctx.settings.quarantine.keep_days
    for e in found:
        kinds = ", ".join(sorted({f.get("kind", "?") for f in e.files}))
        expires = "" if keep <= 0 else f"  expires {(e.created_at.timestamp() + keep * 86400 - _now()) / 86400:.0f} d"
        print(f"{e.id}  {e.name[:40]:40}  {len(e.files)} file(s): {kinds}  {_size(e.bytes)}"
              f"  {e.heal.get('outcome', '-')}{expires}")
    print(f"{len(found)} entries, {_size(sum(e.bytes for e in found))}")
    return EXIT_OK


def _show(args, ctx) -> int:
    from .. import quarantine

    entry = quarantine.find(_root(ctx), args.entry, ctx.catalog)
    doc = entry.to_json()
    if args.json:
        print_json(doc)
        return EXIT_OK
    print(f"{entry.id}: {entry.name} (torrent {entry.torrent_id})")
    print(f"  kept {timefmt.local(entry.created_at)} in {entry.folder}, {_size(entry.bytes)}")
    if entry.heal:
        h = entry.heal
        print(f"  heal {h['id']}: {h['outcome']} from {h['source'] or '-'}"
              + (f" (snapshot {h['snapshot'][:12]})" if h.get("snapshot") else ""))
    for f in doc["files"]:
        print(f"  {f['path']}: {f.get('kind', '?')}; kept {f.get('kept', '?')}")
        for r in f.get("ranges", [])[:20]:
            print(f"      bytes {r['offset']:,}..{r['offset'] + r['length']:,} ({_size(r['length'])})")
        if len(f.get("ranges", [])) > 20:
            print(f"      ... {len(f['ranges']) - 20} more ranges")
        if not f["exportable"]:
            print("      nothing to export")
    return EXIT_OK


def _export(args, ctx) -> int:
    from pathlib import Path

    from .. import quarantine

    entry = quarantine.find(_root(ctx), args.entry, ctx.catalog)
    needs_store = any("ranges" in f for f in entry.files) and not args.dry_run
    store = ctx.store if needs_store else None
    done = quarantine.export(entry, Path(args.dest).expanduser(), store=store, catalog=ctx.catalog, files=args.file,
                             dry_run=args.dry_run)
    if args.json:
        print_json({"entry": entry.id, "files": [vars(x) for x in done], "dry_run": args.dry_run})
        return EXIT_OK
    if args.dry_run:
        for x in done:
            print(f"{x.path}: " + (f"would write {x.dest}" if x.dest else x.note))
        print("(dry run: nothing written)")
        return EXIT_OK
    for x in done:
        if x.dest is None:
            print(f"{x.path}: {x.note}")
        else:
            print(f"{x.path} -> {x.dest} ({_size(x.bytes)}; unchanged bytes from {x.base})"
                  + (f"; {x.note}" if x.note else ""))
    return EXIT_OK


def _purge(args, ctx) -> int:
    from .. import quarantine

    root = _root(ctx)
    if args.entries and args.older_than is not None:
        raise BadInput("quarantine purge", "name entries or give --older-than, not both")
    if args.entries:
        chosen = []
        for key in args.entries:
            e = quarantine.find(root, key, ctx.catalog)
            chosen += [e] if e.id not in {c.id for c in chosen} else []
        result = quarantine.purge(root, chosen, dry_run=args.dry_run)
    elif args.older_than is not None:
        if args.older_than < 0:
            raise BadInput("--older-than", "must not be negative")
        found = quarantine.entries(root, ctx.catalog)
        result = quarantine.purge(root, quarantine.older_than(found, datetime.now(timezone.utc), args.older_than),
                                  dry_run=args.dry_run)
    else:
        q = ctx.settings.quarantine
        result = quarantine.expire(root, ctx.catalog, q.keep_days, q.max_mb * 2**20, dry_run=args.dry_run)
    if args.json:
        print_json(result.to_json())
        return EXIT_OK
    verb = "would remove" if args.dry_run else "removed"
    for e in result.removed:
        print(f"{verb} {e.id}  {e.name[:50]}  {_size(e.bytes)}")
    print(f"{verb} {len(result.removed)} entries ({_size(result.bytes_freed)}); {result.kept} kept")
    return EXIT_OK


def _now() -> float:
    return datetime.now(timezone.utc).timestamp()

