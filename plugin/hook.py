"""`seedward-hook added|finished "%I" "%J" "%N" "%D" "%F"` (filled in by the service issue)."""

import sys


def main(argv=None) -> int:
    print("seedward-hook: not implemented yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
