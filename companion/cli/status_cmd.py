"""`seedward status [--json]`: every torrent's protection; live data when the service runs."""

from ..catalog import views
from ..continuity.library import Ledger, attach
from ..continuity.seeding import headline, percent
from ..control import request
from ..errors import EXIT_OK, ServiceNotRunning
from . import timefmt
from .context import print_json


def register(sub) -> None:
    p = sub.add_parser("status", help="protection of every torrent, and the service's state")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def status_data(ctx) -> dict:
    try:
        return request(ctx.home, "status")
    except ServiceNotRunning:
        data = attach(views.offline_status(ctx.catalog, ctx.home.root), Ledger(), ctx.catalog)
        _unreachable(ctx, data)
        return data


def _unreachable(ctx, data: dict) -> None:
    """Without the service too: why a torrent is unreachable, and what to set (issue 17)."""
    if not any(t.get("protection") == "unreachable" for t in data["torrents"]):
        return
    from .. import reach
    from ..catalog.reach import unreachable_entries

    found = unreachable_entries(ctx.catalog)
    several = len(ctx.settings.qbt_instances()) > 1
    for t in data["torrents"]:
        u = found.get(t["id"])
        if u is not None and t.get("protection") == "unreachable":
            t["unreachable"] = {"since": u["since"], "save_path": u["save_path"], "reason": u["reason"],
                                "hint": reach.hint(None if several else "default", several)}


def run(args, ctx) -> int:
    data = status_data(ctx)
    if args.json:
        print_json(data)
        return EXIT_OK
    svc = data["service"]
    if svc["running"]:
        q = svc["qbittorrent"]
        line = f"service: running (pid {svc['pid']}), qBittorrent {q['version'] or '?'} at {q['url']}: {q['state']}"
        if q.get("error") and q["state"] != "connected":
            line += f" ({q['error']})"
        print(line)
        several = svc.get("instances") or []
        for inst in several if len(several) > 1 else []:
            err = f" ({inst['error']})" if inst.get("error") and inst["state"] != "connected" else ""
            print(f"  instance {inst['name']}: qBittorrent {inst['version'] or '?'} at {inst['url']}: {inst['state']}{err}")
    else:
        print("service: not running (catalog only; start it with `seedward serve`)")
    print(f"queue: {svc['queue']['queued']} queued, {svc['queue']['running']} running")
    if (svc.get("metrics") or {}).get("error"):
        print(f"metrics: not served: {svc['metrics']['error']}")
    print_fleet(svc.get("fleet"))
    for v in ((svc.get("drift") or {}).get("invariants") or {}).get("violations") or []:  # never hidden
        print(f"broken promise: {v['torrent_id'][:12]} {v['rule']}: {v['detail']} (being repaired)")
    counts: dict[str, int] = {}
    for t in data["torrents"]:
        counts[t["protection"]] = counts.get(t["protection"], 0) + 1
    if counts:
        print("torrents: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    if data.get("continuity"):
        print(f"continuity: {headline(data['continuity'])}")
    if data["torrents"]:
        print(f"  {'id':12}  {'protection':12} {'qBittorrent':12} {'intact 7d':9}  {'last verified':16}  "
              f"{'snapshot':16}  {'last drill':10}  name")
    for t in data["torrents"]:
        verified = timefmt.local(t["last_verified"], missing="never")
        snap = timefmt.local((t.get("snapshot") or {}).get("created_at"))
        if (t.get("snapshot") or {}).get("suspect"):
            snap = "SUSPECT " + timefmt.local_date(t["snapshot"]["created_at"])  # a failed drill or store check
        drill = t.get("last_drill")
        drilled = "-" if not drill else ("passed" if drill["ok"] else "FAILED")
        where = f"  [{t['owner']}]" if t.get("owner") else ""  # a shared catalog: the owning host
        if t.get("instances") or t.get("instance"):  # several qBittorrent instances: which hold it
            where += f"  @{'+'.join(t.get('instances') or [t['instance']])}"
        print(f"  {t['id'][:12]}  {t['protection']:12} {t['qbt_state'] or '-':12} {intact(t.get('continuity')):9}  "
              f"{verified:16}  {snap:16}  {drilled:10}  {t['name']}{where}")
        print_stopped(t)
        if t.get("unreachable"):
            u = t["unreachable"]
            print(f"      unreachable: {u['reason']}; {u['hint']}")
        for c in t.get("copies") or []:
            print(f"      also in {c['instance']} at {c['save_path']}: another copy, not protected")
    return EXIT_OK


def print_stopped(t: dict) -> None:
    """"stopped by seedward since T: because ..." (or by the user, or in qBittorrent), and the
    files with other hard links (issue 12)."""
    stop = t.get("stopped")
    if stop:
        since = f" since {timefmt.local(stop['since'])}" if stop.get("since") else ""
        who = "" if stop["by"] == "qBittorrent" else f"stopped by {stop['by']}{since}: "
        print(f"      {who}{stop['because']}")
    linked = t.get("hardlinked") or []
    if linked:
        more = f" and {len(linked) - 3} more" if len(linked) > 3 else ""
        print(f"      files with other hard links (watched through their inodes): {', '.join(linked[:3])}{more}")


def intact(short: dict | None) -> str:
    """A torrent's intact share over 7 days; '-' when nothing was watched seeding (never verified)."""
    if not short or (not short["interruptions"] and not short["intact_share"]):
        return "-"
    return percent(short["intact_share"]).replace(" %", "%")


def print_fleet(fleet: dict | None) -> None:
    """The services sharing this catalog (issue 20): shown once there is more than this one."""
    members = (fleet or {}).get("members") or []
    if len(members) < 2 and all(m["owner"] == "" for m in members):
        return
    me = set((fleet or {}).get("me") or ())
    print(f"fleet: {len(members)} members, {sum(m['alive'] for m in members)} alive")
    for m in members:
        ago = m.get("seen_seconds_ago")
        alive = "alive" if m["alive"] else ("GONE" if m.get("seen_at") else "no service")
        seen = f" (seen {ago:.0f}s ago)" if ago is not None else ""
        qbt = (m.get("qbittorrent") or {}).get("state") or "-"
        states = ", ".join(f"{n} {s}" for s, n in sorted(m["torrents"].items())) or "no torrents"
        mark = " (this host)" if m["owner"] in me else ""
        print(f"  {m['owner'] or '(local)':16} {alive}{seen}{mark}  qBittorrent {qbt}  {states}  "
              f"queue {m['queue']['queued']} queued, {m['queue']['running']} running")
