"""`seedward demo`: sample payloads and torrents, then seedward at work on them.

Above every layer (it drives the CLI's report, the service, and ends in the TUI); only
`cli/demo_cmd.py` loads it, so `seedward serve` never does. `private_qbt.py` beside it is the
private qbittorrent-nox the demo, the tests and the benchmarks start on loopback.
"""

import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import libtorrent as lt

from ..scan import Scanner
from ..torrent import load_torrent


def make_sample(root: Path, name: str = "Sample Album", files=None, piece_size: int = 64 * 1024,
                kind: str = "hybrid", seed: int = 7) -> tuple[Path, Path]:
    """A small payload with a few files and its torrent. Returns (content dir, .torrent)."""
    files = files or {"01 - Intro.flac": 700_000, "02 - Theme.flac": 1_300_000, "cover.jpg": 90_000}
    rnd = random.Random(seed)
    content = root / "downloads" / name
    content.mkdir(parents=True, exist_ok=True)
    for fname, size in files.items():
        (content / fname).parent.mkdir(parents=True, exist_ok=True)
        (content / fname).write_bytes(rnd.randbytes(size))
    flags = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only, "hybrid": 0}[kind]
    ct = lt.create_torrent(lt.list_files(str(content)), piece_size, flags)
    lt.set_piece_hashes(ct, str(content.parent))
    torrent = root / f"{name}.torrent"
    torrent.write_bytes(lt.bencode(ct.generate()))
    return content, torrent


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def offline_demo(root: Path) -> int:
    """Check a sample payload intact, then after one flipped byte."""
    from ..cli.check_cmd import print_report

    content, torrent = make_sample(root)
    meta = load_torrent(torrent)
    scanner = Scanner()
    say(f"seedward check {torrent.name} (intact payload)")
    print_report(scanner.full_scan(meta, content.parent))
    victim = content / "02 - Theme.flac"
    with open(victim, "r+b") as fh:
        fh.seek(200_000)
        b = fh.read(1)
        fh.seek(200_000)
        fh.write(bytes([b[0] ^ 0xFF]))
    say(f"one byte flipped in '{victim.name}' at offset 200000: seedward check again")
    result = scanner.full_scan(meta, content.parent)
    print_report(result)
    return 0 if not result.ok else 1


@dataclass
class DemoContext:
    """What the service part of the demo has running; later steps build on it."""

    root: Path
    qbt: "object"
    service: "object"
    torrents: dict  # name -> qBittorrent's torrent hash
    contents: dict  # name -> content path


def service_steps() -> list:
    """What runs after every sample torrent is protected: fn(DemoContext) -> exit code (0: go on)."""
    from ..drift.demo import drift_step

    return [drift_step]

SAMPLES = {
    "Sample Album": dict(kind="hybrid", seed=7),
    "Field Recordings": dict(files={"rain.wav": 1_200_000, "wind.wav": 800_000, "notes.txt": 4_000}, kind="v1",
                             seed=11),
    "Short Film": dict(files={"film.mkv": 2_500_000, "subs/en.srt": 20_000}, kind="v2", piece_size=256 * 1024,
                       seed=13),
}


def print_status(service) -> None:
    from ..catalog.views import torrent_entries

    for t in torrent_entries(service.catalog, service.sync.snapshot()):
        verified = (t["last_verified"] or "never")[:19]
        print(f"  {t['id'][:12]}  {t['protection']:12} {t['qbt_state'] or '-':10} {verified:19}  {t['name']}")


def service_demo(root: Path) -> int:
    """A private qbittorrent-nox on loopback seeding a few samples; the service protects them all."""
    from ..config import Settings
    from ..home import Home
    from ..service import Service
    from ..service.features import install_features
    from .private_qbt import QbtProcess

    say("starting a private qbittorrent-nox on 127.0.0.1 (own profile, DHT/LSD/UPnP/PeX off)")
    with QbtProcess(root / "qbittorrent") as qbt:
        print(f"  WebUI {qbt.url}, qBittorrent {qbt.client.app_version()}")
        settings = Settings()
        settings.qbittorrent.url, settings.qbittorrent.username = qbt.url, qbt.username
        settings.qbittorrent.password = qbt.password
        settings.qbittorrent.poll_seconds = 0.5
        home = Home(root / "seedward-home")
        service = Service(home, settings)
        install_features(service)
        say(f"seedward serve (state home {home.root})")
        service.start()
        try:
            torrents, contents = {}, {}
            say(f"adding {len(SAMPLES)} sample torrents to qBittorrent")
            for name, spec in SAMPLES.items():
                content, torrent = make_sample(root / "samples", name, **spec)
                torrents[name] = qbt.add_torrent(torrent, content.parent, wait=False)
                contents[name] = content
                print(f"  + {name} ({spec['kind']})")
            ids = set(torrents.values())
            deadline = time.monotonic() + 120
            while True:
                rows = {r["id"]: r["protection"] for r in service.catalog.list_torrents() if r["id"] in ids}
                if len(rows) == len(ids) and all(s == "protected" for s in rows.values()) \
                        and not service.catalog.pending_jobs():
                    break
                if time.monotonic() > deadline:
                    say("not every torrent was protected in time")
                    print_status(service)
                    return 1
                time.sleep(0.2)
            say("seedward status: every torrent verified against its own hashes and cataloged")
            print_status(service)
            tags = {t["name"]: t["tags"] for t in qbt.client.torrents_info()}
            say("qBittorrent's tags mirror the protection state")
            for name in SAMPLES:
                print(f"  {name}: {tags.get(name, '')}")
            ctx = DemoContext(root, qbt, service, torrents, contents)
            for step in service_steps():
                code = step(ctx)
                if code:
                    return code
            from tui.demo import finale  # the demo ends in the dashboard (issue 7)

            return finale(ctx)
        finally:
            service.stop()
    return 0


def run_demo(workdir: Path | None = None) -> int:
    with tempfile.TemporaryDirectory(prefix="seedward-demo-") as tmp:
        root = Path(workdir or tmp)
        code = offline_demo(root / "offline")
        return code or service_demo(root)
