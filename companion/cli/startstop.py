"""What `seedward start` and `seedward stop` share: through the service, else qBittorrent directly."""

import sys

from ..errors import EXIT_OK, ServiceNotRunning
from .context import print_json


def run_user(verb: str, args, ctx) -> int:
    from ..control import request
    from ..job import default_operator

    operator = default_operator()
    force = bool(getattr(args, "force", False))
    if args.dry_run:
        return dry_run(verb, args, ctx, force)
    try:
        fields = {"force": True} if force else {}
        if getattr(args, "instance", None):
            fields["instance"] = args.instance  # several qBittorrent instances: only this one
        out = request(ctx.home, f"user_{verb}", id=args.id, operator=operator, **fields)
        out["via"] = "service"
    except ServiceNotRunning:
        out = _local(verb, ctx, args.id, operator, force, getattr(args, "instance", None))
        out["via"] = "local"
    if args.json:
        print_json(out)
    else:
        word = "stopped" if verb == "stop" else "started"
        extra = " (you took it over from seedward)" if verb == "stop" and out.get("held_by_seedward") else ""
        print(f"{out['id'][:12]}: {word} in qBittorrent as your choice{extra}", file=sys.stderr if args.json else None)
    return EXIT_OK


def _local(verb: str, ctx, prefix: str, operator: str, force: bool, instance: str | None = None) -> dict:
    from ..drift import userstop
    from ..instances import connect

    cat = ctx.catalog
    tid = cat.resolve_id(prefix)
    qbt = connect(ctx.settings, ctx.home, instance)  # every instance holding it (or the one named)
    if verb == "stop":
        return userstop.user_stop(cat, qbt, tid, operator=operator)
    row = cat.get_torrent(tid)
    return userstop.user_start(cat, qbt, tid, state=row["protection"] if row else None, force=force, operator=operator)


def dry_run(verb: str, args, ctx, force: bool) -> int:
    """What `start`/`stop` would do to the torrent, from the catalog; nothing is asked of qBittorrent."""
    from ..catalog import trust
    from ..errors import BadInput

    tid = ctx.catalog.resolve_id(args.id)
    row = ctx.catalog.get_torrent(tid)
    state = row["protection"] if row else None
    held = trust.get_hold(ctx.catalog, tid) is not None
    refused = None
    if verb == "start" and state in ("damaged", "healing") and not force:  # userstop.user_start's rule
        refused = f"it is {state}: starting it would seed pieces that fail their hashes"
    out = {"dry_run": True, "id": tid, "name": row["name"] if row else None, "verb": verb, "protection": state,
           "held_by_seedward": held, "user_stopped": trust.is_user_stopped(ctx.catalog, tid), "refused": refused}
    if args.json:
        print_json(out)
    elif not refused:
        what = "stop it in qBittorrent as your choice (seedward will not start it)" if verb == "stop" else (
            "start it in qBittorrent" + (" (taking it over from seedward)" if held else ""))
        print(f"{tid[:12]} ({state}): would {what}; dry run: nothing changed")
    if refused:
        raise BadInput(tid[:12], f"would refuse to start: {refused} (dry run; --force starts it anyway)")
    return EXIT_OK
