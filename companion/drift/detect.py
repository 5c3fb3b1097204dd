"""Quick-verify a cataloged torrent's files and classify what changed (the drift monitor, the
scrub, `seedward verify` and `seedward restore` share it)."""

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..catalog import drift as rows
from ..errors import BadInput
from ..heal import FileDamage
from ..locate import catalog_meta
from ..scan import QuickResult, quick_scan
from .classify import FALSE_ALARM, Baseline, Drift, Observed, classify


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


def detect_drift(catalog, tid: str, indices: set[int] | None = None, *, meta=None, rate: float = 0.0,
                 cancel=None) -> Detection:
    began = time.monotonic()
    cat_meta, save_path = catalog_meta(catalog, tid)
    meta = meta or cat_meta
    records = {f["file_index"]: f for f in catalog.get_files(tid)}
    if indices is None:
        indices = set(records)  # the cataloged files: a partly downloaded torrent's skipped ones are not
    result = quick_scan(meta, save_path, rows.baseline_hashes(catalog, tid), files=indices, rate=rate, cancel=cancel)
    entries = {e.index: e for e in meta.real_files}
    found = Detection(meta, save_path, result)
    for qf in result.files:
        rec, st = records.get(qf.file_index), qf.stat
        if rec is None:
            raise BadInput(tid, f"file {entries[qf.file_index].path} is not in the catalog; catalog it again")
        drift = classify(Baseline(rec["size"], rec["inode"], rec["device"]),
                         Observed(qf.status, tuple(qf.bad_segments), st.size if st else None,
                                  st.inode if st else None, st.device if st else None, st.nlink if st else 1))
        found.drifts[qf.file_index] = drift
        if drift.kind != FALSE_ALARM:
            found.damages.append(FileDamage(entries[qf.file_index], qf.path, drift))
    found.seconds = time.monotonic() - began
    return found


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
