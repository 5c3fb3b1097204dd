"""Settings: defaults < config.toml < environment < flags.

Settings are passed in as an object; the core never reads globals.

Longer than 400 lines on purpose: every section's dataclass, defaults and value checks live in
one place, so that one loader refuses unknown keys and bad values the same way in every verb.
"""

import os
import re
import tomllib
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path

from .childenv import secret_env
from .errors import ConfigError


@dataclass
class QbtSettings:
    url: str = "http://127.0.0.1:8080"
    username: str = "admin"
    password: str = ""  # never logged; prefer password_file
    password_file: str = ""
    verify_tls: bool = True
    # qBittorrent bans an address after repeated failed logins: seedward never retries a refused password
    # and fails at most twice per ban window (qBittorrent's own web_ui_ban_duration once it has read it).
    ban_window_seconds: float = 3600.0
    backoff_max_seconds: float = 60.0
    poll_seconds: float = 2.0
    # issue 17: qBittorrent in a container, several qBittorrents (companion/instances.py)
    name: str = "default"  # the instance's name ([[instances]] entries must set it)
    path_map: list = field(default_factory=list)  # [["qBittorrent's prefix", "this host's prefix"], ...]
    hook_dir: str = ""  # a host folder mounted into qBittorrent's container: the hook and its spool live there

    def check(self, where: str, key: str = "qbittorrent") -> None:
        from .pathmap import PathMap

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}", self.name):
            raise ConfigError(where, f"{key}.name should be letters, digits, '.', '_' or '-' (at most 40), not {self.name!r}")
        PathMap.parse(self.path_map, where, f"{key}.path_map")
        if self.hook_dir and not self.hook_dir.startswith("/"):
            raise ConfigError(where, f"{key}.hook_dir should be an absolute path on this host, not {self.hook_dir!r}")


LEVELS = ("auto", "snapshot", "catalog", "exclude")


@dataclass
class Policy:
    """Protection for torrents matching a category or tag."""

    level: str = "auto"  # auto (the ladder within [protection] budget) | snapshot | catalog | exclude
    response: str = "heal"  # alert | quarantine | heal
    snapshot_max_bytes: int = 0  # 0: no cap
    recheck: bool = False  # after every heal, wait for qBittorrent's full recheck before resuming


@dataclass
class ProtectionSettings:
    default: Policy = field(default_factory=Policy)
    categories: dict[str, Policy] = field(default_factory=dict)
    tags: dict[str, Policy] = field(default_factory=dict)
    # The protection ladder (companion/ladder): extra disk for zones, parity and full snapshots under
    # `auto`, as a share of payload bytes ("2%") or a size ("500G").
    budget: str = "2%"
    budget_min: str = "1G"  # the budget is at least this much: 2 % of a small library keeps next to nothing
    zone_head_kb: int = 64  # at least this much of each file's head is kept (more when its metadata is bigger)
    zone_tail_kb: int = 64  # and of its tail; both rounded up to whole pieces
    auto_snapshot_max_mb: int = 64  # under `auto`, torrents up to this size also get a full snapshot (budget allowing)
    # Under `auto`: PAR2 recovery data per torrent (ladder/parity.py) as a share of its payload, for rot and
    # overwrites outside the zones (budget allowing); 0: none.
    parity_percent: float = 1.0

    def check(self, where: str) -> None:
        from .ladder.budget import parse_budget

        for key in ("budget", "budget_min"):
            try:
                parse_budget(getattr(self, key))
            except ConfigError as exc:
                raise ConfigError(where, f"protection.{key}: {exc.args[-1]}") from exc
        if not 0 <= self.parity_percent <= 50:
            raise ConfigError(where, f"protection.parity_percent should be between 0 and 50, not {self.parity_percent}")
        if self.zone_head_kb < 0 or self.zone_tail_kb < 0 or self.auto_snapshot_max_mb < 0:
            raise ConfigError(where, "protection.zone_head_kb, zone_tail_kb and auto_snapshot_max_mb must not be negative")
        for name, policy in [("default", self.default)] + [(f"categories.{k}", v) for k, v in self.categories.items()] \
                + [(f"tags.{k}", v) for k, v in self.tags.items()]:
            if policy.level not in LEVELS:
                raise ConfigError(where, f"protection.{name}.level should be one of {', '.join(LEVELS)}, not {policy.level!r}")

    def policy_for(self, category: str = "", tags: list[str] | tuple = ()) -> Policy:
        for tag in tags:
            if tag in self.tags:
                return self.tags[tag]
        if category in self.categories:
            return self.categories[category]
        return self.default


@dataclass
class ServiceSettings:
    jobs: int = 2  # concurrent hashing jobs
    read_rate_mb: float = 0.0  # 0: unlimited
    debounce_seconds: float = 0.3
    sweep_minutes: float = 10.0  # how often file renames inside torrents are looked for
    removal_grace_seconds: float = 30.0  # after a reconnect, before absent torrents count as removed
    reach_seconds: float = 30.0  # how often protected torrents' folders are looked at (gone: `unreachable`), and back
    watchdog_seconds: float = 60.0  # the service asks itself for its status this often (service/watchdog.py); 0: off

    def check(self, where: str) -> None:
        if self.watchdog_seconds != 0 and not 1 <= self.watchdog_seconds <= 3600:
            raise ConfigError(where, "service.watchdog_seconds should be 0 (off) or between 1 and 3600")


NOTIFY_EVENTS = ("damaged", "healed", "heal_failed", "unreachable", "drill_failed", "archive_failed",
                 "qbittorrent_down", "baseline_bad", "service_stuck", "store_unreachable")


@dataclass
class NotifySettings:
    """[notify]: Apprise URLs (companion/notify.py). URLs may carry tokens: never logged or shown."""

    urls: list = field(default_factory=list)  # Apprise URLs; SEEDWARD_NOTIFY_URLS replaces them when set
    urls_file: str = ""  # more URLs, one per line (a 0600 file or a container secret)
    events: list = field(default_factory=lambda: list(NOTIFY_EVENTS))  # the events that notify
    repeat_minutes: float = 60.0  # the same event of the same torrent: at most once in this long
    max_per_hour: int = 20  # beyond, notifications are held and sent as one summary
    digest: str = ""  # "HH:MM": a daily digest at that local time; events then wait for it, except `immediate`
    immediate: list = field(default_factory=lambda: ["heal_failed", "qbittorrent_down", "unreachable",
                                                     "drill_failed", "archive_failed", "service_stuck",
                                                     "store_unreachable"])

    def check(self, where: str) -> None:
        for key in ("events", "immediate"):
            unknown = [e for e in getattr(self, key) if e not in NOTIFY_EVENTS]
            if unknown:
                raise ConfigError(where, f"notify.{key}: unknown event {unknown[0]!r} (one of {', '.join(NOTIFY_EVENTS)})")
        if not all(isinstance(u, str) for u in self.urls):
            raise ConfigError(where, "notify.urls should be a list of Apprise URL strings")
        if self.digest and _clock(self.digest) is None:
            raise ConfigError(where, f"notify.digest should be \"HH:MM\" (24-hour local time), not {self.digest!r}")
        if self.max_per_hour < 1 or self.repeat_minutes < 0:
            raise ConfigError(where, "notify.max_per_hour must be at least 1 and notify.repeat_minutes not negative")

    def digest_time(self) -> tuple[int, int] | None:
        return _clock(self.digest) if self.digest else None


def _clock(text: str) -> tuple[int, int] | None:
    hh, sep, mm = text.strip().partition(":")
    if not sep or not (hh.isdigit() and mm.isdigit() and len(mm) == 2) or int(hh) > 23 or int(mm) > 59:
        return None
    return int(hh), int(mm)


@dataclass
class RetentionSettings:
    """[retention]: what the scheduled `forget` keeps (restic's policy per torrent; -1: all), and for
    how long the snapshots of torrents removed from qBittorrent stay (0: for ever)."""

    keep_last: int = 3
    keep_hourly: int = 0
    keep_daily: int = 7
    keep_weekly: int = 4
    keep_monthly: int = 6
    keep_yearly: int = 0
    removed_days: float = 0.0

    def check(self, where: str) -> None:
        for key in ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly"):
            if getattr(self, key) < -1:
                raise ConfigError(where, f"retention.{key} should be -1 (all), 0 or more, not {getattr(self, key)}")
        if self.removed_days < 0:
            raise ConfigError(where, f"retention.removed_days should be 0 (for ever) or more, not {self.removed_days}")


@dataclass
class QuarantineSettings:
    """[quarantine]: how long the drifted bytes heals keep stay (the scheduled expiry)."""

    keep_days: float = 90.0  # 0: no age limit
    max_mb: int = 0  # beyond, the oldest entries go first; 0: no cap

    def check(self, where: str) -> None:
        for key in ("keep_days", "max_mb"):
            if getattr(self, key) < 0:
                raise ConfigError(where, f"quarantine.{key} should be 0 (no limit) or more, not {getattr(self, key)}")


@dataclass
class MetricsSettings:
    """[metrics]: the Prometheus endpoint (companion/metrics.py); off while `listen` is empty."""

    listen: str = ""  # "127.0.0.1:9477", "[::1]:9477"
    refresh_seconds: float = 60.0  # store size and dedup (costly to compute) are recomputed at most this often
    per_torrent: bool = True  # per-torrent series (last drill); off for very large libraries

    def check(self, where: str) -> None:
        if self.listen and self.address() is None:
            raise ConfigError(where, f"metrics.listen should be HOST:PORT (e.g. 127.0.0.1:9477), not {self.listen!r}")

    def address(self) -> tuple[str, int] | None:
        host, sep, port = self.listen.strip().rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:  # 0: any free port
            return None
        return host, int(port)


@dataclass
class StoreSettings:
    path: str = ""  # empty: <home>/store
    pack_size_mb: int = 64
    trust_catalog: bool = True  # first snapshots copy verified, unchanged files unhashed (store/trusted.py)
    # A store shared by several hosts on object storage (issue 20, store/remote.py): an rclone remote
    # "name:bucket/path" (S3 and S3-compatible tested); empty: the local folder `path`.
    remote: str = ""
    rclone_config: str = ""  # empty: rclone's own default (or $RCLONE_CONFIG)
    lock_expiry_seconds: float = 300.0  # a remote store's lock not refreshed this long is stale (its holder died)
    staging: str = ""  # remote stores: where packs are built before upload; empty: <home>/scratch/store-staging
    # Where the payload lives on btrfs: which snapshots are read-only btrfs snapshots of its subvolume
    # (store/fssnap.py) instead of packs: "preflight" (AI jobs'), "always", or "off".
    fs_snapshots: str = "preflight"

    def check(self, where: str) -> None:
        if self.remote and ":" not in self.remote:
            raise ConfigError(where, f"store.remote should be an rclone remote NAME:bucket/path, not {self.remote!r}")
        if self.lock_expiry_seconds < 10:
            raise ConfigError(where, "store.lock_expiry_seconds should be at least 10")
        if self.fs_snapshots not in ("off", "preflight", "always"):
            raise ConfigError(where, f"store.fs_snapshots should be off, preflight or always, not {self.fs_snapshots!r}")


@dataclass
class CatalogSettings:
    """[catalog]: where the catalog lives (issue 20). Empty url: the embedded SQLite file in the state
    home. A `postgresql://` URL: one catalog shared by several seedward services (one per seedbox),
    each owning the torrents of its own qBittorrent. The password: password_file, ~/.pgpass or
    PGPASSWORD (a password inside the URL works but is never shown)."""

    url: str = ""  # postgresql://user@host:5432/dbname
    password_file: str = ""
    owner: str = ""  # this service's name in the fleet; empty: the host name (shared catalog) or "" (embedded)
    heartbeat_seconds: float = 10.0  # a service writes its heartbeat this often; 4.5 beats missed: shown as gone

    def check(self, where: str) -> None:
        if self.url:
            scheme, sep, rest = self.url.partition("://")
            if scheme not in ("postgresql", "postgres") or not sep or not rest:
                raise ConfigError(where, "catalog.url should be a postgresql://user@host/dbname URL"
                                  f" (got {_redact(self.url)!r})")
        if self.owner and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,99}", self.owner):
            raise ConfigError(where, f"catalog.owner should be letters, digits, '.', '_', '-' or '/', not {self.owner!r}")
        if not 0.5 <= self.heartbeat_seconds <= 3600:
            raise ConfigError(where, "catalog.heartbeat_seconds should be between 0.5 and 3600")
        if self.password_file and not Path(self.password_file).expanduser().is_file():
            raise ConfigError(where, f"catalog.password_file {self.password_file!r} is not a readable file")

    def target(self, home):
        """What Catalog() opens: the URL, else the home's SQLite file."""
        return self.url or home.catalog_db

    def owners(self) -> tuple[str, ...]:
        if self.owner:
            return (self.owner,)
        if not self.url:
            return ("",)
        import socket

        return (socket.gethostname().split(".")[0] or "localhost",)

    def password(self) -> str | None:
        if not self.password_file:
            return None
        try:
            return Path(self.password_file).expanduser().read_text().strip() or None
        except OSError as exc:
            raise ConfigError(self.password_file, f"cannot read the catalog password: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(self.password_file, "the catalog password file is not UTF-8 text") from exc


@dataclass
class ManifestsSettings:
    """[manifests]: the audit trail stays in each host's state home; `remote` (a git URL) also keeps
    a copy of it, one branch per owner (seedward/<owner>), pushed every push_minutes (fleet/trail.py)."""

    remote: str = ""
    push_minutes: float = 5.0

    def check(self, where: str) -> None:
        if self.push_minutes < 0.01:
            raise ConfigError(where, "manifests.push_minutes should be at least 0.01")


def _redact(url: str) -> str:
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


@dataclass
class ScrubSettings:
    interval_hours: float = 24.0
    share_percent: float = 10.0
    read_rate_mb: float = 100.0


@dataclass
class DriftSettings:
    recheck_timeout_seconds: float = 600.0  # qBittorrent's full recheck after a heal must end by then
    swarm_stall_seconds: float = 120.0  # a heal by the swarm with no progress this long falls back to alert
    swarm_timeout_seconds: float = 6 * 3600.0


@dataclass
class DrillSettings:
    interval_hours: float = 168.0
    per_run: int = 2
    scratch: str = ""  # empty: <home>/scratch
    timeout_seconds: float = 600.0
    scratch_max_mb: int = 0  # 0: only the free space bounds a drill's scratch
    read_rate_mb: float = 0.0  # SHA-256 pass read rate for scheduled drills; 0: unlimited
    swarm: bool = False  # scheduled drills also prove the restore can seed a second session


@dataclass
class JobSettings:
    sandbox: str = "auto"  # auto | bwrap | none
    parity_copies: int = 3
    companion_category: str = "seedward-companion"
    workdir: str = ""  # empty: <home>/jobs (job outputs, sidecars, companion payloads)
    network: bool = False  # every job's command reaches the host's network (else only those run with --network)
    env: list = field(default_factory=list)  # NAME=VALUE or NAME (taken from seedward's environment) for every job
    hide: list = field(default_factory=list)  # more host paths a job must not see (beside seedward's own)
    embedded_listen: str = "0.0.0.0:6891"  # the embedded seeder's libtorrent listen_interfaces


@dataclass
class ImmutableDays:
    """Days each tier's sets stay under S3 Object Lock (0: no lock)."""

    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0


@dataclass
class ArchiveSettings:
    remote: str = ""  # rclone destination: name:path (a remote in rclone's config) or a local path
    rclone_config: str = ""  # empty: rclone's own default (or $RCLONE_CONFIG)
    s3_tags: bool = False  # S3 remotes: also tag objects (seedward-tier, ...) for contrib/s3-lifecycle.json
    volume_mb: int = 512
    volume_kb: int = 0  # overrides volume_mb when set (small volumes for tests)
    par2_single_max: int = 20  # volumes: up to this many, one PAR2 recovery set
    par2_group_max: int = 60  # up to this many, disjoint groups of par2_group_size
    par2_group_size: int = 20
    par2_window: int = 40  # beyond: sliding windows of par2_window volumes every par2_slide
    par2_slide: int = 20
    keep_daily_days: int = 30
    keep_weekly_weeks: int = 12
    keep_monthly_days: int = 365
    keep_yearly_days: int = 5 * 365
    sevenzip: str = "auto"  # auto: 7zz, else 7z, else py7zr; "py7zr"; or a path to a 7-Zip command
    passphrase_file: str = ""  # for scheduled runs (else SEEDWARD_ARCHIVE_PASSPHRASE, else the system keyring)
    min_volumes: int = 10  # a small set is cut into at least this many volumes (>= 64 KiB) so PAR2 can rebuild a lost one
    immutable_days: ImmutableDays = field(default_factory=ImmutableDays)  # S3 Object Lock per tier
    lock_mode: str = "COMPLIANCE"  # S3 Object Lock mode: COMPLIANCE or GOVERNANCE

    def check(self, where: str) -> None:
        if self.lock_mode.upper() not in ("COMPLIANCE", "GOVERNANCE"):
            raise ConfigError(where, f"[archive] lock_mode {self.lock_mode!r}: COMPLIANCE or GOVERNANCE")
        if any(getattr(self.immutable_days, t) < 0 for t in ("daily", "weekly", "monthly", "yearly")):
            raise ConfigError(where, "[archive.immutable_days] days must be >= 0")
        # a retention of 0 or less would make every new set expired: the next prune deletes it
        for key in ("keep_daily_days", "keep_weekly_weeks", "keep_monthly_days", "keep_yearly_days", "volume_mb",
                    "min_volumes", "par2_single_max", "par2_group_max", "par2_group_size", "par2_window", "par2_slide"):
            if getattr(self, key) < 1:
                raise ConfigError(where, f"archive.{key} should be at least 1, not {getattr(self, key)}")
        if self.volume_kb < 0:
            raise ConfigError(where, f"archive.volume_kb should be 0 (use volume_mb) or more, not {self.volume_kb}")
        if self.par2_slide > self.par2_window:
            raise ConfigError(where, f"archive.par2_slide ({self.par2_slide}) should not exceed archive.par2_window "
                              f"({self.par2_window}): volumes between two windows would have no recovery data")


@dataclass
class ScheduleSettings:
    """[schedule]: periodic work the service queues. Each entry is "" (off), "daily HH:MM", "weekly DAY
    HH:MM", "monthly D HH:MM", "yearly MON D HH:MM" or "every N(m|h|d)", in local time
    (companion/service/schedule.py). A failed run is retried `retries` times, `retry_minutes` apart."""

    archive_daily: str = ""
    archive_weekly: str = ""
    archive_monthly: str = ""
    archive_yearly: str = ""
    archive_prune: str = ""
    forget: str = ""  # the store's retention ([retention]); e.g. "daily 03:30"
    prune: str = ""  # free the chunks no snapshot uses; e.g. "weekly sun 04:00"
    drills: str = ""  # a run of [drill] per_run drills; set, it replaces [drill] interval_hours
    scrub: str = ""  # the drift scrub (and the store's read-back); set, it replaces [scrub] interval_hours
    quarantine_expiry: str = "daily 04:30"  # remove quarantine entries past [quarantine] keep_days / max_mb
    retries: int = 3
    retry_minutes: float = 30.0

    def check(self, where: str) -> None:
        from .timespec import BadSpec, parse

        for f in fields(self):
            if isinstance(getattr(self, f.name), str):
                try:
                    parse(getattr(self, f.name))
                except BadSpec as exc:
                    raise ConfigError(where, f"[schedule] {f.name}: {exc}") from exc
        if self.retries < 0 or self.retry_minutes <= 0:
            raise ConfigError(where, "[schedule] retries must be >= 0 and retry_minutes > 0")


@dataclass
class Settings:
    qbittorrent: QbtSettings = field(default_factory=QbtSettings)
    protection: ProtectionSettings = field(default_factory=ProtectionSettings)
    service: ServiceSettings = field(default_factory=ServiceSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    quarantine: QuarantineSettings = field(default_factory=QuarantineSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    catalog: CatalogSettings = field(default_factory=CatalogSettings)
    manifests: ManifestsSettings = field(default_factory=ManifestsSettings)
    scrub: ScrubSettings = field(default_factory=ScrubSettings)
    drift: DriftSettings = field(default_factory=DriftSettings)
    drill: DrillSettings = field(default_factory=DrillSettings)
    jobs: JobSettings = field(default_factory=JobSettings)
    archive: ArchiveSettings = field(default_factory=ArchiveSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    instances: list = field(default_factory=list)  # [[instances]]: QbtSettings; empty: [qbittorrent] alone

    def qbt_instances(self) -> list:
        """Every qBittorrent this service follows ([[instances]], else the one [qbittorrent])."""
        return self.instances or [self.qbittorrent]


def _build(cls, data: dict, where: str, section: str = ""):
    """cls from a TOML table; `where` names the file, `section` the table ("catalog", "protection.tags.x")."""
    table = f"[{section}]" if section else "the top level"
    if not isinstance(data, dict):
        raise ConfigError(where, f"{table} should be a table")
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        dotted = f"{section}.{key}" if section else key
        if key not in known:
            raise ConfigError(where, f"unknown key {key!r} in {table}{_did_you_mean(key, known)}")
        default = getattr(cls(), key)
        if is_dataclass(default):
            kwargs[key] = _build(type(default), value, where, dotted)
        elif key in ("categories", "tags") and cls is ProtectionSettings:
            if not isinstance(value, dict):
                raise ConfigError(where, f"[{dotted}] should be a table of policies")
            kwargs[key] = {k: _build(Policy, v, where, f"{dotted}.{k}") for k, v in value.items()}
        else:
            if default is not None and not isinstance(value, type(default)) and not (
                isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool)
            ) or (isinstance(value, bool) and not isinstance(default, bool)):
                raise ConfigError(where, f"{dotted} should be {_kind(default)}, not {_toml(value)}")
            kwargs[key] = value
    return cls(**kwargs)


def _did_you_mean(key: str, known) -> str:
    import difflib

    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known keys: {', '.join(sorted(known))})"


def _toml(value) -> str:
    import json

    try:
        return json.dumps(value, default=str)  # true, "2", [1]: as TOML spells them
    except ValueError:
        return repr(value)


def _kind(default) -> str:
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(default), type(default).__name__)


def load_settings(path: Path | None, env: dict | None = None) -> Settings:
    """Read config.toml (if present) over the defaults, then the environment."""
    env = os.environ if env is None else env
    data = {}
    if path is not None and path.exists():
        try:
            data = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(path, str(exc)) from exc
        except OSError as exc:
            raise ConfigError(path, f"cannot read it: {exc.strerror}") from exc
    raw_instances = data.pop("instances", None)
    settings = _build(Settings, data, str(path or "config"))  # unknown keys: an error naming key and file
    qbt = settings.qbittorrent
    qbt.url = env.get("QBITTORRENTAPI_HOST", qbt.url)
    qbt.username = env.get("QBITTORRENTAPI_USERNAME", qbt.username)
    qbt.password = secret_env("QBITTORRENTAPI_PASSWORD", env) or qbt.password
    if raw_instances is not None:
        settings.instances = _instances(raw_instances, data.get("qbittorrent") or {}, qbt, str(path or "config"))
        settings.qbittorrent = settings.instances[0]
    else:
        qbt.check(str(path or "config"))
    notify_env = secret_env("SEEDWARD_NOTIFY_URLS", env)
    if notify_env:
        settings.notify.urls = split_urls(notify_env)
    for section in (settings.service, settings.notify, settings.metrics, settings.archive, settings.schedule,
                    settings.catalog, settings.store, settings.protection, settings.manifests, settings.quarantine,
                    settings.retention):
        section.check(str(path or "config"))
    return settings


PER_INSTANCE = ("url", "name", "path_map", "hook_dir")  # never shared defaults from [qbittorrent]


def _instances(raw, table: dict, defaults: QbtSettings, where: str) -> list[QbtSettings]:
    """[[instances]] entries over [qbittorrent]'s shared keys (everything but url, name, path_map, hook_dir)."""
    from dataclasses import replace

    if not isinstance(raw, list) or not raw or not all(isinstance(e, dict) for e in raw):
        raise ConfigError(where, "[[instances]] should be one or more tables (name, url, username, password_file, path_map)")
    shared = [k for k in PER_INSTANCE if k in table]
    if shared:
        raise ConfigError(where, f"[qbittorrent] {shared[0]} is set together with [[instances]]: give it in each "
                          "[[instances]] entry ([qbittorrent] then only holds keys shared by every instance)")
    out = []
    for n, entry in enumerate(raw, 1):
        if "name" not in entry or "url" not in entry:
            raise ConfigError(where, f"[[instances]] entry {n} needs a name and a url")
        built = _build(QbtSettings, entry, where, f"instances.{entry.get('name') or n}")
        base = replace(defaults, path_map=[], hook_dir="")
        inst = replace(base, **{f.name: getattr(built, f.name) for f in fields(QbtSettings) if f.name in entry})
        if "password_file" in entry and "password" not in entry:
            inst.password = ""  # its own file, not the shared inline password
        inst.check(where, f"instances.{inst.name}")
        out.append(inst)
    for key in ("name", "url"):
        seen = [getattr(i, key).rstrip("/") for i in out]
        dup = next((v for v in seen if seen.count(v) > 1), None)
        if dup is not None:
            raise ConfigError(where, f"[[instances]]: two entries have the {key} {dup!r}")
    return out


def split_urls(text: str) -> list[str]:
    """URLs separated by whitespace, or by commas before the next scheme (an Apprise URL may hold commas)."""
    return [u for u in re.split(r"\s+|,\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)", text.strip()) if u]
