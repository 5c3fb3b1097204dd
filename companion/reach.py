"""Is a torrent's payload reachable from this host? `unreachable` is a state of its own (never
`protected`, never healed into): a save path qBittorrent reports that does not exist here (a
qBittorrent in a container without `path_map`, a wrong mapping), or a filesystem that is gone (the
disk under a protected torrent unmounted: its folder is there, empty, on another device).
"""

import os
from pathlib import Path


def unreachable(save_path, devices=(), present=None) -> str | None:
    """Why the payload under save_path cannot be reached, or None. devices: the st_dev its files
    were cataloged on; present(): True when one of its cataloged files is there (asked only when
    the folder is on another device)."""
    if not save_path:
        return "qBittorrent reports no save path"
    path = Path(save_path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f"save path {path} does not exist on this host"
    except NotADirectoryError:
        return f"save path {path} does not exist on this host (a part of it is a file)"
    except PermissionError:
        return f"save path {path} cannot be read by seedward (permission denied)"
    except OSError as exc:
        return f"save path {path}: {exc.strerror or exc}"
    if not os.path.isdir(path):
        return f"save path {path} is not a folder"
    known = {d for d in devices if d is not None}
    if known and st.st_dev not in known and (present is None or not present()):
        return f"save path {path} is on another filesystem than its files were, and none of them is there (a disk not mounted?)"
    return None


def torrent_unreachable(catalog, torrent_id: str, save_path) -> str | None:
    """unreachable() for a cataloged torrent (its files' devices and paths from the catalog)."""
    from .catalog.reach import file_devices

    devices, paths = file_devices(catalog, torrent_id)
    return unreachable(save_path, devices, lambda: any_present(save_path, paths))


def hint(instance: str | None = "", several: bool = False) -> str:
    """What to set, for the message and status."""
    where = (f"[[instances]] name = {instance!r}: path_map" if several and instance else
             "path_map ([qbittorrent], or the instance's [[instances]] entry)" if instance is None else
             "[qbittorrent] path_map")
    return (f"if qBittorrent runs in a container, map its paths to this host's in {where} "
            "(pairs of [qBittorrent's path, this host's path]); else mount the disk or fix the save path in qBittorrent")


def any_present(save_path, rel_paths, limit: int = 8) -> bool:
    """Is one of these cataloged files (relative paths) there? Looks at a few only."""
    base = Path(save_path)
    for n, rel in enumerate(rel_paths):
        if n >= limit:
            break
        if os.path.lexists(base / rel):
            return True
    return False
