"""`seedward continuity`: both swarms of every original with companions, and parity."""

from .. import continuity
from ..errors import EXIT_OK
from .context import print_json


def register(sub) -> None:
    p = sub.add_parser("continuity", help="originals and their companions: swarms, parity, retirement offers")
    p.add_argument("--cached", action="store_true", help="the last observations, without asking qBittorrent")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    needed = ctx.settings.jobs.parity_copies
    if args.cached:
        reports = continuity.stored_reports(ctx.catalog, needed)
    else:
        from ..instances import connect

        qbt = connect(ctx.settings, ctx.home)  # every instance's copies of the companions
        reports = continuity.observe(ctx.catalog, qbt, needed)
    if args.json:
        print_json({"parity_copies": needed, "companions": reports})
        return EXIT_OK
    if not reports:
        print("no companion torrents")
    for r in reports:
        o, c = r["original_swarm"], r["companion_swarm"]
        status = "reached" if r["parity"] else f"not yet ({r['copies']}/{needed})"
        print(f"{r['original'][:12]} -> {r['companion'][:12]} (job {r['job']})")
        print(f"  original   seeds {o['seeds']:>4}  peers {o['peers']:>4}  copies elsewhere {o['completed']:>4}")
        print(f"  companion  seeds {c['seeds']:>4}  peers {c['peers']:>4}  copies elsewhere {c['completed']:>4}"
              f"  parity {status}")
        if r["offer"]:
            print(f"  offer: {r['offer']}")
    return EXIT_OK
