"""Path mapping between qBittorrent and this host, for a qBittorrent in a container.

A container sees the downloads under its own paths (`/data/torrents`) while this host sees them
elsewhere (`/srv/seedbox/data/torrents`). `path_map` lists pairs [qBittorrent's prefix, the host's
prefix], as tqm's `download_path_mapping` and qbit_manage's `root_dir`/`remote_dir` do. A path is
mapped by the longest prefix that matches it whole components at a time (`/data` maps `/data/x`,
never `/database`); a path no pair matches is the same on both sides. Pure: no file is touched.
"""

import posixpath

from .errors import ConfigError


def _clean(path: str) -> str:
    return posixpath.normpath(path) if path else path


def _under(path: str, prefix: str) -> str | None:
    """The rest of `path` below `prefix` ("" for the prefix itself), or None."""
    if prefix == "/":
        return path[1:] if path.startswith("/") else None
    if path == prefix:
        return ""
    if path.startswith(prefix + "/"):
        return path[len(prefix) + 1:]
    return None


def _join(prefix: str, rest: str) -> str:
    return prefix if not rest else posixpath.join(prefix, rest)


class PathMap:
    """pairs: [(qBittorrent's prefix, host prefix), ...]."""

    def __init__(self, pairs=()):
        self.pairs = tuple((_clean(q), _clean(h)) for q, h in pairs)
        self._to_host = sorted(self.pairs, key=lambda p: len(p[0]), reverse=True)
        self._to_qbt = sorted(self.pairs, key=lambda p: len(p[1]), reverse=True)

    @classmethod
    def parse(cls, value, where: str, key: str = "qbittorrent.path_map") -> "PathMap":
        """From the config's list of [qBittorrent prefix, host prefix] pairs; ConfigError says what is wrong."""
        if not isinstance(value, list):
            raise ConfigError(where, f"{key} should be a list of [qBittorrent's path, this host's path] pairs")
        pairs = []
        for n, pair in enumerate(value, 1):
            if (not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(p, str) for p in pair)):
                raise ConfigError(where, f"{key} entry {n} should be [\"qBittorrent's path\", \"this host's path\"],"
                                  f" not {pair!r}")
            for side, p in zip(("qBittorrent's", "this host's"), pair):
                if not p.startswith("/"):
                    raise ConfigError(where, f"{key} entry {n}: {side} path {p!r} should be absolute")
                if ".." in p.split("/"):
                    raise ConfigError(where, f"{key} entry {n}: {side} path {p!r} must not contain '..'")
            pairs.append((pair[0], pair[1]))
        qbt_sides = [_clean(q) for q, _ in pairs]
        for q in qbt_sides:
            if qbt_sides.count(q) > 1:
                raise ConfigError(where, f"{key}: qBittorrent's path {q!r} is mapped twice")
        host_sides = [_clean(h) for _, h in pairs]
        for h in host_sides:
            if host_sides.count(h) > 1:
                raise ConfigError(where, f"{key}: this host's path {h!r} is mapped twice")
        return cls(pairs)

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def __repr__(self) -> str:
        return f"PathMap({list(self.pairs)!r})"

    def _map(self, path, ordered, src: int, dst: int):
        if not path or not self.pairs or not str(path).startswith("/"):
            return str(path) if path else path  # None, "" and relative paths stay as they are
        clean = _clean(str(path))
        for pair in ordered:
            rest = _under(clean, pair[src])
            if rest is not None:
                return _join(pair[dst], rest)
        return clean

    def to_host(self, path):
        """qBittorrent's path as this host sees it."""
        return self._map(path, self._to_host, 0, 1)

    def to_qbt(self, path):
        """This host's path as qBittorrent sees it."""
        return self._map(path, self._to_qbt, 1, 0)

    def covers(self, host_path) -> bool:
        """Does a pair map this host path (or is there no mapping at all: qBittorrent on this host)?"""
        if not self.pairs:
            return True
        clean = _clean(str(host_path))
        return any(_under(clean, h) is not None for _, h in self.pairs)

    def to_json(self) -> list:
        return [list(p) for p in self.pairs]
