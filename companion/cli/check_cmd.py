"""`seedward check TORRENT SAVE_PATH`: offline verification, no qBittorrent needed."""

import sys

from ..errors import EXIT_DAMAGE, EXIT_OK
from ..scan import Scanner
from ..torrent import load_torrent
from .context import print_json


def register(sub) -> None:
    p = sub.add_parser("check", help="verify a payload against its .torrent (offline)")
    p.add_argument("torrent", metavar="TORRENT_FILE")
    p.add_argument("save_path", metavar="SAVE_PATH")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    meta = load_torrent(args.torrent)
    result = Scanner().full_scan(meta, args.save_path)
    if args.json:
        print_json(result.to_json())
    else:
        print_report(result)
    return EXIT_OK if result.ok else EXIT_DAMAGE


def print_report(result, out=sys.stdout) -> None:
    meta = result.meta
    verdict = "intact" if result.ok else "DAMAGED"
    mb = result.bytes_read / 1e6
    rate = mb / result.seconds if result.seconds else 0
    print(f"{meta.name} ({meta.kind}, {meta.num_pieces} pieces of {meta.piece_length} B): {verdict}"
          f" [{mb:.1f} MB in {result.seconds:.2f}s, {rate:.0f} MB/s]", file=out)
    for f in result.files:
        if f.status != "ok":
            print(f"  {f.status:13} {f.entry.path}", file=out)
    if result.bad_pieces:
        shown = ", ".join(map(str, result.bad_pieces[:20]))
        more = f" (+{len(result.bad_pieces) - 20} more)" if len(result.bad_pieces) > 20 else ""
        print(f"  bad pieces: {shown}{more}", file=out)
