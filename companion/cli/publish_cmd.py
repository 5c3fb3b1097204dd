"""`seedward publish JOB`: a companion torrent of a job's outputs and sidecars, seeded beside the original."""

import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..catalog import jobs as rows
from ..errors import EXIT_OK, BadInput, NotFound
from ..filehash import sha256_file
from ..job import DONE, companion_name
from ..manifests import atomic_write
from ..publish import COMPANION_TAG, Companion, EmbeddedSeeder, PublishError, add_to_qbittorrent, build, parse_piece_size
from ..torrent import load_torrent
from .context import print_json


def register(sub) -> None:
    p = sub.add_parser("publish", help="make a companion torrent of a job's outputs and seed it")
    p.add_argument("job", metavar="JOB", help="any unique prefix of a job id")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--v1", dest="kind", action="store_const", const="v1", help="a v1 torrent (SHA-1 pieces)")
    kind.add_argument("--v2", dest="kind", action="store_const", const="v2", help="a v2 torrent (SHA-256 merkle trees)")
    kind.add_argument("--hybrid", dest="kind", action="store_const", const="hybrid",
                      help="a hybrid torrent, v1 and v2 (default)")
    p.add_argument("--piece-size", default="auto", metavar="auto|BYTES",
                   help="piece size in bytes, a power of two >= 16 KiB (default auto: by the payload's size)")
    p.add_argument("--tracker", action="append", default=[], metavar="URL", help="an announce URL (repeatable)")
    p.add_argument("--private", action="store_true", help="mark the torrent private (no DHT, PEX, LSD)")
    p.add_argument("--seed-with", choices=("qbittorrent", "embedded"), default="qbittorrent",
                   help="who seeds it: qBittorrent (default) or seedward's embedded libtorrent session")
    p.add_argument("--dry-run", action="store_true",
                   help="verify the outputs and make the torrent in memory (its info hashes); write, add and seed nothing")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run, kind="hybrid")


def run(args, ctx) -> int:
    try:
        job_id = rows.resolve_job(ctx.catalog, args.job)
    except ValueError as exc:
        raise BadInput(args.job, f"ambiguous job id: {exc}") from None
    if job_id is None:
        raise NotFound(f"no job matches {args.job!r}")
    job = rows.get_job(ctx.catalog, job_id)
    if job["state"] != DONE:
        raise PublishError(job_id, f"the job is {job['state']}; only a done job can be published")
    outputs = rows.get_outputs(ctx.catalog, job_id)
    if not outputs:
        raise PublishError(job_id, "the job made no outputs")
    original = ctx.catalog.get_torrent(job["torrent_id"])
    content = Path(job["workdir"]) / companion_name(original["name"], job_id)
    with ctx.progress.bar("checking the outputs", sum(o["size"] for o in outputs)) as bar:
        verify_outputs(content, outputs, progress=bar.advance)
    with ctx.progress.bar("hashing pieces", unit="items") as bar:
        raw = build(content, original=original, job_id=job_id, kind=args.kind,
                    piece_size=parse_piece_size(args.piece_size), trackers=args.tracker, private=args.private,
                    progress=lambda piece, total: bar(piece + 1, total))
    meta = load_torrent(raw)
    if args.dry_run:
        would = {"dry_run": True, "info_hash_v1": meta.info_hash_v1, "info_hash_v2": meta.info_hash_v2,
                 "kind": meta.kind, "pieces": meta.num_pieces, "piece_size": meta.piece_length,
                 "seeded_by": args.seed_with, "outputs": len(outputs)}
        if args.json:
            print_json(would)
        else:
            print(f"would publish companion {meta.id} ({meta.kind}, {meta.num_pieces} pieces of {meta.piece_length} B)"
                  f" of {len(outputs)} outputs, seeded by {args.seed_with}")
            print("(dry run: no .torrent written, nothing added to qBittorrent or recorded)")
        return EXIT_OK
    ctx.home.ensure()
    torrent_file = ctx.home.torrents / f"{meta.id}.torrent"
    atomic_write(torrent_file, raw)
    companion = Companion(meta, torrent_file, content.parent)
    settings = ctx.settings.jobs
    category = settings.companion_category if args.seed_with == "qbittorrent" else ""
    if args.seed_with == "qbittorrent":
        from ..instances import connect

        qbt = connect(ctx.settings, ctx.home)  # the first instance that sees the companion's folder (path_map)
        add_to_qbittorrent(qbt, companion, category)
    rows.add_companion(ctx.catalog, companion_id=meta.id, job_id=job_id, original_id=original["id"],
                       info_hash_v1=meta.info_hash_v1, info_hash_v2=meta.info_hash_v2, kind=meta.kind,
                       piece_length=meta.piece_length, torrent_file=str(torrent_file),
                       content_path=str(content.parent), seeded_by=args.seed_with, category=category)
    ctx.manifests.write(f"jobs/{job_id}/companions/{meta.id}.json", {
        "id": meta.id, "info_hash_v1": meta.info_hash_v1, "info_hash_v2": meta.info_hash_v2, "kind": meta.kind,
        "piece_size": meta.piece_length, "name": meta.name, "companion_of": original["id"], "job": job_id,
        "seeded_by": args.seed_with, "tag": COMPANION_TAG, "category": category,
    }, f"job {job_id}: published companion {meta.id} ({meta.kind})\n\njob {job_id}\ntorrent {original['id']}")
    ctx.catalog.add_event(original["id"], "companion_published",
                          f"{original['name']}: companion {meta.id[:12]} ({meta.kind}) of job {job_id}, seeded by "
                          f"{args.seed_with}", job=job_id, companion=meta.id)
    result = {"info_hash_v1": meta.info_hash_v1, "info_hash_v2": meta.info_hash_v2,
              "torrent_file": str(torrent_file), "seeded_by": args.seed_with}
    if args.json:
        print_json(result)
    else:
        print(f"companion {meta.id} ({meta.kind}, {meta.num_pieces} pieces of {meta.piece_length} B): {torrent_file}")
        print(f"  seeded by {args.seed_with}; the original {original['id'][:12]} keeps seeding, untouched")
    sys.stdout.flush()
    if args.seed_with == "embedded":
        from ..control import ControlError, request
        from ..errors import ServiceNotRunning

        try:  # the service's embedded seeder takes it over
            request(ctx.home, "seed_companion", id=meta.id)
        except (ServiceNotRunning, ControlError):
            seed_until_interrupted(companion, settings.embedded_listen)
    return EXIT_OK


def verify_outputs(content: Path, outputs, progress=None) -> None:
    """The outputs still are what their sidecars say (SHA-256), or the companion would carry false provenance.
    progress(n): n more bytes checked."""
    paths = [content / "output" / o["path"] for o in outputs]
    for path, o in zip(paths, outputs):
        if not path.is_file() or path.stat().st_size != o["size"]:
            raise PublishError(path, "output missing or changed since the job collected it")
    with ThreadPoolExecutor(max(2, os.cpu_count() or 2)) as pool:
        for path, o, digest in zip(paths, outputs, pool.map(sha256_file, paths)):
            if digest != o["sha256"]:
                raise PublishError(path, "output changed since the job collected it (SHA-256 differs from its sidecar)")
            if progress is not None:
                progress(o["size"])


def seed_until_interrupted(companion: Companion, listen: str) -> None:
    """Seed from this process until Ctrl-C / SIGTERM."""
    extra = {"listen_interfaces": listen}
    if not listen.startswith("127."):
        extra["outgoing_interfaces"] = ""
    seeder = EmbeddedSeeder(**extra)
    seeder.seed(companion.meta.raw, companion.save_path)
    print(f"seedward: seeding {companion.meta.id} from an embedded libtorrent session on port {seeder.port} "
          "until interrupted (Ctrl-C)", file=sys.stderr, flush=True)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        seeder.stop()
