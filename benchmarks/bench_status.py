"""`seedward status --json` and the TUI's first screen with a big library, through the one door.

Fills a catalog directly with --size torrents (each with a snapshot; every tenth with a finished
drill, every fiftieth with a drift response), starts the real `seedward serve` on it (qBittorrent
unreachable: the status then comes from the catalog alone, as it does for torrents qBittorrent has
not reported yet), and times, best of --runs:
- `seedward status --json` (the real command: connect, the service builds the status, streams it,
  the CLI parses and prints it); the output is checked to be complete JSON with every torrent
  (after one untimed request: the service's first answer competes with its own start-up);
- the same request from Python (companion.control.request: socket and parsing only), and the TUI's
  compact `dashboard` request (service/dashboard.py);
- the TUI's first screen: the real app headless (Textual's `run_test`, 160x45) until its table holds
  every row and the header shows the totals;
- `seedward status --json` with the service stopped (the catalog's offline view).

    python benchmarks/bench_status.py --size 20000
"""

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import load_note, machine, serve, stamp, table, write_section  # noqa: E402
from companion.catalog import Catalog  # noqa: E402
from companion.control import request  # noqa: E402
from companion.demo.private_qbt import free_port  # noqa: E402
from companion.home import Home  # noqa: E402

BIN = Path(sys.executable).parent
AT = "2026-11-01T12:00:00.000+00:00"


def fill(home: Home, size: int) -> None:
    """`size` torrents straight into a fresh catalog (the schema made by the real migrations)."""
    cat = Catalog(home.catalog_db)
    ids = [f"{i:040x}" for i in range(1, size + 1)]
    # Save paths that exist: a missing one makes the torrent `unreachable`, and the service marking
    # thousands of them, batch by batch, changed the catalog under every timed request.
    seed = home.root.parent / "seed"
    for i in range(len(ids)):
        (seed / f"{i:06d}").mkdir(parents=True, exist_ok=True)
    with cat.tx() as db:
        db.executemany(
            "INSERT INTO torrents (id, info_hash_v1, info_hash_v2, name, kind, piece_length, num_pieces, total_size,"
            " payload_size, save_path, category, protection, policy, last_verified, qbt_state, added_at, updated_at)"
            " VALUES (?, ?, ?, ?, 'hybrid', 1048576, 700, 734003200, 734003200, ?, 'music', 'protected', 'snapshot',"
            " ?, 'stalledUP', ?, ?)",
            [(t, t, t + "0" * 24, f"Artist {i % 997:03d} - Album {i:06d} (2024) [FLAC]", str(seed / f"{i:06d}"),
              AT, AT, AT) for i, t in enumerate(ids)])
        db.executemany(
            "INSERT INTO snapshots (id, torrent_id, name, created_at, reason, bytes, new_bytes, files, tree)"
            " VALUES (?, ?, 'x', ?, 'auto', 734003200, 734003200, 12, 't')",
            [(f"{i:064x}", t, AT) for i, t in enumerate(ids)])
        db.executemany(
            "INSERT INTO drills (id, torrent_id, snapshot_id, reason, state, started_at, finished_at, rto_seconds)"
            " VALUES (?, ?, ?, 'schedule', 'passed', ?, ?, 41.5)",
            [(f"{i:016x}", t, f"{i:064x}", AT, AT) for i, t in enumerate(ids) if i % 10 == 0])
        db.executemany("INSERT INTO heals (torrent_id, started_at, response, drift) VALUES (?, ?, 'heal', '{}')",
                       [(t, AT) for i, t in enumerate(ids) if i % 50 == 0])
    cat.close()


def cli_status(home: Home, size: int) -> tuple[float, int]:
    """Seconds for `seedward status --json`, and the bytes it printed (checked: every torrent, whole JSON)."""
    env = dict(os.environ, SEEDWARD_HOME=str(home.root))
    t = time.perf_counter()
    out = subprocess.run([str(BIN / "seedward"), "status", "--json"], env=env, capture_output=True, check=True)
    seconds = time.perf_counter() - t
    data = json.loads(out.stdout)
    if len(data["torrents"]) != size:
        raise SystemExit(f"bench_status: status listed {len(data['torrents'])} torrents, not {size}")
    return seconds, len(out.stdout)


def socket_status(home: Home, size: int, op: str = "status") -> float:
    """Seconds for one request from Python (`status`, or the TUI's compact `dashboard`)."""
    t = time.perf_counter()
    data = request(home, op, timeout=600)
    seconds = time.perf_counter() - t
    count = len(data["torrents"] if op == "status" else data["rows"])
    if count != size:
        raise SystemExit(f"bench_status: the socket's {op} listed {count} torrents, not {size}")
    return seconds


async def tui_first_screen(home: Home, size: int) -> float:
    """Seconds from the app's start to its first screen: the table holding every torrent and the
    header's totals drawn (the real service behind it)."""
    from tui.app import SeedwardApp
    from tui.torrent_table import TorrentTable

    app = SeedwardApp(home)  # the defaults a user gets
    t0 = time.perf_counter()
    async with app.run_test(size=(160, 45)) as pilot:
        while True:
            tables = app.screen.query(TorrentTable)
            if tables and tables.first().row_count == size and "torrents" in str(app.screen.query_one("#totals").render()):
                return time.perf_counter() - t0
            if time.perf_counter() - t0 > 600:
                raise SystemExit("bench_status: the dashboard never showed every torrent")
            await pilot.pause(0.005)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    load = load_note()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=20_000, help="torrents in the catalog (default 20000)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each measurement; the best is shown")
    ap.add_argument("--no-tui", action="store_true", help="skip the TUI measurement")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sw-bench-status-", dir="/tmp"))  # a short socket path
    home = Home(root / "home").ensure()
    try:
        t = time.perf_counter()
        fill(home, args.size)
        filled = time.perf_counter() - t
        home.config.write_text(f'[qbittorrent]\nurl = "http://127.0.0.1:{free_port()}"\nusername = "nobody"\n'
                               '\n[drill]\ninterval_hours = 0\n\n[scrub]\ninterval_hours = 0\n')  # no scheduled work
        proc = serve(home, {"QBITTORRENTAPI_PASSWORD": "unused"}, timeout=600)
        try:
            t = time.perf_counter()
            socket_status(home, args.size)  # the first, while the service still starts its components
            first = time.perf_counter() - t
            cli = [cli_status(home, args.size) for _ in range(args.runs)]
            sock = [socket_status(home, args.size) for _ in range(args.runs)]
            dash = [socket_status(home, args.size, "dashboard") for _ in range(args.runs)]
            tui = [] if args.no_tui else [asyncio.run(tui_first_screen(home, args.size)) for _ in range(args.runs)]
            peak = rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        offline = [cli_status(home, args.size) for _ in range(args.runs)]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    n = f"{args.size:,}"
    size_mb = cli[0][1] / 1e6
    rows = [
        [f"`seedward status --json`, service running ({size_mb:.1f} MB of JSON, every torrent)",
         f"{min(s for s, _ in cli):.2f}"],
        ["the same `status` request from Python (socket, build, stream, parse)", f"{min(sock):.2f}"],
        ["the TUI's compact `dashboard` request from Python (the same status, one array per torrent)", f"{min(dash):.2f}"],
        ["(the first request, while the service still starts its watches)", f"{first:.2f}"],
        *([[f"TUI: start to all {n} rows on the first screen (real service behind it)", f"{min(tui):.2f}"]]
          if tui else []),
        ["`seedward status --json`, service stopped (the catalog's read-only view)", f"{min(s for s, _ in offline):.2f}"],
        [f"(setup: {n} torrents written into the catalog)", f"{filled:.2f}"],
    ]
    body = (f"## Status of {n} torrents through the control socket\n\n{stamp()}; {machine()}.\n{load}\n"
            f"Catalog filled directly (each torrent with a snapshot, every 10th a drill, every 50th a drift "
            f"response); the real `seedward serve` with qBittorrent unreachable (no scheduled drill or scrub); best of {args.runs}, wall-clock "
            f"seconds; a repeated request finds the catalog unchanged (SQLite's data_version) and reuses what it read."
            f" The service's peak RSS: {peak:.0f} MB.\n\n" + table(["what", "seconds"], rows))
    print(body)
    if not args.no_write:
        write_section("status", body)


if __name__ == "__main__":
    main()
