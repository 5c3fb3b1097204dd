"""Several qBittorrent instances followed by one seedward (issue 17): `[[instances]]` in the config,
or the one `[qbittorrent]`.

Ids stay qBittorrent's torrent hash. A torrent held by two instances at the same place (after each
instance's path_map) is one payload: cataloged and protected once, and whatever seedward asks of
qBittorrent for it (stop, recheck, start, tags) goes to every instance holding it. The instance that
speaks for it (its `primary`) is the first, in the config's order, whose save path this host reaches.
A copy of the same torrent at another place is listed under `copies` and is not protected (the
catalog keeps one payload per torrent id).

`Router` has the Qbt API (companion/qbt.py), routed by torrent hash; the service's `qbt` is one, so
features need not know how many instances there are. It knows who holds what from each instance's
sync view (`Instance.view`, set by the service); without one (a CLI command) it asks each instance.
"""

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, QbtError
from .qbt import BUSY_STATES, Qbt, QbtNotFound, QbtUnreachable, normalize_state

log = logging.getLogger(__name__)

SPOOL = "spool"  # the hook's spool inside an instance's hook_dir


@dataclass(eq=False)
class Instance:
    name: str
    settings: object  # config.QbtSettings
    qbt: Qbt
    view: object = None  # fn(hash) -> this instance's last sync view of a torrent, or None (the service sets it)
    connected: object = None  # fn() -> does its sync loop reach it now (the service sets it); None: assume so
    index: int = 0  # its place in the config

    @property
    def path_map(self):
        return self.qbt.path_map

    @property
    def hook_dir(self) -> Path | None:
        return Path(self.settings.hook_dir) if getattr(self.settings, "hook_dir", "") else None

    @property
    def spool(self) -> Path | None:
        return self.hook_dir / SPOOL if self.hook_dir is not None else None

    def live(self, h: str) -> dict | None:
        return self.view(h) if self.view is not None else None

    @property
    def up(self) -> bool:
        return self.connected is None or bool(self.connected())


def build(settings, home=None, qbt: Qbt | None = None) -> list[Instance]:
    """The configured instances (`qbt`: the first one's client, given by a test)."""
    out = []
    for n, s in enumerate(settings.qbt_instances()):
        client = qbt if (n == 0 and qbt is not None) else Qbt.from_settings(s, home=home)
        out.append(Instance(s.name, s, client, index=n))
    return out


def pick(settings, name: str | None) -> list:
    """The QbtSettings of `--instance NAME` (all of them without a name)."""
    every = settings.qbt_instances()
    if not name:
        return list(every)
    for s in every:
        if s.name == name:
            return [s]
    raise ConfigError("--instance", f"no qBittorrent instance named {name!r} (configured: "
                      f"{', '.join(s.name for s in every)})")


def connect(settings, home=None, name: str | None = None) -> "Router":
    """A Router over the named instance (or all), logged in: for CLI commands. An instance that does
    not answer is left out (said in `router.down`) unless none answers: then its error is raised."""
    chosen = pick(settings, name)
    every = [Instance(s.name, s, Qbt.from_settings(s, home=home, one_try=True), index=n) for n, s in enumerate(chosen)]
    up, down = [], {}
    for inst in every:
        try:
            inst.qbt.connect()
            up.append(inst)
        except QbtError as exc:
            if len(every) == 1:
                raise
            down[inst.name] = exc
            log.warning("qBittorrent instance %s: %s", inst.name, exc)
    if not up:
        raise next(iter(down.values()))
    router = Router(up)
    router.down = down
    return router


def merged_state(states: list[str]) -> str:
    """One state for a torrent several instances hold: checking while any checks, running while
    any runs (so a stop reaches all), stopped only when every one is."""
    states = [normalize_state(s) for s in states]
    for s in states:
        if s in BUSY_STATES or s.startswith("checking"):
            return s
    for s in states:
        if not s.startswith("stopped"):
            return s
    return states[0]


class Router:
    """The Qbt API over several instances, by torrent hash."""

    def __init__(self, instances: list[Instance]):
        if not instances:
            raise ConfigError("config", "no qBittorrent instance configured")
        self.instances = list(instances)
        self.by_name = {i.name: i for i in self.instances}
        self._was_running: dict[str, set] = {}  # hash -> instances that ran it when seedward stopped it
        self.down: dict = {}  # instances connect() left out: name -> the error

    # what the first instance stands for (messages, single-instance callers)

    @property
    def several(self) -> bool:
        return len(self.instances) > 1

    @property
    def first(self) -> Qbt:
        return self.instances[0].qbt

    @property
    def url(self) -> str:
        return self.first.url

    @property
    def username(self) -> str:
        return self.first.username

    @property
    def version(self) -> str:
        return self.first.version

    @property
    def path_map(self):
        return self.first.path_map

    @property
    def login_wait(self) -> float:
        return min(i.qbt.login_wait for i in self.instances)

    @property
    def login_failures(self) -> int:
        return self.first.login_failures

    def login_status(self) -> dict:
        return self.first.login_status()

    def only(self, name: str | None) -> "Router":
        """This router narrowed to one instance (`--instance NAME`); itself without a name."""
        if not name:
            return self
        inst = self.by_name.get(name)
        if inst is None:
            raise ConfigError("--instance", f"no qBittorrent instance named {name!r} (configured: "
                              f"{', '.join(self.by_name)})")
        narrowed = Router([inst])
        narrowed._was_running = self._was_running
        return narrowed

    def connect(self) -> str:
        versions = [i.qbt.connect() for i in self.instances]
        return versions[0]

    def retry_login(self, passwords: dict | None = None) -> None:
        """passwords: {instance name: inline password as the config says now} (SIGHUP)."""
        for i in self.instances:
            i.qbt.retry_login((passwords or {}).get(i.name))

    # who holds a torrent

    def _views(self, h: str, ask: bool = True) -> list[tuple[Instance, dict]]:
        """(instance, its view) of every instance holding the torrent, in config order."""
        out = [(i, v) for i in self.instances if (v := i.live(h)) is not None]
        if out or not ask:
            return out
        errors = []
        for i in self.instances:  # not in any sync view (just added, or no service): ask
            try:
                t = i.qbt.torrent(h)
            except QbtError as exc:
                errors.append(exc)
                continue
            if t is not None:
                out.append((i, t))
        if not out and errors and len(errors) == len(self.instances):
            raise errors[0]
        return out

    def holders(self, h: str, ask: bool = True) -> dict:
        """{"primary": Instance | None, "same": [instances holding this payload], "copies": [(instance,
        save path) holding the torrent elsewhere]}."""
        views = self._views(h, ask)
        if not views:
            return {"primary": None, "same": [], "copies": []}
        def rank(iv):  # answering and reaching its save path first, then config order
            i, v = iv
            return (not i.up, not (v.get("save_path") and os.path.isdir(v["save_path"])), i.index)

        primary, pv = min(views, key=rank)
        where = _place(pv)
        same = [i for i, v in views if _place(v) == where or not v.get("save_path")]
        copies = [(i, v.get("save_path")) for i, v in views if i not in same]
        return {"primary": primary, "same": same, "copies": copies}

    def _primary(self, h: str) -> Instance:
        found = self.holders(h)["primary"]
        if found is None:
            raise QbtNotFound(self.url if not self.several else ", ".join(i.qbt.url for i in self.instances), h)
        return found

    def _each(self, h: str, call, instances=None) -> None:
        """call(qbt) on every instance holding this payload: each one is tried; a refusal or an
        unreachable instance is raised after the others had theirs; QbtNotFound only when none has it."""
        targets = instances if instances is not None else self.holders(h)["same"]
        if not targets:
            raise QbtNotFound(self.url, h)
        reachable = [i for i in targets if i.up]
        if not reachable:  # none answers now: the caller waits and tries again
            raise QbtUnreachable(targets[0].qbt.url, "not connected")
        # an instance that is down gets it when it is back: the drift steps stop again what runs there
        targets = reachable
        errors = []
        for i in targets:
            try:
                call(i.qbt)
            except QbtError as exc:
                errors.append(exc)
        real = [e for e in errors if not isinstance(e, QbtNotFound)]
        if real:
            raise real[0]
        if len(errors) == len(targets):
            raise errors[0]

    # reads

    def torrent(self, h: str) -> dict | None:
        """The torrent as its instances report it now (asked, not the sync view): the primary's fields,
        the state merged over every instance holding the payload, `instance`, `instances`."""
        found, errors = [], []
        hs = self.holders(h)
        for i in ([hs["primary"]] if hs["primary"] else []) + [i for i in hs["same"] if i is not hs["primary"]]:
            try:
                t = i.qbt.torrent(h)
            except QbtNotFound:
                continue
            except QbtError as exc:
                errors.append(exc)
                continue
            if t is not None:
                found.append((i, t))
        if not found:
            if errors:
                raise errors[0]
            return None
        return _merge(found) if self.several else found[0][1]

    def torrents(self, hashes=None) -> list[dict]:
        by_hash: dict[str, list] = {}
        for i in self.instances:
            for t in i.qbt.torrents(hashes):
                by_hash.setdefault(t["hash"], []).append((i, t))
        return [_merge(v) if self.several else v[0][1] for v in by_hash.values()]

    def files(self, h: str) -> list[dict]:
        return self._primary(h).qbt.files(h)

    def export(self, h: str) -> bytes:
        return self._primary(h).qbt.export(h)

    # what seedward asks of qBittorrent: every instance holding the payload

    def stop(self, h: str) -> None:
        same = self.holders(h)["same"]
        if h not in self._was_running and self.several:
            self._was_running[h] = {i.name for i in same if _running(i.live(h))}
        self._each(h, lambda q: q.stop(h), same)

    def start(self, h: str) -> None:
        same = self.holders(h)["same"]
        ran = self._was_running.pop(h, None)
        targets = [i for i in same if i.name in ran] if ran else same
        self._each(h, lambda q: q.start(h), targets or same)

    def recheck(self, h: str) -> None:
        self._each(h, lambda q: q.recheck(h))

    def add_tags(self, h: str, tags) -> None:
        self._each(h, lambda q: q.add_tags(h, tags))

    def remove_tags(self, h: str, tags) -> None:
        self._each(h, lambda q: q.remove_tags(h, tags))

    def set_location(self, h: str, save_path) -> None:
        self._each(h, lambda q: q.set_location(h, save_path))

    def add_torrent(self, raw: bytes, save_path, *, instance: str | None = None, **kwargs) -> None:
        """Add to the named instance, else the first whose path_map reaches this host path."""
        target = self.for_path(save_path, instance)
        target.qbt.add_torrent(raw, save_path, **kwargs)

    def for_path(self, host_path, instance: str | None = None) -> Instance:
        if instance:
            return self.only(instance).instances[0]
        for i in self.instances:
            if i.path_map.covers(host_path):
                return i
        raise QbtError(self.url, f"no qBittorrent instance sees {host_path} (add a path_map pair whose host "
                       "side holds it)")

    # per-torrent options: the primary (qbtstate's restore goes through one instance anyway)

    def rename_path(self, h: str, old: str, new: str) -> None:
        self._primary(h).qbt.rename_path(h, old, new)

    def file_priority(self, h: str, indices, priority: int) -> None:
        self._primary(h).qbt.file_priority(h, indices, priority)

    def set_super_seeding(self, h: str, enable: bool) -> None:
        self._primary(h).qbt.set_super_seeding(h, enable)

    def set_auto_management(self, h: str, enable: bool) -> None:
        self._primary(h).qbt.set_auto_management(h, enable)

    # the first instance's own settings (callers that need another one use only(name))

    def preferences(self) -> dict:
        return self.first.preferences()

    def set_preferences(self, prefs: dict) -> None:
        self.first.set_preferences(prefs)

    def categories(self) -> dict:
        return self.first.categories()

    def create_category(self, name: str, save_path: str = "") -> None:
        self.first.create_category(name, save_path)

    def tags(self) -> list[str]:
        return self.first.tags()

    def create_tags(self, tags) -> None:
        self.first.create_tags(tags)


def _place(t: dict) -> tuple:
    return (os.path.normpath(t["save_path"]) if t.get("save_path") else "",
            os.path.normpath(t["content_path"]) if t.get("content_path") else "")


def _running(t: dict | None) -> bool:
    return t is not None and not normalize_state(t.get("state", "")).startswith("stopped")


def _merge(found: list[tuple[Instance, dict]]) -> dict:
    """One view of a torrent several instances report: the first one's fields, states merged over the
    instances holding the same payload, the smallest progress, who holds it."""
    first_inst, first = found[0]
    same = [(i, t) for i, t in found if _place(t) == _place(first)]
    out = dict(first)
    out["state"] = merged_state([t.get("state", "") for _, t in same])
    if any("progress" in t for _, t in same):
        out["progress"] = min(float(t.get("progress", 1)) for _, t in same)
    out["instance"] = first_inst.name
    out["instances"] = [i.name for i, _ in same]
    copies = [{"instance": i.name, "save_path": t.get("save_path")} for i, t in found if (i, t) not in same]
    if copies:
        out["copies"] = copies
    return out


def merged_view(views: list[tuple[Instance, dict]]) -> dict | None:
    """Several instances' sync views of one torrent as one (the primary first: the first whose save
    path this host reaches)."""
    if not views:
        return None
    if len(views) == 1:
        return dict(views[0][1], instance=views[0][0].name, instances=[views[0][0].name])
    primary = next((k for k, (_i, v) in enumerate(views) if v.get("save_path") and os.path.isdir(v["save_path"])), 0)
    return _merge([views[primary]] + [x for k, x in enumerate(views) if k != primary])
