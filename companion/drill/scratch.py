"""Scratch folders for drills: fresh, marked, bounded, and removed even after a crash.

Each drill gets `<scratch>/drill-<id>/` holding a marker (`drill.json`: pid and the process's
start time), `payload/` (the restore) and `swarm/` (the second session's download). The folder
is staged as `.stage-<id>` and renamed once the marker is in, so every `drill-*` folder has one.
`cleanup_scratch` removes marked folders whose process is gone; it never touches anything else.
"""

import json
import logging
import os
import shutil
from pathlib import Path

from ..errors import EXIT_DISK_FULL, Error

log = logging.getLogger(__name__)

MARKER = "drill.json"
SPACE_MARGIN = 64 * 1024 * 1024  # room for libtorrent's and the filesystem's own needs


class ScratchFull(Error):
    """scratch {}: {}"""

    exit_code = EXIT_DISK_FULL


class ScratchUnsafe(Error):
    """scratch {}: {}"""


def scratch_root(home, settings) -> Path:
    """`[drill] scratch` from config.toml, else the state home's scratch folder."""
    configured = settings.drill.scratch if settings is not None else ""
    return Path(configured).expanduser() if configured else home.scratch


def _proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (tells a reused pid apart)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(marker: dict) -> bool:
    pid = marker.get("pid")
    return isinstance(pid, int) and _proc_start(pid) is not None and _proc_start(pid) == marker.get("start")


def check_not_seeding_path(root: Path, save_path: str | None, top_names: set[str]) -> None:
    """The scratch folder must not overlap the torrent's live payload, in either direction."""
    if not save_path:
        return
    root = root.resolve()
    save = Path(save_path).resolve()
    if save == root or save.is_relative_to(root):
        raise ScratchUnsafe(root, f"contains the seeding path {save}")
    for name in top_names:
        content = save / name
        if root == content or root.is_relative_to(content):
            raise ScratchUnsafe(root, f"is inside the seeding payload {content}")


def check_space(root: Path, needed: int, max_bytes: int = 0) -> None:
    """Refuse before writing anything when the scratch disk or the configured bound is too small."""
    if max_bytes and needed > max_bytes:
        raise ScratchFull(root, f"the drill needs {needed:,} bytes, more than the {max_bytes:,} allowed"
                                " by [drill] scratch_max_mb")
    free = shutil.disk_usage(root).free
    if needed + SPACE_MARGIN > free:
        raise ScratchFull(root, f"the drill needs {needed:,} bytes (+{SPACE_MARGIN // 2**20} MiB margin),"
                                f" only {free:,} free")


class Scratch:
    """A fresh scratch folder for one drill; a context manager that always removes it."""

    def __init__(self, root: Path, drill_id: str):
        self.root = Path(root)
        self.drill_id = drill_id
        self.path = self.root / f"drill-{drill_id}"

    @property
    def payload(self) -> Path:
        return self.path / "payload"

    @property
    def swarm(self) -> Path:
        return self.path / "swarm"

    def create(self) -> "Scratch":
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        stage = self.root / f".stage-{self.drill_id}"
        stage.mkdir(mode=0o700)
        pid = os.getpid()
        marker = {"pid": pid, "start": _proc_start(pid), "drill": self.drill_id}
        (stage / MARKER).write_text(json.dumps(marker))
        (stage / "payload").mkdir()
        (stage / "swarm").mkdir()
        os.rename(stage, self.path)
        return self

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self.path.exists():
            log.warning("could not remove scratch folder %s", self.path)

    def __enter__(self) -> "Scratch":
        return self.create()

    def __exit__(self, *exc) -> None:
        self.remove()


def _read_marker(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def cleanup_scratch(home, settings, catalog=None) -> list[Path]:
    """Remove drill folders left by dead processes (call at start). Returns what was removed.

    With a catalog, the drills those processes were running are recorded as failed.
    """
    root = scratch_root(home, settings)
    removed = []
    if root.is_dir():
        for entry in sorted(root.iterdir()):
            if entry.name.startswith(".stage-") and entry.is_dir():
                marker = _read_marker(entry)
                if marker is None:
                    # a crash between mkdir and the marker write leaves it empty; rmdir refuses otherwise
                    try:
                        entry.rmdir()
                        removed.append(entry)
                    except OSError:
                        pass
                    continue
            elif not (entry.name.startswith("drill-") and entry.is_dir()):
                continue
            marker = _read_marker(entry)
            if marker is None or _alive(marker):
                continue
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
            log.info("removed scratch left by an interrupted drill: %s", entry)
    if catalog is not None:
        from ..catalog import drills as drill_rows

        dead = [r["id"] for r in drill_rows.running_drills(catalog) if not process_alive(r["process"])]
        if dead:
            drill_rows.fail_interrupted(catalog, dead, "interrupted: the drilling process ended before the drill did")
    return removed


def this_process() -> str:
    """'pid:start' naming this process across pid reuse."""
    pid = os.getpid()
    return f"{pid}:{_proc_start(pid)}"


def process_alive(process: str | None) -> bool:
    try:
        pid, start = (process or "").split(":", 1)
        return _proc_start(int(pid)) == start
    except ValueError:
        return False
