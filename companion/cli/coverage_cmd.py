"""`seedward coverage [ID] [--json]`: which damage classes each torrent survives, and from where."""

from ..catalog import ladder as rows
from ..catalog.jobs import stored_outputs
from ..errors import EXIT_OK
from ..ladder.budget import budget_bytes
from ..ladder.coverage import CLASSES, coverage
from ..ladder.facts import torrent_facts
from .context import print_json

LABELS = {"in_place_tag_edit": "tag edit in place", "resized_header": "resized header",
          "tail_tag_appended": "tail tag appended", "tail_tag_removed": "tail tag removed",
          "scattered_rot": "scattered rot", "file_replaced": "file replaced", "file_deleted": "file deleted"}


def register(sub) -> None:
    p = sub.add_parser("coverage", help="which damage classes each torrent survives, and from which tier")
    p.add_argument("id", nargs="?", metavar="ID", help="only this torrent (any unique prefix of its hash)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    cat = ctx.catalog
    outputs = set() if args.id else stored_outputs(cat)  # a job's stored outputs: not a torrent anyone seeds
    ids = [cat.resolve_id(args.id)] if args.id else [r["id"] for r in cat.list_torrents(include_removed=False)
                                                       if r["protection"] not in ("excluded",) and r["id"] not in outputs]
    found = [coverage(torrent_facts(cat, tid)) for tid in ids]
    usage = rows.store_usage(cat)
    budget_text = ctx.settings.protection.budget
    budget = budget_bytes(budget_text, usage["payload_bytes"], ctx.settings.protection.budget_min)
    over = usage["bytes"] > budget
    summary = {"budget": budget_text, "budget_bytes": budget, "store_bytes": usage["bytes"],
               "zone_bytes": usage["zone_bytes"], "parity_bytes": usage["parity_bytes"],
               "logical_bytes": usage["logical_bytes"],
               "dedup_saved_bytes": usage["dedup_saved_bytes"], "payload_bytes": usage["payload_bytes"],
               "over_budget": over,
               "survive_all": sum(1 for c in found if len(c.survived) == len(CLASSES))}
    if args.json:
        print_json({"budget": summary, "torrents": [c.to_json() for c in found]})
        return EXIT_OK
    share = usage["bytes"] / usage["payload_bytes"] * 100 if usage["payload_bytes"] else 0.0
    print(f"store {usage['bytes']:,} bytes ({share:.2f}% of {usage['payload_bytes']:,} payload bytes; zones"
          f" {usage['zone_bytes']:,}; parity {usage['parity_bytes']:,}; dedup saved {usage['dedup_saved_bytes']:,});"
          f" budget {budget_text} = {budget:,} bytes{': OVER BUDGET' if over else ''}")
    for c in found:
        print(f"{c.torrent_id[:12]}  {c.name}")
        for cls in CLASSES:
            v = c.classes[cls]
            verdict = ("survives" if v["survives"] else
                       f"NOT COVERED ({v['files_not']} files{'; swarm only' if v.get('last_resort') else ''})")
            limit = (f" (up to {v['parity']['blocks']} damaged blocks or {v['parity']['run_bytes']:,} bytes in a row"
                     " per recovery set)" if "parity" in v else "")
            print(f"  {LABELS[cls]:20} {verdict:36} {', '.join(v['from']) or '-'}{limit}")
    return EXIT_OK
