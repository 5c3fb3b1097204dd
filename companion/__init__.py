"""seedward: a companion for qBittorrent seeders."""

__version__ = "0.1.0"
