"""The qBittorrent "run external program" hook (stdlib only at import)."""
