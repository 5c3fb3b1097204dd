"""`seedward fleet status|adopt|import-catalog|rebuild-index`: several seedboxes on one catalog
(PostgreSQL, `[catalog] url`) and one store (object storage, `[store] remote`), issue 20."""

from pathlib import Path

from ..errors import EXIT_OK, EXIT_STORE_CORRUPT, ConfigError
from .context import print_json


def register(sub) -> None:
    p = sub.add_parser("fleet", help="several seedboxes sharing one catalog and one store")
    verbs = p.add_subparsers(dest="fleet_verb", required=True)
    s = verbs.add_parser("status", help="every service on the shared catalog: alive or gone, torrents, queue")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    a = verbs.add_parser("adopt", help="take over a dead host's torrents: restore them from the store, seed them here")
    a.add_argument("owner", help="the other service's owner name (see `seedward fleet status`)")
    a.add_argument("--to", type=Path, metavar="DIR", help="save path for the restored payloads (default: theirs)")
    a.add_argument("--force", action="store_true", help="even if its service still answers")
    a.add_argument("--dry-run", action="store_true", help="only show what would be adopted")
    a.add_argument("--json", action="store_true", help="print one JSON object")
    i = verbs.add_parser("import-catalog", help="copy this home's embedded catalog into the shared one")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    r = verbs.add_parser("rebuild-index", help="rebuild the store's index from its packs (restic's repair index)")
    r.add_argument("--dry-run", action="store_true", help="only count what the packs hold")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    return {"status": status, "adopt": adopt, "import-catalog": import_catalog,
            "rebuild-index": rebuild}[args.fleet_verb](args, ctx)


def status(args, ctx) -> int:
    from ..catalog import fleet

    data = fleet.fleet(ctx.catalog)
    data["catalog"] = ctx.catalog.where
    if args.json:
        print_json(data)
        return EXIT_OK
    from .status_cmd import print_fleet

    print(f"catalog: {data['catalog']}")
    if len(data["members"]) > 1 or any(m["owner"] for m in data["members"]):
        print_fleet(data)
    else:
        print("fleet: this host only (embedded catalog)")
    return EXIT_OK


def adopt(args, ctx) -> int:
    from ..fleet.adopt import adopt as take
    from ..instances import connect

    qbt = None
    if not args.dry_run:
        qbt = connect(ctx.settings, ctx.home.ensure())  # the first instance that sees where the payload goes
    out = take(ctx.catalog, ctx.store, qbt, args.owner, args.to, force=args.force, dry_run=args.dry_run)
    if args.json:
        print_json(out.as_dict())
        return EXIT_OK
    verb = "would adopt" if args.dry_run else "adopted"
    print(f"{verb} {len(out.adopted)} torrents from {args.owner}" + (f"; {len(out.left)} left" if out.left else ""))
    for t in out.adopted:
        print(f"  {t['id'][:12]}  snapshot {t['snapshot'][:12]}  -> {t['save_path']}  {t['name']}")
    for t in out.left:
        print(f"  {t['id'][:12]}  LEFT: {t['why']}  {t['name']}")
    return EXIT_OK


def import_catalog(args, ctx) -> int:
    from ..catalog import Catalog
    from ..catalog.copy import copy_rows

    if not ctx.settings.catalog.url:
        raise ConfigError(ctx.home.config, "import-catalog copies into a shared catalog: set [catalog] url first")
    local_path = ctx.home.catalog_db
    if not local_path.exists():
        raise ConfigError(local_path, "no embedded catalog in this home to import")
    local = Catalog(local_path)
    try:
        copied = copy_rows(local, ctx.catalog, owner=ctx.catalog.owner)
    finally:
        local.close()
    if args.json:
        print_json({"owner": ctx.catalog.owner, "catalog": ctx.catalog.where, "rows": copied})
    else:
        print(f"imported {copied.get('torrents', 0)} torrents ({sum(copied.values())} rows) into {ctx.catalog.where}"
              f" as owner {ctx.catalog.owner!r}; {local_path} is left as it was")
    return EXIT_OK


def rebuild(args, ctx) -> int:
    from ..store.rebuild import rebuild_index

    out = rebuild_index(ctx.store, dry_run=args.dry_run)
    if args.json:
        print_json(out.as_dict())
    else:
        print(f"{'would index' if args.dry_run else 'indexed'} {out.chunks} chunks in {out.packs} packs"
              f" ({out.new_packs} not indexed before), replacing {out.replaced} index files")
        for name, why in out.unreadable:
            print(f"  UNREADABLE {name}: {why}")
    return EXIT_OK if not out.unreadable else EXIT_STORE_CORRUPT
