"""Quick-verify a cataloged torrent's files and classify what changed (the drift monitor, the
scrub, `seedward verify` and `seedward restore` share it)."""

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..catalog import drift as rows
from ..errors import BadInput
from ..locate import catalog_meta
from ..piece_plan import file_segments
from ..quickscan import QuickResult, quick_scan
from .classify import FALSE_ALARM, MISSING, REPLACED, Baseline, Drift, Observed, classify
from .heal import FileDamage


@dataclass
class Detection:
    meta: object
    save_path: Path
    result: QuickResult
    drifts: dict[int, Drift] = field(default_factory=dict)  # every checked file, false alarms included
    damages: list[FileDamage] = field(default_factory=list)  # the files with drift
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.damages

    @property
    def bad_pieces(self) -> list[int]:
        return sorted(set(self.result.bad_pieces) | {p for d in self.damages for p in d.drift.pieces})


def detect_drift(catalog, tid: str, indices: set[int] | None = None, *, meta=None, rate: float = 0.0,
                 cancel=None, progress=None) -> Detection:
    began = time.monotonic()
    cat_meta, save_path = catalog_meta(catalog, tid)
    meta = meta or cat_meta
    records = {f["file_index"]: f for f in catalog.get_files(tid)}
    if indices is None:
        indices = set(records)  # the cataloged files: a partly downloaded torrent's skipped ones are not
    entries = {e.index: e for e in meta.real_files}
    # A seeded file replaced by a symbolic link (or anything but a regular file) is never read through.
    odd = {i: why for i in indices if i in entries and entries[i].symlink is None
           and (why := not_a_file(save_path / entries[i].path))}
    result = quick_scan(meta, save_path, rows.baseline_hashes(catalog, tid), files=set(indices) - set(odd),
                        rate=rate, cancel=cancel, progress=progress)
    found = Detection(meta, save_path, result)
    for index, why in sorted(odd.items()):
        entry = entries[index]
        segs = tuple((s.piece, s.offset, s.length) for s in file_segments(meta, entry))
        drift = Drift(REPLACED, segs, False, why)
        found.drifts[index] = drift
        found.damages.append(FileDamage(entry, save_path / entry.path, drift))
    for qf in result.files:
        rec, st = records.get(qf.file_index), qf.stat
        if rec is None:
            raise BadInput(tid, f"file {entries[qf.file_index].path} is not in the catalog; catalog it again")
        entry = entries[qf.file_index]
        if entry.symlink is not None:  # a BEP 47 link of the torrent: checked as a link, made again as one
            drift = Drift(FALSE_ALARM) if qf.status == "ok" else Drift(
                MISSING if qf.status == "missing" else REPLACED, (), False,
                f"the torrent's symbolic link to {entry.symlink} is {'gone' if qf.status == 'missing' else 'changed'}")
            found.drifts[qf.file_index] = drift
            if drift.kind != FALSE_ALARM:
                found.damages.append(FileDamage(entry, qf.path, drift))
            continue
        drift = classify(Baseline(rec["size"], rec["inode"], rec["device"]),
                         Observed(qf.status, tuple(qf.bad_segments), st.size if st else None,
                                  st.inode if st else None, st.device if st else None, st.nlink if st else 1))
        found.drifts[qf.file_index] = drift
        if drift.kind != FALSE_ALARM:
            found.damages.append(FileDamage(entries[qf.file_index], qf.path, drift))
    found.seconds = time.monotonic() - began
    return found


def not_a_file(path) -> str | None:
    """Why the payload path is not a plain file (it is a symbolic link, a folder, ...), or None."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None  # missing: the quick verify says so
    except OSError as exc:
        return f"cannot stat: {exc.strerror}"
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"replaced by a symbolic link to {target}"
    if not stat.S_ISREG(st.st_mode):
        return "replaced by something that is not a regular file"
    return None


def select_files(meta, paths) -> set[int] | None:
    """File indices for paths as the torrent names them (with or without the torrent's folder)."""
    if not paths:
        return None
    out = set()
    for p in paths:
        p = p.strip("/")
        hit = [e.index for e in meta.real_files if e.path == p or e.path.split("/", 1)[-1] == p]
        if not hit:
            raise BadInput(p, f"not a file of {meta.name}")
        out.update(hit)
    return out
