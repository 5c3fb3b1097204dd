"""The state home: where seedward keeps everything it owns."""

import os
from dataclasses import dataclass
from pathlib import Path


def default_home() -> Path:
    env = os.environ.get("SEEDWARD_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "seedward"


@dataclass(frozen=True)
class Home:
    """Paths inside the state home. Creating it is explicit (`ensure`)."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def catalog_db(self) -> Path:
        return self.root / "catalog.sqlite"

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def torrents(self) -> Path:
        return self.root / "torrents"

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def scratch(self) -> Path:
        return self.root / "scratch"

    @property
    def socket(self) -> Path:
        return self.root / "control.sock"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def ensure(self) -> "Home":
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        for sub in (self.torrents, self.spool, self.quarantine):
            sub.mkdir(exist_ok=True, mode=0o700)
        return self


def open_home(path: str | os.PathLike | None = None) -> Home:
    """The home from --home, $SEEDWARD_HOME or the default, made absolute once, here: every path the
    catalog stores and every place a job must not see is then the same from any working directory."""
    return Home(Path(os.path.abspath(Path(path).expanduser() if path else default_home())))
