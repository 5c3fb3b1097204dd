"""The quarantine: the drifted bytes, kept before a heal writes over them (nothing a person or an
agent wrote is lost). One folder per response, `<UTC stamp>-<torrent id 12>/`, with `drift.json`
listing what is where (read by `seedward quarantine`, companion/quarantine.py).

Replaced or truncated files are kept whole (the drifted inode itself, or a copy when it has other
links); for pieces changed in place only the changed segments' bytes are copied; a symbolic link
is kept as a link, never followed. All or nothing: a full disk removes the folder (DiskFull) and
the heal does not go on.
"""

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..errors import disk_full_as, is_disk_full
from ..manifests import atomic_write
from ..torrent import TorrentMeta
from .classify import EXTENDED, MISSING
from .damage import FileDamage, HealError

log = logging.getLogger(__name__)

COPY_BYTES = 4 * 1024 * 1024


@dataclass
class Quarantined:
    folder: Path
    files: list[dict] = field(default_factory=list)  # what was kept for each file


def quarantine_folder(root: Path, torrent_id: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    folder = Path(root) / f"{stamp}-{torrent_id[:12]}"
    folder.mkdir(parents=True, exist_ok=False, mode=0o700)
    return folder


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_range(src_fd: int, dst: Path, offset: int, length: int) -> int:
    """Copy [offset, offset+length) of src into a new file; returns bytes copied (less at EOF)."""
    done = 0
    with open(dst, "wb") as out:
        while done < length:
            data = os.pread(src_fd, min(COPY_BYTES, length - done), offset + done)
            if not data:
                break
            out.write(data)
            done += len(data)
        out.flush()
        os.fsync(out.fileno())
    return done


def is_link(path) -> bool:
    return os.path.islink(path)


def break_link(path: Path) -> None:
    """Give a hard-linked file its own inode with the same bytes (copy, fsync, rename over it): the
    other links (a library copy) keep the old inode and whatever is written to them."""
    tmp = path.with_name(f".{path.name}.seedward-unlink")
    shutil.copyfile(path, tmp)  # copy_file_range: a reflink or in-kernel copy where possible
    os.chmod(tmp, os.stat(path).st_mode & 0o7777)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def quarantine(meta: TorrentMeta, damages: list[FileDamage], folder: Path, *, keep_whole: bool = False,
               snapshot_id: str | None = None) -> Quarantined:
    """Keep the drifted bytes in `folder` before anything is written over them.

    Replaced or truncated files are kept there whole (the drifted inode itself, or a copy when it
    has other links); the payload path is never left empty: the heal renames over it. For pieces
    changed in place (and an extended
    file) only the changed segments' current bytes, and the bytes past the torrent's size, are
    copied: every other byte of the file still equals the snapshot, so nothing written is lost.
    keep_whole copies the whole drifted file instead and leaves it in place (a heal by the swarm).
    `drift.json` in the folder lists what is where (with when, and the snapshot the heal wrote from).
    All or nothing: when anything cannot be kept (a full disk: DiskFull), the folder is removed
    and nothing is written to the payload.
    """
    kept = Quarantined(folder)
    try:
        with disk_full_as(folder, lambda: _needed(damages, meta, keep_whole)):
            for dmg in damages:
                kept.files.append(_keep(meta, dmg, folder, keep_whole))
            record = {"torrent": meta.id, "name": meta.name, "created_at": datetime.now(timezone.utc).isoformat(),
                      "snapshot": snapshot_id, "files": kept.files}
            atomic_write(folder / "drift.json", (json.dumps(record, indent=2) + "\n").encode())
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return kept


def _keep_whole(src: Path, dst: Path) -> str:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if os.lstat(src).st_nlink == 1:
        try:
            os.link(src, dst, follow_symlinks=False)
            return "whole file (the drifted inode, kept)"
        except OSError as exc:
            if exc.errno not in (18, 1, 95):  # EXDEV, EPERM, EOPNOTSUPP: copied below
                raise
    shutil.copy2(src, dst, follow_symlinks=False)
    with open(dst, "rb") as fh:
        os.fsync(fh.fileno())
    return "whole file (copy)"


def _needed(damages, meta, keep_whole: bool) -> int:
    """Bytes a quarantine copies (moves within a filesystem cost none)."""
    return sum(d.entry.size if keep_whole else sum(s.length for s in d.segments(meta)) for d in damages
               if not d.drift.whole_file or keep_whole)


def _keep(meta: TorrentMeta, dmg: FileDamage, folder: Path, keep_whole: bool) -> dict:
    rel = dmg.entry.path
    record = {"path": rel, "kind": dmg.drift.kind, "pieces": dmg.drift.pieces, "hardlinked": dmg.drift.hardlinked,
              "detail": dmg.drift.detail}
    try:
        if dmg.drift.kind == MISSING or not os.path.lexists(dmg.path):
            record["kept"] = "nothing (the file was gone)"
        elif is_link(dmg.path):
            record["link"] = os.readlink(dmg.path)
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(record["link"], folder / rel)
            record["kept"] = "the symbolic link itself (not followed)"
            record["file"] = rel
        elif keep_whole:
            dst = folder / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(dmg.path, dst)
            with open(dst, "rb") as fh:
                os.fsync(fh.fileno())
            record["kept"] = "whole file (copy)"
            record["file"] = rel
        elif dmg.drift.whole_file:
            # Kept without leaving a gap at the payload path (the heal renames over it): a second link
            # to the drifted inode, or a copy when it has other links (a library's: it would change).
            record["kept"] = _keep_whole(dmg.path, folder / rel)
            record["file"] = rel
        else:
            record["ranges"] = _keep_ranges(meta, dmg, folder)
            record["kept"] = "changed ranges; every other byte equals the snapshot"
    except OSError as exc:
        if is_disk_full(exc):
            raise
        raise HealError(dmg.path, f"cannot keep the drifted bytes in {folder}: {exc.strerror or exc}") from exc
    return record


def _keep_ranges(meta: TorrentMeta, dmg: FileDamage, folder: Path) -> list[dict]:
    out_dir = folder / (dmg.entry.path + ".drift")
    out_dir.mkdir(parents=True, exist_ok=True)
    ranges = []
    fd = os.open(dmg.path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        spans = [(s.offset, s.length) for s in dmg.segments(meta)]
        if dmg.drift.kind == EXTENDED and size > dmg.entry.size:
            spans.append((dmg.entry.size, size - dmg.entry.size))
        for offset, length in spans:
            name = f"{offset:016d}-{length}.bin"
            got = _copy_range(fd, out_dir / name, offset, length)
            ranges.append({"offset": offset, "length": got, "file": f"{dmg.entry.path}.drift/{name}"})
    finally:
        os.close(fd)
    _fsync_dir(out_dir)
    return ranges
