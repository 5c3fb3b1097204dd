"""Archive tiers in the service: job kinds `archive_daily`, `archive_weekly`, `archive_monthly`,
`archive_yearly` (make a set and upload it) and `archive_prune`, scheduled by `[schedule]` entries
of the same names (companion/service/schedule.py: retries, then an `archive_failed` event).

The passphrase comes from SEEDWARD_ARCHIVE_PASSPHRASE, `[archive] passphrase_file` or the system
keyring; the remote from `[archive] remote`. Runs take the state home's archive lock, one at a time.
"""

import logging
import threading

from .. import qbtstate
from ..errors import Error
from ..service.schedule import Schedule
from ..store.job import service_store
from .create import archive_lock, archive_root, create_set
from .errors import ArchiveError, NoRemote
from .passphrase import get_passphrase
from .prune import prune
from .remote import Remote
from .tiers import TIERS, RetentionPolicy

log = logging.getLogger(__name__)

_one_at_a_time = threading.Lock()


def register(service) -> None:
    schedule = Schedule.of(service)
    for tier in TIERS:
        kind = f"archive_{tier}"
        service.register_job(kind, lambda s, job, tier=tier: archive_job(s, job, tier))
        schedule.add(kind, kind, failed_event="archive_failed")
    service.register_job("archive_prune", prune_job)
    schedule.add("archive_prune", "archive_prune", failed_event="archive_failed")


def _remote(settings) -> Remote:
    cfg = settings.archive
    if not cfg.remote:
        raise NoRemote("set [archive] remote in config.toml for scheduled archive runs")
    return Remote(cfg.remote, cfg.rclone_config, s3_tags=cfg.s3_tags,
                  volume_size=cfg.volume_kb * 1024 if cfg.volume_kb else cfg.volume_mb << 20)


def archive_job(service, job, tier: str) -> None:
    cfg = service.settings.archive
    remote = _remote(service.settings)
    passphrase = get_passphrase(None, configured=cfg.passphrase_file)
    with _one_at_a_time, archive_lock(service.home):
        _backup_qbt_state(service)
        result = create_set(home=service.home, settings=service.settings, catalog=service.catalog,
                            manifests=service.manifests, store=service_store(service), tier=tier, remote=remote,
                            passphrase=passphrase, cancel=job.cancel)
    if result.error:  # built, but not uploaded: it waits in the outbox and the retry uploads it first
        raise ArchiveError(result.set_id, result.error)
    service.emit("archive_created", None, f"archive set {result.set_id} ({result.tier}) uploaded to {result.remote}: "
                 f"{result.members} files, {result.archive_bytes:,} bytes", set_id=result.set_id, tier=result.tier,
                 job=job.id)


def prune_job(service, job) -> None:
    cfg = service.settings.archive
    with _one_at_a_time, archive_lock(service.home):
        report = prune(_remote(service.settings), service.catalog, RetentionPolicy.from_settings(cfg),
                       archive_root(service.home) / "scratch", settings=cfg)
    service.emit("archive_pruned", None, f"archive prune: {len(report['promoted'])} promoted, "
                 f"{len(report['expired'])} expired, {len(report['cleaned'])} cleaned, "
                 f"{len(report['locked'])} kept locked", job=job.id)


def _backup_qbt_state(service) -> None:
    """Refresh qBittorrent's state in the manifests repo first, so the set carries today's."""
    for n, inst in enumerate(getattr(service, "instances", None) or [None]):  # each instance in its own folder
        qbt = inst.qbt if inst is not None else service.qbt
        folder = qbtstate.folder_for(inst.name, n == 0) if inst is not None else qbtstate.FOLDER
        try:
            result = qbtstate.backup(qbt, service.manifests, kept_torrents=service.home.torrents, folder=folder)
        except Error as exc:  # an unreachable qBittorrent must not stop the set: it carries the last backup
            log.warning("archive run: qBittorrent state of %s not refreshed (%s); the set carries the last backup",
                        folder, exc)
            continue
        if result.commit:
            log.info("archive run: qBittorrent state backed up in %s (%d documents changed)", folder,
                     len(result.changed))
