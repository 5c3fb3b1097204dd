"""`seedward`: one module per verb (`*_cmd.py` in this package), each with `register(subparsers)`.

Global options (--home, --json, --quiet, --verbose) are accepted anywhere on the line, before or
after the verb, as restic's are. The settings are read before any verb runs, so a bad or unknown
key in config.toml is an error for every verb, not only for the ones that happen to read it.
"""

import argparse
import importlib
import logging
import os
import pkgutil
import signal
import sys
from pathlib import Path

from .. import __version__
from ..childenv import take_secrets
from ..errors import EXIT_ERROR, Error
from .context import Context
from .progress import Progress

EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE  # the reader went away (`seedward jobs | head`): as a shell reports it

# Global options: (flags, argparse keywords, default at the top level).
GLOBAL_OPTIONS = (
    (("--home",), {"metavar": "DIR", "help": "state home (default: $SEEDWARD_HOME or ~/.local/share/seedward)"},
     None),
    (("--json",), {"action": "store_true", "help": "print JSON for machines (one object; JSON lines where a verb "
                                                   "streams); implies no progress"}, False),
    (("-q", "--quiet"), {"action": "store_true", "help": "no progress display, only errors on stderr"}, False),
    (("-v", "--verbose"), {"action": "count", "help": "more log output on stderr (repeatable)"}, 0),
)
GLOBAL_DESTS = ("home", "json", "quiet", "verbose")
VALUE_OPTIONS = ("--home",)  # global options that take a value


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser with every verb; with argv naming a verb `X` that has a module `X_cmd`, just
    that one (importing every verb's dependencies cost ~1 s of startup on each command)."""
    parser = argparse.ArgumentParser(prog="seedward", description="A companion for qBittorrent seeders.")
    parser.add_argument("--version", action="version", version=f"seedward {__version__}")
    for flags, kwargs, default in GLOBAL_OPTIONS:
        parser.add_argument(*flags, **kwargs, default=default)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.endswith("_cmd"))
    verb = _verb(argv)
    if verb is not None and f"{verb}_cmd" in modules:
        modules = [f"{verb}_cmd"]
    for name in modules:
        importlib.import_module(f"{__package__}.{name}").register(sub)
    for child in _subparsers(parser):
        _add_globals(child)
    return parser


def _subparsers(parser: argparse.ArgumentParser):
    """Every parser below this one (verbs and their sub-verbs)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                yield child
                yield from _subparsers(child)


def _add_globals(parser: argparse.ArgumentParser) -> None:
    """The global options on a verb's parser too. Their default there is SUPPRESS: a verb's parser
    must not overwrite what was given before the verb (argparse copies a sub-parser's defaults over
    the main namespace). A verb's own --json keeps its help text; a verb without one says so."""
    own = {a.dest: a for a in parser._actions}
    json_action = own.get("json")
    parser.set_defaults(json_supported=json_action is not None)
    for flags, kwargs, _ in GLOBAL_OPTIONS:
        dest = flags[-1].lstrip("-")
        if dest in own:
            own[dest].default = argparse.SUPPRESS
            if own[dest].help is None:
                own[dest].help = kwargs["help"]
            continue
        extra = dict(kwargs)
        if dest == "json":
            extra["help"] = argparse.SUPPRESS  # accepted (a global), refused below: this verb prints no JSON
        parser.add_argument(*flags, **extra, default=argparse.SUPPRESS)


def _verb(argv: list[str] | None) -> str | None:
    """The first word of argv that is not a global option (or its value)."""
    args = iter(argv or [])
    for arg in args:
        if arg in VALUE_OPTIONS:
            next(args, None)
        elif arg == "--":
            return next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> int:
    take_secrets()  # before any verb's imports start a child: none inherits seedward's secrets
    # GitPython runs `git version` when first imported and, with no git, raises ImportError: every
    # verb importing it (and --help, which imports all) died in a traceback. Quiet: the verb that
    # uses the manifests repo says so in one line (manifests.ManifestRepo).
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    if args.json and not getattr(args, "json_supported", True):
        parser.error(f"--json: `seedward {args.command}` has no JSON output")
    setup_logging(args.verbose, args.quiet)
    ctx = None
    try:
        ctx = Context(args.home, progress=Progress.for_args(args))
        ctx.settings  # noqa: B018 - every verb: a bad config.toml is an error before anything runs
        code = args.func(args, ctx)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
    except BrokenPipeError:
        return _pipe_closed()
    except Error as exc:
        print(f"seedward: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("seedward: interrupted", file=sys.stderr)
        code = 130
    finally:
        if ctx is not None:
            ctx.close()
    return int(code or 0)


def _pipe_closed() -> int:
    """stdout's reader is gone: stop quietly (no traceback), and keep Python's exit-time flush of
    stdout from failing again (the standard library's advice on SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
