"""`seedward lease acquire|release|list`: time-limited write rights for agents outside `job run`."""

import sys

from .. import lease
from ..errors import EXIT_OK, BadInput
from ..job import default_operator
from . import timefmt
from .context import print_json


def register(sub) -> None:
    p = sub.add_parser("lease", help="let an agent write a protected path for a while (not drift, no heal)")
    verbs = p.add_subparsers(dest="lease_verb", metavar="VERB", required=True)
    acq = verbs.add_parser("acquire", help="grant a lease; prints its token once")
    acq.add_argument("path", metavar="PATH", help="a file or folder (a folder covers everything below it)")
    acq.add_argument("--ttl", required=True, type=float, metavar="SECONDS", help="how long the lease lasts")
    acq.add_argument("--operator", metavar="NAME", help="who holds it (recorded; default: the user)")
    acq.add_argument("--no-snapshot", action="store_true",
                     help="do not snapshot the covered files first (then `restore` cannot undo the edit)")
    acq.add_argument("--dry-run", action="store_true", help="say what the lease would cover; grant nothing")
    acq.add_argument("--json", action="store_true", help="print one JSON object")
    acq.set_defaults(func=run_acquire)
    rel = verbs.add_parser("release", help="end a lease")
    rel.add_argument("token", metavar="TOKEN", help="the token `acquire` printed, or - to read it from stdin")
    rel.add_argument("--dry-run", action="store_true", help="say which lease the token ends; end nothing")
    rel.add_argument("--json", action="store_true", help="print one JSON object")
    rel.set_defaults(func=run_release)
    ls = verbs.add_parser("list", help="valid leases (with --all: released and expired ones too)")
    ls.add_argument("--all", action="store_true", help="released and expired leases too")
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    ls.set_defaults(func=run_list)


def run_acquire(args, ctx) -> int:
    if args.dry_run:
        would, covered = lease.plan(ctx.catalog, args.path, args.ttl, args.operator or default_operator())
        out = {"dry_run": True, **would.to_json(), "covers": {t: sorted(i) for t, i in covered.items()},
               "snapshot_first": bool(covered) and not args.no_snapshot}
        if args.json:
            print_json(out)
        else:
            print(f"would lease {would.path} to {would.operator} until {timefmt.local(would.expires_at)}: "
                  f"{sum(len(i) for i in covered.values())} cataloged files of {len(covered)} torrents"
                  + (", snapshotted first" if out["snapshot_first"] else ""))
            print("(dry run: no lease granted, no token made)")
        return EXIT_OK
    store = None if args.no_snapshot else (lambda: ctx.store)
    token, granted = lease.acquire(ctx.catalog, args.path, args.ttl, args.operator or default_operator(), store=store)
    undo = lease.undo_points(ctx.catalog, granted.id)
    if args.json:
        print_json({"token": token, **granted.to_json(), "undo": undo})
    else:
        print(token)
        print(f"lease {granted.id} on {granted.path} for {granted.operator}, until {timefmt.local(granted.expires_at)}",
              file=sys.stderr)
        for u in undo:
            print(f"  {u['torrent_id'][:12]}: " + (f"snapshot {u['snapshot_id'][:12]} taken: `seedward restore "
                                                  f"{u['torrent_id'][:12]}` undoes an edit" if u["snapshot_id"]
                                                  else u["note"]), file=sys.stderr)
    return EXIT_OK


def run_release(args, ctx) -> int:
    token = sys.stdin.readline().strip() if args.token == "-" else args.token
    if not token:
        raise BadInput("lease release", "empty token")
    if args.dry_run:
        found = lease.find(ctx.catalog, token)
        if args.json:
            print_json({"dry_run": True, **found.to_json()})
        else:
            state = "already released" if found.released_at else "would be released"
            print(f"lease {found.id} on {found.path}: {state} (dry run: nothing changed)")
        return EXIT_OK
    ended = lease.release(ctx.catalog, token)
    if args.json:
        print_json(ended.to_json())
    else:
        print(f"lease {ended.id} on {ended.path} released")
    return EXIT_OK


def run_list(args, ctx) -> int:
    found = lease.leases(ctx.catalog, include_closed=args.all)
    if args.json:
        print_json({"leases": [x.to_json() for x in found]})
        return EXIT_OK
    for x in found:
        print(f"{x.id}  {x.operator:12}  until {timefmt.local(x.expires_at)}  {'released ' if x.released_at else ''}{x.path}")
    return EXIT_OK
