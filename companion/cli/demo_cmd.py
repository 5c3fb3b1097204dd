"""`seedward demo`: the quickstart demo on embedded defaults."""

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the demo on sample torrents")
    p.add_argument("--workdir", type=Path, help="keep the demo's files here instead of a temp folder")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    from ..demo import run_demo

    return run_demo(args.workdir)
