"""`seedward-hook [--home DIR] added|finished "%I" "%J" "%N" "%D" "%F" [-- PROGRAM ARGS...]`

qBittorrent's "Run external program on torrent added / finished" calls this. It tells the
running service over the control socket; when the service is down it appends the event to the
spool (one atomic file), which the service drains at start: no event is lost. After `--`
comes the program the user had there before `seedward qbt install-hook`; it is started
detached with qBittorrent's own substitutions, so both run.

Stdlib only at import (qBittorrent runs this on every add): no third-party module is loaded.
"""

import json
import os
import socket
import sys

EVENTS = ("added", "finished")
TIMEOUT = 5.0  # a busy service still answers; past this the spool takes the event


def _home(argv: list[str]) -> tuple[str, list[str]]:
    if len(argv) >= 2 and argv[0] == "--home":
        return argv[1], argv[2:]
    env = os.environ.get("SEEDWARD_HOME")
    if env:
        return os.path.expanduser(env), argv
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(xdg, "seedward"), argv


def _tell_service(sock_path: str, event: dict) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(TIMEOUT)
            sock.connect(sock_path)
            sock.sendall((json.dumps({"op": "hook", **event}) + "\n").encode())
            line = sock.makefile("rb").readline(1 << 16)
        return bool(line) and json.loads(line).get("ok", False)
    except (OSError, ValueError):
        return False


def _chain(program: list[str]) -> None:
    """Start the user's previous program, detached, as qBittorrent would have."""
    import subprocess  # only when chaining: it costs milliseconds at every call

    try:
        subprocess.Popen(program, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    except OSError as exc:
        print(f"seedward-hook: cannot start the chained program {program[0]!r}: {exc.strerror}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    home, args = _home(argv)
    if len(args) < 2 or args[0] not in EVENTS:
        print('usage: seedward-hook [--home DIR] added|finished "%I" "%J" "%N" "%D" "%F" [-- PROGRAM ...]',
              file=sys.stderr)
        return 2
    # The `--` that starts the chained program comes after the five fields (a name may be "--").
    fields = (args[1:6] + [""] * 5)[:5]
    rest = args[6:]
    chained = rest[1:] if rest[:1] == ["--"] else []
    event = dict(zip(("hash", "hash_v2", "name", "save_path", "content_path"), fields), event=args[0])
    code = 0
    if not _tell_service(os.path.join(home, "control.sock"), event):
        try:
            from companion import spool

            spool.append(os.path.join(home, "spool"), event)
        except OSError as exc:
            print(f"seedward-hook: cannot spool the event in {home}: {exc.strerror or exc}", file=sys.stderr)
            code = 2
    if chained:
        _chain(chained)
    return code


if __name__ == "__main__":
    sys.exit(main())
