"""Notifications through Apprise (Discord, Telegram, ntfy, Gotify, email, JSON webhooks, Notifiarr...).

Service events map to ten notification events (`notice_of`, pure). The service's listener only
queues them: one sender thread applies the per-event filter and the rate limits (`Limiter`, pure
over times), and delivers, so no emitter ever waits for a remote server. With a daily digest, the
events wait for it (built from the catalog's events table, so a restart loses none) except the
`immediate` ones.

Apprise URLs often carry tokens: a URL is only ever shown as its scheme (and a webhook's host), in
logs, status and events, and a filter masks the URLs' parts in Apprise's and urllib3's log lines.

Longer than 400 lines on purpose: the event mapping and the Limiter are pure and small; the rest
is one sender thread whose filter, holds, digest and masking share its state.
"""

import logging
import queue
import re
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from .catalog import notify as marks
from .config import NOTIFY_EVENTS, NotifySettings, split_urls
from .errors import ConfigError

log = logging.getLogger(__name__)

# service event -> notification event (`state`, `job_failed`: see notice_of)
SOURCES = {
    "drift": "damaged",  # drift found by the watch or the scrub
    "damaged": "damaged",  # a full verify of a cataloged torrent found pieces that no longer match
    "healed": "healed",
    "heal_failed": "heal_failed",
    "alert": "heal_failed",  # the swarm did not supply the damaged pieces
    "unreachable": "unreachable",
    "drill_failed": "drill_failed",
    "drills_failed": "drill_failed",  # the scheduled run of drills failed every try
    "archive_failed": "archive_failed",  # the schedule's, after the last retry of an archive run
    "qbt_unreachable": "qbittorrent_down",
    "qbt_login_failed": "qbittorrent_down",
    "qbt_error": "qbittorrent_down",
    "baseline_bad": "baseline_bad",
    "service_stuck": "service_stuck",  # the watchdog's own status request went unanswered
    "store_unreachable": "store_unreachable",  # a job waits for the store (said once per job)
}
# the service event that ends an outage -> the notice that said it began (one more message then)
RECOVERIES = {"qbt_connected": "qbittorrent_down", "service_answering": "service_stuck"}
RECOVERED = {"qbittorrent_down": "qBittorrent answers again", "service_stuck": "seedward answers again"}
LISTENED = tuple(SOURCES) + ("state", "job_failed") + tuple(RECOVERIES)

TITLES = {
    "damaged": "damaged", "healed": "healed", "heal_failed": "heal failed", "unreachable": "unreachable",
    "drill_failed": "drill failed", "archive_failed": "archive failed", "qbittorrent_down": "qBittorrent down",
    "baseline_bad": "payload does not match its torrent", "service_stuck": "seedward not answering",
    "store_unreachable": "store unreachable",
}
FAILURES = {"heal_failed", "drill_failed", "archive_failed", "qbittorrent_down", "service_stuck", "store_unreachable"}
RETRY_WAITS = (2.0, 10.0)  # between the tries of one delivery
QUEUE_MAX = 10_000
DIGEST_LINES = 50


def notice_of(event: dict) -> str | None:
    """The notification event a service event is, or None."""
    kind = event.get("event")
    if kind == "state":
        return "unreachable" if event.get("state") == "unreachable" else None
    if kind == "job_failed":  # an archive job's tries are retried by the schedule: archive_failed says the last
        return "drill_failed" if event.get("job_kind") == "drill" else None
    return SOURCES.get(kind)


class Limiter:
    """The rate limits, over monotonic times: the same key (event, torrent) at most once per
    `repeat` seconds (the repeats are counted and said in the next message), and at most `per_hour`
    messages in any hour (beyond, `admit` says "full": the caller holds them for one summary)."""

    def __init__(self, repeat: float, per_hour: int):
        self.repeat = repeat
        self.per_hour = max(1, per_hour)
        self.last: dict = {}
        self.repeats: dict = {}  # key -> (count, first monotonic time)
        self.sent: deque = deque()

    def room(self, now: float) -> bool:
        while self.sent and now - self.sent[0] >= 3600:
            self.sent.popleft()
        return len(self.sent) < self.per_hour

    def wait(self, now: float) -> float:
        """Seconds until a message may be sent again."""
        return 0.0 if self.room(now) else max(0.0, 3600 - (now - self.sent[0]))

    def admit(self, key, now: float) -> str:
        last = self.last.get(key)
        if last is not None and now - last < self.repeat:
            count, first = self.repeats.get(key, (0, now))
            self.repeats[key] = (count + 1, first)
            return "repeat"
        if not self.room(now):
            return "full"
        self.last[key] = now
        self.sent.append(now)
        return "send"

    def take(self, now: float) -> None:
        """Count a message sent outside `admit` (a summary)."""
        self.room(now)
        self.sent.append(now)

    def repeated(self, key) -> int:
        """How many times `key` was held back as a repeat since it was last sent (and forget them)."""
        return self.repeats.pop(key, (0, 0))[0]


def digest_due(now: datetime, at: tuple[int, int], last_day: str | None) -> bool:
    """Today's digest time has passed and today's digest was not sent yet (local time)."""
    due = now.replace(hour=at[0], minute=at[1], second=0, microsecond=0)
    return now >= due and (last_day or "") < now.date().isoformat()


def next_digest(now: datetime, at: tuple[int, int], last_day: str | None) -> datetime:
    """When the next digest is due (`now` when it is overdue)."""
    due = now.replace(hour=at[0], minute=at[1], second=0, microsecond=0)
    if (last_day or "") >= now.date().isoformat():
        return due + timedelta(days=1)
    return max(due, now)


@dataclass
class Notice:
    event: str  # one of NOTIFY_EVENTS
    torrent_id: str | None
    name: str
    message: str
    at: str
    extra: str = ""


def secret_parts(url: str) -> set[str]:
    """The pieces of an Apprise URL that may be tokens: user, password, host, path segments, query
    values (raw and decoded, and their words: "Bearer <token>")."""
    parts = {url}
    try:
        u = urlsplit(url)
    except ValueError:
        return parts
    parts.update(p for p in (u.username, u.password, unquote(u.username or ""), unquote(u.password or ""))
                 if p and len(p) >= 3)
    raw = [v for pair in u.query.split("&") for v in pair.split("=", 1)[1:]]
    values = raw + [v for _k, v in parse_qsl(u.query)]
    candidates = [u.hostname or "", *u.path.split("/"), *values, *(w for v in values for w in v.split())]
    parts.update(p for p in candidates if len(p) >= 6)
    return parts


WEBHOOK_SCHEMES = {"json", "jsons", "xml", "xmls", "form", "forms"}


def shown_url(url: str, service_name: str = "") -> str:
    """How a URL is shown: its scheme (and a webhook's host), nothing that may be a token. Apprise's
    own privacy form still shows webhook paths and headers, and ntfy topics."""
    try:
        u = urlsplit(url)
        host = u.hostname or ""
        port = f":{u.port}" if u.port else ""
    except ValueError:
        return "an unparsable URL"
    if u.scheme.lower() in WEBHOOK_SCHEMES and host:
        cred = "***@" if u.username or u.password else ""
        rest = "/***" if u.path.strip("/") or u.query else ""
        shown = f"{u.scheme}://{cred}{host}{port}{rest}"
    else:
        shown = f"{u.scheme}://***"
    return f"{service_name} {shown}" if service_name else shown


class Redactor(logging.Filter):
    """Masks the configured URLs' secret parts in log records (installed on Apprise's logger)."""

    def __init__(self):
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, url: str) -> None:
        self.secrets |= secret_parts(url)

    def mask(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = self.mask(record.getMessage())
            record.args = None
        return True


REDACTOR = Redactor()
# Apprise's own lines, and urllib3's debug lines (they name the request path, where webhook tokens live)
REDACTED_LOGGERS = ("apprise", "urllib3.connectionpool")


class Target:
    """One Apprise URL, shown only as `shown_url` says."""

    def __init__(self, plugin, shown: str):
        self.plugin = plugin
        self.shown = shown

    def send(self, title: str, body: str, kind: str) -> bool:
        import apprise

        notify_type = (apprise.NotifyType.FAILURE if kind in FAILURES
                       else apprise.NotifyType.SUCCESS if kind in ("healed", "recovered")
                       else apprise.NotifyType.WARNING if kind in NOTIFY_EVENTS else apprise.NotifyType.INFO)
        try:
            return bool(self.plugin.notify(body=body, title=title, notify_type=notify_type))
        except Exception:  # noqa: BLE001 - a plugin's bug must not end the sender; its text may hold the URL
            log.warning("notify: %s raised while sending; counted as a failed delivery", self.shown)
            return False


def configured_urls(settings: NotifySettings) -> list[tuple[str, str]]:
    """(where, url) for every URL: [notify] urls (or SEEDWARD_NOTIFY_URLS), then urls_file's lines."""
    out = [(f"notify.urls[{i}]", u) for i, u in enumerate(settings.urls)]
    if settings.urls_file:
        path = Path(settings.urls_file).expanduser()
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(path, f"cannot read notify.urls_file: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:  # its URLs carry tokens: never shown
            raise ConfigError(path, "notify.urls_file is not UTF-8 text") from exc
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        out += [(f"{path}:{i + 1}", u) for i, line in enumerate(lines) for u in split_urls(line)]
    return out


def load_targets(settings: NotifySettings) -> tuple[list[Target], list[str]]:
    """The Apprise targets, and one line per URL Apprise cannot load (naming where it is and its
    scheme, never the URL)."""
    import apprise

    for name in REDACTED_LOGGERS:
        if REDACTOR not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(REDACTOR)
    asset = apprise.AppriseAsset(secure_logging=True)
    targets, errors = [], []
    for where, url in configured_urls(settings):
        REDACTOR.add(url)
        plugin = apprise.Apprise.instantiate(url, asset=asset)
        if plugin is None:
            scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", url)
            errors.append(f"{where}: Apprise cannot load this "
                          + (f"{scheme.group(1)}:// URL" if scheme else "URL (no scheme://)"))
            continue
        targets.append(Target(plugin, shown_url(url, str(getattr(plugin, "service_name", "") or ""))))
    return targets, errors


def deliver(targets: list[Target], title: str, body: str, kind: str, *, stopping: threading.Event | None = None,
            waits=RETRY_WAITS) -> list[Target]:
    """Send to every target, each tried 1 + len(waits) times; returns the targets that failed."""
    stopping = stopping or threading.Event()
    failed = []
    for target in targets:
        ok = target.send(title, body, kind)
        for wait in waits:
            if ok or stopping.wait(wait):
                break
            ok = target.send(title, body, kind)
        if not ok:
            failed.append(target)
    return failed


@dataclass
class Stats:
    sent: int = 0
    failed: int = 0
    repeats: int = 0
    held: int = 0
    dropped: int = 0
    last_sent_at: str | None = None
    last_error: str | None = None
    digests: int = 0
    by_event: Counter = field(default_factory=Counter)


class Notifier:
    """A service component: listens to the bus, sends from its own thread."""

    def __init__(self, service, settings: NotifySettings, targets: list[Target], errors: list[str], *,
                 clock=datetime.now, monotonic=time.monotonic):
        self.service = service
        self.settings = settings
        self.targets = targets
        self.errors = errors
        self.clock = clock
        self.monotonic = monotonic
        self.events = set(settings.events)
        self.digest_at = settings.digest_time()
        self.immediate = set(settings.immediate) if self.digest_at else set(NOTIFY_EVENTS)
        self.limiter = Limiter(settings.repeat_minutes * 60, settings.max_per_hour)
        self.queue: queue.Queue = queue.Queue(QUEUE_MAX)
        self.held: list[Notice] = []
        self.stats = Stats()
        self.stopping = threading.Event()
        self.down_since: dict[str, str] = {}  # an outage's notice was sent (kind -> when): say when it ends
        self.thread: threading.Thread | None = None

    # bus side (the emitter's thread: never blocks)

    def listen(self, event: dict) -> None:
        kind = notice_of(event)
        if kind is None and event.get("event") not in RECOVERIES:
            return
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.stats.dropped += 1

    # life cycle

    def start(self) -> None:
        cat = self.service.catalog
        if self.digest_at and marks.get_mark(cat, "digest_event") is None:
            marks.set_marks(cat, digest_event=marks.last_event_id(cat))  # a first digest covers from now on
        self.thread = threading.Thread(target=self._run, name="notify", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        try:
            self.queue.put_nowait(None)  # wakes the sender
        except queue.Full:
            pass
        if self.thread is not None:
            self.thread.join(15)

    def status(self, status: dict) -> None:
        s = self.stats
        status["service"]["notify"] = {
            "targets": [t.shown for t in self.targets], "errors": list(self.errors), "events": sorted(self.events),
            "digest": self.settings.digest or None, "sent": s.sent, "failed": s.failed, "repeats_held": s.repeats,
            "held": len(self.held), "dropped": s.dropped, "digests": s.digests, "last_sent_at": s.last_sent_at,
            "last_error": s.last_error,
        }

    # sender thread

    def settle(self, timeout: float = 30.0) -> bool:
        """Wait until the sender has taken everything queued so far and looked at its held
        notifications and the digest once more (tests; a clean stop)."""
        done = threading.Event()
        try:
            self.queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                event = self.queue.get(timeout=self._timeout())
            except queue.Empty:
                event = None
            marker = event if isinstance(event, threading.Event) else None
            try:
                if isinstance(event, dict):
                    self._handle(event)
                self._flush_held()
                self._maybe_digest()
            except Exception:  # noqa: BLE001 - a bug here must not end notifications for good
                log.exception("notify: sending failed; going on")
                self.stopping.wait(5)
            finally:
                if marker is not None:
                    marker.set()

    def _timeout(self) -> float:
        wait = 60.0
        if self.held:
            wait = min(wait, max(1.0, self.limiter.wait(self.monotonic())))
        if self.digest_at:
            last_day = marks.get_mark(self.service.catalog, "digest_day")
            now = self.clock()
            wait = min(wait, max(1.0, (next_digest(now, self.digest_at, last_day) - now).total_seconds()))
        return wait

    def _handle(self, event: dict) -> None:
        kind = notice_of(event)
        tid = event.get("torrent_id")
        outage = RECOVERIES.get(event.get("event"))
        if outage is not None:
            since = self.down_since.pop(outage, None)
            if since is not None and outage in self.events:
                what = RECOVERED[outage]
                self._send("recovered", f"seedward: {what}",
                           f"{what} (not answering since {since}).\n{event.get('message', '')}")
            return
        if kind not in self.events or kind not in self.immediate:
            return  # filtered out, or it waits for the digest
        notice = Notice(kind, tid, self._name(tid), str(event.get("message") or kind), str(event.get("at") or ""))
        key = (kind, tid)
        verdict = self.limiter.admit(key, self.monotonic())
        if verdict == "repeat":
            self.stats.repeats += 1
            return
        if verdict == "full":
            self.held.append(notice)
            self.stats.held += 1
            return
        again = self.limiter.repeated(key)
        if again:
            notice.extra = f"\n(and {again} more time{'s' if again > 1 else ''} within {self._repeat_text()}, not sent)"
        if kind in RECOVERED:
            self.down_since[kind] = notice.at or self.clock().isoformat(timespec="seconds")
        self._send(kind, _title(notice), _body(notice))

    def _flush_held(self) -> None:
        now = self.monotonic()
        if not self.held or not self.limiter.room(now):
            return
        held, self.held = self.held, []
        self.limiter.take(now)
        counts = Counter(n.event for n in held)
        title = f"seedward: {len(held)} notifications held back ({_counts(counts)})"
        lines = [f"{n.at[11:19] or '--:--:--'} {TITLES[n.event]}: {n.message}" for n in held[:DIGEST_LINES]]
        if len(held) > DIGEST_LINES:
            lines.append(f"... and {len(held) - DIGEST_LINES} more (seedward events)")
        self._send("held", title, f"Over {self.settings.max_per_hour} notifications in an hour; these waited:\n"
                   + "\n".join(lines))

    def _maybe_digest(self) -> None:
        if not self.digest_at:
            return
        cat = self.service.catalog
        now = self.clock()
        if not digest_due(now, self.digest_at, marks.get_mark(cat, "digest_day")):
            return
        after = int(marks.get_mark(cat, "digest_event") or 0)
        title, body, last_id = build_digest(cat, after, self.events, now)
        self._send("digest", title, body)
        self.stats.digests += 1
        marks.set_marks(cat, digest_event=max(after, last_id), digest_day=now.date().isoformat())

    def _send(self, kind: str, title: str, body: str) -> None:
        if not self.targets:
            return
        failed = deliver(self.targets, title, body, kind, stopping=self.stopping)
        stamp = self.clock().isoformat(timespec="seconds")
        if len(failed) < len(self.targets):
            self.stats.sent += 1
            self.stats.by_event[kind] += 1
            self.stats.last_sent_at = stamp
        if failed:
            self.stats.failed += 1
            shown = ", ".join(t.shown for t in failed)
            self.stats.last_error = f"{stamp}: not delivered to {shown}"
            log.warning("notify: %r not delivered to %s", title, shown)
            self.service.emit("notify_failed", None, f"notification {title!r} not delivered to {shown}",
                              level="warning", targets=[t.shown for t in failed])

    def _name(self, tid: str | None) -> str:
        if not tid:
            return ""
        row = self.service.catalog.get_torrent(tid)
        return row["name"] if row else tid[:12]

    def _repeat_text(self) -> str:
        minutes = self.settings.repeat_minutes
        return f"{minutes / 60:g} h" if minutes >= 60 else f"{minutes:g} min"


def _title(n: Notice) -> str:
    return f"seedward: {TITLES[n.event]}" + (f": {n.name}" if n.name else "")


def _body(n: Notice) -> str:
    where = f"\ntorrent {n.torrent_id}" if n.torrent_id else ""
    return f"{n.message}{n.extra}{where}\n{n.at}".rstrip()


def _counts(counts: Counter) -> str:
    return ", ".join(f"{n} {TITLES[k]}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def build_digest(cat, after_id: int, events, now: datetime) -> tuple[str, str, int]:
    """The digest of the events after `after_id`: (title, body, the last event id it covers)."""
    rows = marks.events_after(cat, after_id, LISTENED)
    last_id = rows[-1]["id"] if rows else after_id
    found = [(notice_of(r), r) for r in rows]
    found = [(k, r) for k, r in found if k in events]
    names = marks.torrent_names(cat, [r["torrent_id"] for _k, r in found])
    states = marks.state_counts(cat)
    counts = Counter(k for k, _r in found)
    title = f"seedward daily digest {now.date().isoformat()}: " + (_counts(counts) if counts else "nothing to report")
    lines = ["Torrents: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items())) if states else "Torrents: none"]
    if found:
        lines.append("")
        for kind, r in found[:DIGEST_LINES]:
            name = names.get(r["torrent_id"], "")
            lines.append(f"{r['at'][:16].replace('T', ' ')} {TITLES[kind]}{': ' + name if name else ''}: {r['message']}")
        if len(found) > DIGEST_LINES:
            lines.append(f"... and {len(found) - DIGEST_LINES} more (seedward events)")
    return title, "\n".join(lines), last_id


def register(service) -> None:
    settings = service.settings.notify
    if not settings.urls and not settings.urls_file:
        return
    targets, errors = load_targets(settings)
    for line in errors:
        service.emit("notify_bad", None, f"notifications: {line}; the other URLs are used", level="error")
    notifier = Notifier(service, settings, targets, errors)
    for kind in LISTENED:
        service.on(kind, notifier.listen)
    service.on_status(notifier.status)
    service.add_component(notifier)


def send_test(settings: NotifySettings) -> tuple[list[Target], list[Target], list[str]]:
    """`seedward notify test`: one message to every URL. Returns (delivered, failed, unloadable)."""
    targets, errors = load_targets(settings)
    failed = deliver(targets, "seedward: test notification",
                     f"seedward can reach this service ({date.today().isoformat()}).", "test", waits=())
    return [t for t in targets if t not in failed], failed, errors
