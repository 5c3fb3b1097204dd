"""Features that plug into `seedward serve`: each module has `register(service)`.

A missing module is skipped (the feature is not installed); one that fails to register is
logged and skipped, never fatal.
"""

import importlib
import logging

log = logging.getLogger(__name__)

FEATURES = (
    "companion.store.job",  # "snapshot" jobs (issue 4)
    "companion.drift.service",  # drift watch and heal (issue 4)
    "companion.ladder.service",  # the protection ladder: zones jobs, heal sources, budget (issue 16)
    "companion.drill.service",  # scheduled restore drills (issue 5)
    "companion.publish.service",  # AI jobs' companion torrents (issue 6)
    "companion.archive.service",  # scheduled archive tiers: job kinds archive_* and their [schedule] (issue 19)
    "companion.retention",  # scheduled forget, prune, quarantine expiry and scrub ([schedule], issue 17)
    "companion.notify",  # Apprise notifications, when [notify] has URLs (issue 17)
    "companion.metrics",  # the Prometheus endpoint, when [metrics] listen is set (issue 17)
    "companion.fleet.service",  # several seedboxes on one catalog: heartbeat, the fleet in status (issue 20)
    "companion.service.watchdog",  # liveness: the service asks itself for its status; systemd's watchdog
)


def install_features(service, names=FEATURES) -> list[str]:
    installed = []
    for name in names:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue
            log.exception("feature %s cannot be imported; skipped", name)
            continue
        except Exception:
            log.exception("feature %s cannot be imported; skipped", name)
            continue
        register = getattr(module, "register", None)
        if register is None:
            continue
        try:
            register(service)
            installed.append(name)
        except Exception:
            log.exception("feature %s failed to register; skipped", name)
    return installed
