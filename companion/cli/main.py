"""`seedward`: one module per verb (`*_cmd.py` in this package), each with `register(subparsers)`."""

import argparse
import importlib
import logging
import pkgutil
import sys
from pathlib import Path

from .. import __version__
from ..childenv import take_secrets
from ..errors import EXIT_ERROR, Error
from .context import Context


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser with every verb; with argv naming a verb `X` that has a module `X_cmd`, just
    that one (importing every verb's dependencies cost ~1 s of startup on each command)."""
    parser = argparse.ArgumentParser(prog="seedward", description="A companion for qBittorrent seeders.")
    parser.add_argument("--version", action="version", version=f"seedward {__version__}")
    parser.add_argument("--home", metavar="DIR", help="state home (default: $SEEDWARD_HOME or ~/.local/share/seedward)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.endswith("_cmd"))
    verb = _verb(argv)
    if verb is not None and f"{verb}_cmd" in modules:
        modules = [f"{verb}_cmd"]
    for name in modules:
        importlib.import_module(f"{__package__}.{name}").register(sub)
    return parser


def _verb(argv: list[str] | None) -> str | None:
    """The first word of argv that is not a global option (or its value)."""
    args = iter(argv or [])
    for arg in args:
        if arg == "--home":
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def setup_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> int:
    take_secrets()  # before any verb's imports start a child: none inherits seedward's secrets
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    setup_logging(args.verbose)
    ctx = Context(args.home)
    try:
        code = args.func(args, ctx)
    except Error as exc:
        print(f"seedward: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("seedward: interrupted", file=sys.stderr)
        code = 130
    finally:
        ctx.close()
    return int(code or 0)


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
