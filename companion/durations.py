"""A duration in the short words the status, the continuity and the TUI share (stdlib only)."""


def seconds_text(s: float | None) -> str:
    """'4.2 s', '12 s', '3 min', '1.5 h', '2.0 d'; '-' for None."""
    if s is None:
        return "-"
    if s < 60:
        return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.0f} min"
    if s < 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"
