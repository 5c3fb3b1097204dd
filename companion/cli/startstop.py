"""What `seedward start` and `seedward stop` share: through the service, else qBittorrent directly."""

import sys

from ..errors import EXIT_OK, ServiceNotRunning
from .context import print_json


def run_user(verb: str, args, ctx) -> int:
    from ..control import request
    from ..job import default_operator

    operator = default_operator()
    force = bool(getattr(args, "force", False))
    try:
        fields = {"force": True} if force else {}
        out = request(ctx.home, f"user_{verb}", id=args.id, operator=operator, **fields)
        out["via"] = "service"
    except ServiceNotRunning:
        out = _local(verb, ctx, args.id, operator, force)
        out["via"] = "local"
    if args.json:
        print_json(out)
    else:
        word = "stopped" if verb == "stop" else "started"
        extra = " (you took it over from seedward)" if verb == "stop" and out.get("held_by_seedward") else ""
        print(f"{out['id'][:12]}: {word} in qBittorrent as your choice{extra}", file=sys.stderr if args.json else None)
    return EXIT_OK


def _local(verb: str, ctx, prefix: str, operator: str, force: bool) -> dict:
    from ..drift import userstop
    from ..qbt import Qbt

    cat = ctx.catalog
    tid = cat.resolve_id(prefix)
    qbt = Qbt.from_settings(ctx.settings.qbittorrent)
    qbt.connect()
    if verb == "stop":
        return userstop.user_stop(cat, qbt, tid, operator=operator)
    row = cat.get_torrent(tid)
    return userstop.user_start(cat, qbt, tid, state=row["protection"] if row else None, force=force, operator=operator)
