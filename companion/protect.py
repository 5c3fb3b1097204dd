"""Protect one torrent: verify its payload, record it in the catalog, commit its manifest."""

import logging

from .manifests import atomic_write, torrent_manifest, torrent_relpath
from .scan import Scanner

log = logging.getLogger(__name__)


def skipped_note(meta, result) -> str:
    """" (3 of 5 files; the others are skipped in qBittorrent)" for a partly downloaded torrent."""
    if len(result.files) == len(meta.real_files):
        return ""
    return f" ({len(result.files)} of {len(meta.real_files)} files; the others are skipped in qBittorrent)"


def catalog_torrent(catalog, manifests, meta, save_path, *, reason: str, scanner: Scanner | None = None,
                    torrent_file=None, chunk_roots: bool = False, rate: float = 0.0, cancel=None,
                    keep_torrent=None, only_files: set[int] | None = None, accept=None, progress=None, **fields):
    """Full-scan and record. A payload that does not match is recorded as baseline_bad and its
    hashes are not kept as the baseline. keep_torrent: a path to save the .torrent to, written
    only once the scan has run (bad input leaves nothing behind). only_files: the files to verify
    and catalog (the others are skipped in qBittorrent). accept(result): called between the read
    and the record; it returns False to have nothing recorded (a write overlapped the read: the
    result is None then), or a protection state for a payload that does not match (`damaged`:
    it drifted after qBittorrent completed it), or True. progress(done, total): the scan's.
    Returns the ScanResult."""
    scanner = scanner or Scanner()
    result = scanner.full_scan(meta, save_path, chunk_roots=chunk_roots, rate=rate, cancel=cancel,
                               only_files=only_files, progress=progress)
    verdict = accept(result) if accept is not None else True
    if verdict is False:
        return None
    if keep_torrent is not None:
        if not keep_torrent.exists():
            atomic_write(keep_torrent, meta.raw)
        torrent_file = str(keep_torrent)
    previous = catalog.get_torrent(meta.id)
    had_baseline = previous is not None and previous["protection"] not in ("pending", "baseline_bad")
    if result.ok:
        state = "protected"
    elif isinstance(verdict, str):
        state = verdict
    else:
        state = "damaged" if had_baseline else "baseline_bad"
    catalog.record_scan(result, reason=reason, save_path=str(save_path), torrent_file=torrent_file,
                        protection=state, keep_baseline=result.ok, **fields)
    if result.ok:
        doc = torrent_manifest(meta, result.files)
        manifests.write(torrent_relpath(meta.id), doc,
                        f"{meta.name}: cataloged {len(result.files)} files ({reason})\n\ntorrent {meta.id}")
        catalog.add_event(meta.id, "protected", f"{meta.name}: verified against its torrent and cataloged"
                          + skipped_note(meta, result), reason=reason)
    else:
        level = "error"
        catalog.add_event(meta.id, state, f"{meta.name}: payload does not match its torrent "
                          f"({len(result.bad_pieces)} bad pieces)"
                          + ("; it changed after qBittorrent completed it" if isinstance(verdict, str) else ""),
                          level=level, bad_pieces=result.bad_pieces[:100])
        log.error("%s: payload does not match its torrent: %d bad pieces", meta.name, len(result.bad_pieces))
    return result
