"""`seedward catalog add|show`."""

from pathlib import Path

from ..catalog import views
from ..errors import EXIT_DAMAGE, EXIT_OK, NotFound
from ..protect import catalog_torrent
from ..scan import Scanner
from ..states import HAS_BASELINE
from ..torrent import load_torrent
from . import timefmt
from .check_cmd import print_report
from .context import print_json


def register(sub) -> None:
    p = sub.add_parser("catalog", help="record torrents in the catalog and show them")
    verbs = p.add_subparsers(dest="catalog_verb", metavar="VERB", required=True)
    add = verbs.add_parser("add", help="verify a payload and record it")
    add.add_argument("torrent", metavar="TORRENT_FILE", help="the .torrent file")
    add.add_argument("save_path", metavar="SAVE_PATH", help="the folder the payload is in (qBittorrent's save path)")
    add.add_argument("--dry-run", action="store_true", help="verify and report; record nothing")
    add.add_argument("--json", action="store_true", help="print one JSON object")
    add.set_defaults(func=run_add)
    show = verbs.add_parser("show", help="show a cataloged torrent")
    show.add_argument("id", metavar="ID", help="any unique prefix of an info hash")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(func=run_show)


def run_add(args, ctx) -> int:
    meta = load_torrent(args.torrent)
    save_path = Path(args.save_path).resolve()
    with ctx.progress.bar(f"verifying {meta.name}", meta.payload_size) as bar:
        if args.dry_run:  # the same verification, nothing recorded
            result = Scanner().full_scan(meta, save_path, progress=bar)
        else:
            ctx.home.ensure()
            result = catalog_torrent(ctx.catalog, ctx.manifests, meta, save_path, reason="manual",
                                     keep_torrent=ctx.home.torrents / f"{meta.id}.torrent", progress=bar)
    state = would_be(ctx, meta.id, result.ok) if args.dry_run else ctx.catalog.get_torrent(meta.id)["protection"]
    if args.json:
        out = result.to_json()
        out["id"] = meta.id
        if args.dry_run:
            out.update(dry_run=True, would_be=state)
        print_json(out)
    else:
        print_report(result)
        print(f"{meta.id} {state}" + ("  (dry run: would be recorded so; nothing recorded)" if args.dry_run else ""))
    return EXIT_OK if result.ok else EXIT_DAMAGE


def would_be(ctx, torrent_id: str, ok: bool) -> str:
    """The state `catalog add` would record (protect.catalog_torrent's rule)."""
    if ok:
        return "protected"
    if ctx.settings.catalog.url or ctx.home.catalog_db.exists():
        row = ctx.catalog.get_torrent(torrent_id)
        if row is not None and row["protection"] in HAS_BASELINE:
            return "damaged"  # it had a baseline: drift, not a bad download
    return "baseline_bad"


def show_data(ctx, torrent_id: str) -> dict:
    row = ctx.catalog.get_torrent(torrent_id)
    if row is None:
        raise NotFound(f"no torrent {torrent_id}")
    files = ctx.catalog.get_files(torrent_id)
    return {
        **dict(row),
        "files": [{k: f[k] for k in ("path", "size", "sha256", "status", "v2_root")} for f in files],
        "runs": views.runs(ctx.catalog, torrent_id),
        "history": history(ctx, torrent_id),
    }


def history(ctx, torrent_id: str, limit: int = 20) -> list[dict]:
    """What happened to the torrent, newest first: its events (drift, heals, drills, stops...) and
    the manifest commits, each {"at", "kind", "message"} (+ "sha" for a commit, "level" for an event)."""
    events = [{"at": timefmt.iso(e["at"]), "kind": e["kind"], "level": e["level"], "message": e["message"]}
              for e in views.events(ctx.catalog, torrent_id=torrent_id, last=limit)]
    commits = [{"at": timefmt.iso(c["at"]), "kind": "manifest", "sha": c["sha"], "message": c["message"]}
               for c in ctx.manifests.log(f"torrents/{torrent_id}.json", limit=limit)]
    return sorted(events + commits, key=lambda h: h["at"] or "", reverse=True)[:limit]


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
    print(f"  last verified {timefmt.local(data['last_verified'], missing='never')}")
    for f in data["files"]:
        print(f"  {f['status']:13} {f['size']:>14,}  {f['sha256'] or '-':64}  {f['path']}")
    if data["history"]:
        print("  history (newest first):")
    for h in data["history"][:10]:
        print(f"    {timefmt.local(h['at'])}  {h['kind']:16} {h['message'].splitlines()[0]}")
    return EXIT_OK
