"""The companion service: follows qBittorrent, keeps every complete torrent protected.

Extension points for features (drift, drills, AI jobs, the TUI): `Service.register_job`,
`Service.on` / `Service.emit`, `Service.add_component`; see `service.py`.
"""

from .jobs import Job
from .service import Service

__all__ = ["Job", "Service"]
