"""`seedward demo`: the quickstart demo on embedded defaults."""

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the demo on sample torrents")
    p.add_argument("--workdir", type=Path, help="keep the demo's files here instead of a temp folder")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    import logging

    from ..demo import run_demo

    if not args.verbose:
        # The demo narrates what the service does; its warnings would say it twice.
        logging.getLogger().setLevel(logging.ERROR)
    return run_demo(args.workdir)
