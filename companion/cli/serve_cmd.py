"""`seedward serve`: the long-running service (foreground; logs on stderr; stops on SIGTERM/SIGINT;
SIGHUP tries the WebUI password again after qBittorrent refused it)."""

import logging
import signal

from ..errors import EXIT_OK


def register(sub) -> None:
    p = sub.add_parser("serve", help="run the service: protect every torrent qBittorrent completes")
    p.add_argument("--jobs", type=int, metavar="N", help="concurrent hashing jobs (config: [service] jobs)")
    p.add_argument("--read-rate-mb", type=float, metavar="MB", help="read-rate cap in MB/s, 0 for none")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    from ..service import Service
    from ..service.features import install_features

    settings = ctx.settings
    if args.jobs is not None:
        settings.service.jobs = max(1, args.jobs)
    if args.read_rate_mb is not None:
        settings.service.read_rate_mb = max(0.0, args.read_rate_mb)
    # The service says what it does: info level at least, more with -v.
    root = logging.getLogger()
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("qbittorrentapi").setLevel(logging.WARNING)
    logging.getLogger("git").setLevel(logging.WARNING)
    service = Service(ctx.home, settings, catalog=ctx.catalog, manifests=ctx.manifests)
    # SIGHUP: the WebUI password source may be tried again after a refused login (qbtlogin.py),
    # an inline password as config.toml says now.
    signal.signal(signal.SIGHUP, lambda _sig, _frame: service.qbt.retry_login(inline_passwords(ctx.home)))
    installed = install_features(service)
    logging.getLogger(__name__).info("features: %s", ", ".join(installed) or "none")
    service.run_forever()
    return EXIT_OK


def inline_passwords(home) -> dict:
    """{instance: [qbittorrent] password} from config.toml now (none for an instance with a password
    file: that is read at each login). A config that no longer loads keeps the passwords read at start."""
    from ..config import load_settings

    try:
        return {s.name: s.password for s in load_settings(home.config).qbt_instances() if not s.password_file}
    except Exception as exc:  # noqa: BLE001 - a signal handler must not end the service
        logging.getLogger(__name__).warning("SIGHUP: config not re-read (%s); the passwords read at start stay", exc)
        return {}
