"""`seedward notify test [--json]`: send one test message to every [notify] URL (URLs shown
without their tokens). Exit 0 when every URL took it, 2 when one did not or cannot be loaded."""

from ..errors import EXIT_ERROR, EXIT_OK, ConfigError
from .context import print_json


def register(sub) -> None:
    p = sub.add_parser("notify", help="notifications: send a test message to every [notify] URL")
    verbs = p.add_subparsers(dest="notify_verb", metavar="VERB", required=True)
    test = verbs.add_parser("test", help="send one test message to every URL (no service needed)")
    test.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    from ..notify import configured_urls, send_test

    settings = ctx.settings.notify
    if not configured_urls(settings):
        raise ConfigError(ctx.home.config, "no notification URL: set [notify] urls, urls_file or SEEDWARD_NOTIFY_URLS")
    delivered, failed, errors = send_test(settings)
    if args.json:
        print_json({"delivered": [t.shown for t in delivered], "failed": [t.shown for t in failed],
                    "errors": errors})
    else:
        for t in delivered:
            print(f"delivered  {t.shown}")
        for t in failed:
            print(f"FAILED     {t.shown}")
        for line in errors:
            print(f"not loaded {line}")
    return EXIT_OK if not failed and not errors else EXIT_ERROR
