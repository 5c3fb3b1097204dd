"""seedward's own places are never payload: a torrent with a file inside the state home, the store,
the quarantine or the scratch folder is `excluded`, never protected, snapshotted or healed (healing it
would write over seedward's own files, and the user's later edits of e.g. config.toml would be
"healed" away).

Companion torrents are the one exception: `publish` seeds them from the jobs folder
(`<home>/jobs/<job id>/<companion>/` by default), so a torrent whose files all lie in a job's
companion folder is payload like any other.
"""

import os
from pathlib import Path


def own_places(home, settings) -> list[tuple[str, str]]:
    """[(resolved path, what it is)], the most specific first."""
    places = [(home.root, "seedward's state home")]
    store = Path(settings.store.path).expanduser() if settings.store.path else home.store
    scratch = Path(settings.drill.scratch).expanduser() if settings.drill.scratch else home.scratch
    places += [(store, "seedward's snapshot store"), (home.quarantine, "seedward's quarantine"),
               (scratch, "seedward's scratch folder")]
    out = {}
    for path, what in places:
        out.setdefault(os.path.realpath(os.path.abspath(path)), what)
    return sorted(out.items(), key=lambda item: -len(item[0]))


def companion_root(home, settings) -> str:
    from .job import jobs_root

    return os.path.realpath(jobs_root(home, settings))


def reason(home, settings, paths) -> str | None:
    """Why these payload paths (absolute paths of one torrent's files) must not be protected, or None.
    Each file's folder is resolved once (symlinked save paths and folders included)."""
    places = own_places(home, settings)
    jobs = companion_root(home, settings)
    resolved: dict[str, str] = {}
    for path in paths:
        folder, name = os.path.split(os.path.abspath(os.fspath(path)))
        real = resolved.get(folder)
        if real is None:
            real = resolved[folder] = os.path.realpath(folder)
        full = os.path.join(real, name)
        if _inside(full, jobs) and _companion_payload(full, jobs):
            continue
        for place, what in places:
            if _inside(full, place):
                return f"its file {full} lies inside {what} ({place}): seedward never protects or heals its own files"
    return None


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _companion_payload(path: str, jobs: str) -> bool:
    """<jobs>/<job id>/<companion folder>/output|provenance/...: what publish seeds (not a job's scratch)."""
    parts = Path(path).relative_to(jobs).parts
    return len(parts) >= 4 and parts[2] in ("output", "provenance")
