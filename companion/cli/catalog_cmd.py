"""`seedward catalog add|show`."""

from pathlib import Path

from ..catalog import views
from ..errors import EXIT_DAMAGE, EXIT_OK, NotFound
from ..protect import catalog_torrent
from ..torrent import load_torrent
from .check_cmd import print_report
from .context import print_json


def register(sub) -> None:
    p = sub.add_parser("catalog", help="record torrents in the catalog and show them")
    verbs = p.add_subparsers(dest="catalog_verb", metavar="VERB", required=True)
    add = verbs.add_parser("add", help="verify a payload and record it")
    add.add_argument("torrent", metavar="TORRENT_FILE", help="the .torrent file")
    add.add_argument("save_path", metavar="SAVE_PATH", help="the folder the payload is in (qBittorrent's save path)")
    add.add_argument("--json", action="store_true")
    add.set_defaults(func=run_add)
    show = verbs.add_parser("show", help="show a cataloged torrent")
    show.add_argument("id", metavar="ID", help="any unique prefix of an info hash")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=run_show)


def run_add(args, ctx) -> int:
    meta = load_torrent(args.torrent)
    ctx.home.ensure()
    result = catalog_torrent(ctx.catalog, ctx.manifests, meta, Path(args.save_path).resolve(), reason="manual",
                             keep_torrent=ctx.home.torrents / f"{meta.id}.torrent")
    if args.json:
        out = result.to_json()
        out["id"] = meta.id
        print_json(out)
    else:
        print_report(result)
        state = ctx.catalog.get_torrent(meta.id)["protection"]
        print(f"{meta.id} {state}")
    return EXIT_OK if result.ok else EXIT_DAMAGE


def show_data(ctx, torrent_id: str) -> dict:
    row = ctx.catalog.get_torrent(torrent_id)
    if row is None:
        raise NotFound(f"no torrent {torrent_id}")
    files = ctx.catalog.get_files(torrent_id)
    return {
        **dict(row),
        "files": [{k: f[k] for k in ("path", "size", "sha256", "status", "v2_root")} for f in files],
        "runs": views.runs(ctx.catalog, torrent_id),
        "history": ctx.manifests.log(f"torrents/{torrent_id}.json", limit=20),
    }


def run_show(args, ctx) -> int:
    data = show_data(ctx, ctx.catalog.resolve_id(args.id))
    if args.json:
        print_json(data)
        return EXIT_OK
    print(f"{data['name']}  [{data['protection']}]")
    print(f"  id            {data['id']}")
    print(f"  info hash v1  {data['info_hash_v1'] or '-'}")
    print(f"  info hash v2  {data['info_hash_v2'] or '-'}")
    print(f"  kind          {data['kind']}, {data['num_pieces']} pieces of {data['piece_length']} B")
    print(f"  save path     {data['save_path']}")
    print(f"  last verified {data['last_verified'] or 'never'}")
    for f in data["files"]:
        print(f"  {f['status']:13} {f['size']:>14,}  {f['sha256'] or '-':64}  {f['path']}")
    for h in data["history"][:5]:
        print(f"  {h['at']}  {h['message'].splitlines()[0]}")
    return EXIT_OK
