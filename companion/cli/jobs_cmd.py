"""`seedward jobs`: every AI job, newest first."""

from ..catalog import jobs as rows
from ..catalog import views
from ..errors import EXIT_OK
from . import timefmt
from .context import print_json


def register(sub) -> None:
    p = sub.add_parser("jobs", help="list AI jobs, newest first")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    from ..job import recover_stale

    if rows.open_jobs(ctx.catalog):
        recover_stale(ctx.catalog, ctx.store)
    out = views.ai_jobs(ctx.catalog)
    if args.json:
        print_json({"jobs": out})
        return EXIT_OK
    if not out:
        print("no jobs")
    for j in out:
        print(f"{j['id']}  {j['state']:11}  {timefmt.local(j['created_at'])}  {j['torrent_id'][:12]}  "
              f"{j['model']} {j['model_version']}  {j['outputs']} outputs")
    return EXIT_OK
