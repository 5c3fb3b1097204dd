"""`seedward-hook [--home DIR] [--instance NAME] added|finished "%I" "%J" "%N" "%D" "%F" [-- PROGRAM ARGS...]`

qBittorrent's "Run external program on torrent added / finished" calls this. It checks the event
(companion/spool.py's rules: a valid info hash, known fields), tells the running service over
the control socket (companion/control.py's client) and, when the service is down, busy or
failing, appends the event to the spool (one atomic file), which the service drains: no event is
lost. After `--` comes the program the user had there before `seedward qbt install-hook`; it is
started detached with qBittorrent's own substitutions, so both run, whatever seedward decided.
With several qBittorrent instances on this host, `--instance` says which one called (the service maps
the event's paths with that instance's path_map). A qBittorrent in a container runs
plugin/seedward-hook.sh instead (companion/hookinstall.py), which only writes a spool entry.

Exit codes: 0 the service has the event or it is spooled; 2 a call it cannot use (usage, no
valid info hash: nothing sent, nothing spooled), the service refused it, or the spool cannot be
written. Standard library only at import (qBittorrent runs this on every add): the client and
the spool modules it uses are standard library only too (an import-linter contract says so).
"""

import os
import sys

from companion import control, spool
from companion.errors import ServiceNotRunning

TIMEOUT = 5.0  # a busy service still answers; past this the spool takes the event
USAGE = ('usage: seedward-hook [--home DIR] [--instance NAME] added|finished "%I" "%J" "%N" "%D" "%F" '
         '[-- PROGRAM ...]')


def _options(argv: list[str]) -> tuple[str, str, list[str]]:
    """(home, instance, the rest): --home and --instance come first, in any order."""
    home = instance = None
    while len(argv) >= 2 and argv[0] in ("--home", "--instance"):
        if argv[0] == "--home":
            home = argv[1]
        else:
            instance = argv[1]
        argv = argv[2:]
    return home or _home(), instance or "", argv


def _home() -> str:
    env = os.environ.get("SEEDWARD_HOME")
    if env:
        return os.path.expanduser(env)
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(xdg, "seedward")


def _chain(program: list[str]) -> None:
    """Start the user's previous program, detached, as qBittorrent would have."""
    import subprocess  # only when chaining: it costs milliseconds at every call

    try:
        subprocess.Popen(program, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    except OSError as exc:
        print(f"seedward-hook: cannot start the chained program {program[0]!r}: {exc.strerror}", file=sys.stderr)


def deliver(home: str, event: dict) -> int:
    """Hand a checked event to the service, else to the spool. Returns the exit code."""
    try:
        control.request(os.path.join(home, "control.sock"), "hook", timeout=TIMEOUT, **event)
        return 0
    except control.ServiceFailed as exc:
        reason = f"the service failed on it ({exc})"  # its fault, not the event's: the drain retries
    except (ServiceNotRunning, control.ServiceBusy, control.NoAnswer, OSError) as exc:
        reason = str(exc)
    except control.ControlError as exc:
        print(f"seedward-hook: the service refused the {event['event']} event of {event['name'] or event['hash']!r}:"
              f" {exc}", file=sys.stderr)
        return 2
    try:
        spool.append(os.path.join(home, "spool"), event)
    except OSError as exc:
        print(f"seedward-hook: cannot spool the event in {home} ({reason}): {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    home, instance, args = _options(argv)
    if len(args) < 2 or args[0] not in spool.EVENTS:
        print(USAGE, file=sys.stderr)
        return 2
    # The `--` that starts the chained program comes after the five fields (a name may be "--").
    fields = (args[1:6] + [""] * 5)[:5]
    rest = args[6:]
    chained = rest[1:] if rest[:1] == ["--"] else []
    event = dict(zip(("hash", "hash_v2", "name", "save_path", "content_path"), fields), event=args[0])
    if instance:
        event["instance"] = instance
    try:
        spool.check_event(event)
        code = deliver(home, event)
    except spool.BadEvent as exc:
        print(f"seedward-hook: cannot use this {args[0]} call: {exc}; nothing sent or spooled", file=sys.stderr)
        code = 2
    if chained:
        _chain(chained)
    return code


if __name__ == "__main__":
    sys.exit(main())
