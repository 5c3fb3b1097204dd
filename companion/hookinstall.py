"""qBittorrent's "run external program on torrent added / finished" set to seedward's hook, and back.

qBittorrent splits the program line itself (QProcess::splitCommand) and starts it without a
shell, inside its own filesystem: in a container, every path on that line must exist in the
container. So there are two hooks:

* on this host: `"<venv>/bin/seedward-hook" --home "<home>" [--instance NAME] added "%I" "%J" "%N" "%D" "%F"`
  (plugin/hook.py: the control socket, else the home's spool);
* in a container (the instance has `hook_dir`, a host folder mounted into it): plugin/seedward-hook.sh
  is copied into hook_dir and the line is `/bin/sh "<hook_dir as the container sees it>/seedward-hook.sh"
  added ...`, the path mapped back through the instance's path_map; the events land in hook_dir/spool,
  which the service drains.

A program the user had there keeps running: it is chained after `--` and put back by uninstall.
"""

import json
import os
import shutil
import sys
from pathlib import Path

from .errors import BadInput
from .manifests import atomic_write

# qBittorrent preference keys: (enabled, program) per hook event.
PREFS = {
    "added": ("autorun_on_torrent_added_enabled", "autorun_on_torrent_added_program"),
    "finished": ("autorun_enabled", "autorun_program"),
}
MARK = "seedward-hook"
SCRIPT = "seedward-hook.sh"
FIELDS = '"%I" "%J" "%N" "%D" "%F"'


def hook_executable() -> str:
    beside = Path(sys.executable).parent / "seedward-hook"
    found = str(beside) if beside.exists() else shutil.which("seedward-hook")
    if not found:
        raise BadInput("seedward-hook", "not found next to seedward or on PATH; reinstall seedward")
    return found


def _quoted(value: str, what: str) -> str:
    if '"' in value:
        raise BadInput(value, f"{what} must not contain a double quote (qBittorrent splits the command on quotes)")
    return f'"{value}"'


def hook_program(exe: str, home: Path, event: str, previous: str = "", instance: str = "") -> str:
    """The line for a hook on this host."""
    named = f" --instance {_quoted(instance, 'the instance name')}" if instance else ""
    program = (f'{_quoted(exe, "the hook path")} --home {_quoted(str(home), "the state home")}{named} {event} {FIELDS}')
    return f"{program} -- {previous}" if previous else program


def container_program(script_in_container: str, event: str, previous: str = "") -> str:
    """The line for the sh hook inside qBittorrent's container."""
    program = f'/bin/sh {_quoted(script_in_container, "the hook path in the container")} {event} {FIELDS}'
    return f"{program} -- {previous}" if previous else program


def saved_file(home, name: str, first: bool) -> Path:
    """Where the programs the user had are kept (per instance; the first keeps hook.json)."""
    return home.root / ("hook.json" if first else f"hook-{name}.json")


def place_script(hook_dir: Path) -> Path:
    """Copy the sh hook into hook_dir with its spool folder (group-writable and setgid: the container's
    user may be another member of the group)."""
    hook_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(hook_dir, 0o755)
    spool = hook_dir / "spool"
    spool.mkdir(exist_ok=True)
    os.chmod(spool, 0o2770)
    from importlib.resources import files

    source = files("plugin") / SCRIPT
    if not source.is_file():
        raise BadInput(SCRIPT, "the container hook is missing from this seedward install; reinstall seedward")
    target = hook_dir / SCRIPT
    atomic_write(target, source.read_bytes(), 0o755)
    return target


def plan(qbt, home, settings, *, several: bool, first: bool) -> tuple[dict, list[dict], dict]:
    """(new preferences, changes, the user's programs to keep) for one instance; changes nothing."""
    prefs = qbt.preferences()
    keep_file = saved_file(home, settings.name, first)
    saved = json.loads(keep_file.read_text()) if keep_file.exists() else {}
    hook_dir = Path(settings.hook_dir) if settings.hook_dir else None
    note = ""
    if hook_dir is not None:
        inside = qbt.path_map.to_qbt(str(hook_dir / SCRIPT))
        if qbt.path_map and not qbt.path_map.covers(hook_dir):
            note = (f"no path_map pair maps {hook_dir}: the container must see it at the same path")
    else:
        exe = hook_executable()
    new, changes = {}, []
    for event, (enabled_key, program_key) in PREFS.items():
        if program_key not in prefs:
            changes.append({"event": event, "changed": False, "instance": settings.name,
                            "note": f"this qBittorrent ({qbt.version}) has no 'run on torrent {event}' setting"})
            continue
        old_program, old_enabled = prefs[program_key] or "", bool(prefs.get(enabled_key))
        if MARK in old_program:
            previous = (saved.get(event) or {}).get("program", "") if (saved.get(event) or {}).get("enabled") else ""
        else:
            saved[event] = {"enabled": old_enabled, "program": old_program}
            previous = old_program if old_enabled and old_program.strip() else ""
        if hook_dir is not None:
            program = container_program(inside, event, previous)
        else:
            program = hook_program(exe, home.root, event, previous, settings.name if several else "")
        if program != old_program or not old_enabled:
            new[enabled_key], new[program_key] = True, program
        change = {"event": event, "changed": program != old_program or not old_enabled, "setting": program_key,
                  "before": old_program if old_enabled else "", "after": program, "chained": previous,
                  "instance": settings.name, "container": hook_dir is not None}
        if note:
            change["note"] = note
        changes.append(change)
    return new, changes, saved


def install(qbt, home, settings, *, several: bool, first: bool, dry_run: bool = False) -> list[dict]:
    """Set qBittorrent's hook for one instance (a container's: the script is placed in hook_dir first)."""
    new, changes, saved = plan(qbt, home, settings, several=several, first=first)
    if dry_run:
        return changes
    home.ensure()
    if settings.hook_dir:
        place_script(Path(settings.hook_dir))
    atomic_write(saved_file(home, settings.name, first), (json.dumps(saved, indent=2) + "\n").encode())
    if new:
        qbt.set_preferences(new)
    return changes


def uninstall(qbt, home, settings, *, first: bool, dry_run: bool = False) -> list[dict]:
    prefs = qbt.preferences()
    keep_file = saved_file(home, settings.name, first)
    saved = json.loads(keep_file.read_text()) if keep_file.exists() else {}
    new, changes = {}, []
    for event, (enabled_key, program_key) in PREFS.items():
        current = prefs.get(program_key) or ""
        if MARK not in current:
            changes.append({"event": event, "changed": False, "setting": program_key, "before": current,
                            "after": current, "instance": settings.name})
            continue
        restore = saved.get(event)
        if restore is None:  # no record: the chained part is what the user had
            rest = current.split(" -- ", 1)[1] if " -- " in current else ""
            restore = {"enabled": bool(rest), "program": rest}
        new[enabled_key], new[program_key] = bool(restore["enabled"]), restore["program"]
        changes.append({"event": event, "changed": True, "setting": program_key, "before": current,
                        "after": restore["program"] if restore["enabled"] else "", "instance": settings.name})
    if dry_run:
        return changes
    if new:
        qbt.set_preferences(new)
    keep_file.unlink(missing_ok=True)
    return changes
