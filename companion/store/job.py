"""The service's "snapshot" job kind: `register(service)` plugs it in."""

import logging

from ..errors import NotFound
from ..locate import catalog_meta
from .results import REASONS
from .store import Store

log = logging.getLogger(__name__)


def register(service) -> None:
    service.register_job("snapshot", snapshot_job)
    service.register_job("verify_packs", verify_packs_job)


def service_store(service) -> Store:
    """One Store per service (its index is cached in memory)."""
    store = getattr(service, "_store", None)
    if store is None:
        store = Store.for_home(service.home, service.settings, service.catalog, scanner=service.scanner)
        service._store = store
    return store


def snapshot_job(service, job) -> None:
    """Payload: reason (auto | preflight | manual; anything else, such as the protect job's
    "hook" or "sync", is recorded as auto), files (file indices, optional)."""
    row = service.catalog.get_torrent(job.torrent_id)
    if row is None or not row["torrent_file"] or not row["save_path"]:
        raise NotFound(f"snapshot job {job.id}: torrent {job.torrent_id} is not cataloged with a .torrent and save path")
    meta, save_path = catalog_meta(service.catalog, job.torrent_id)  # qBittorrent's renames applied
    reason = job.payload.get("reason", "auto")
    snap = service_store(service).snapshot(meta, save_path, reason if reason in REASONS else "auto",
                                           job_id=job.id, files=job.payload.get("files"))
    trusted = f", {snap.trusted_bytes:,} copied on the catalog's verification" if snap.trusted_bytes else ""
    service.emit("snapshot", meta.id, f"{meta.name}: snapshot {snap.id[:12]} ({snap.new_bytes:,} new bytes{trusted})",
                 snapshot=snap.id, bytes=snap.bytes, new_bytes=snap.new_bytes, trusted_bytes=snap.trusted_bytes)


def verify_packs_job(service, job) -> None:
    """After each scheduled scrub: read back the packs no check has read yet, then the least
    recently checked ones, up to the scrub's share of the store."""
    scrub = service.settings.scrub
    result = service_store(service).scrub_packs(scrub.share_percent, rate=scrub.read_rate_mb * 1e6)
    if result.ok:
        service.emit("store_checked", None, f"store: {result.packs} packs read back, {result.chunks} chunks"
                     f" ({result.bytes_read:,} bytes) match their ids", packs=result.packs, bytes=result.bytes_read)
    else:
        service.emit("store_corrupt", None, f"store: {len(result.errors)} chunks do not match their ids; the snapshots"
                     f" using them are marked suspect: {result.errors[0]}", level="error", errors=result.errors[:20])
