"""The ladder's budget: how much extra disk the store may use, and what `auto` gives each torrent
within it (pure)."""

import re
from dataclasses import dataclass, field

from ..errors import ConfigError

UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}


def parse_budget(text: str) -> tuple[float | None, int | None]:
    """'2%' -> (2.0, None); '500G' -> (None, 500 GiB). Raises ConfigError for anything else."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%|[KMGTP]?)i?B?\s*", str(text), re.IGNORECASE)
    if not m:
        raise ConfigError("[protection] budget", f"{text!r} is neither a share ('2%') nor a size ('500G')")
    value, unit = float(m.group(1)), m.group(2).upper()
    if unit == "%":
        return value, None
    return None, int(value * UNITS[unit])


def budget_bytes(text: str, payload_bytes: int, minimum: str = "0") -> int:
    """The budget in bytes: a share of the payload or a size, and at least `minimum` (a size):
    2 % of a small library would keep next to nothing."""
    share, size = parse_budget(text)
    asked = int(payload_bytes * share / 100) if share is not None else size
    floor_share, floor = parse_budget(minimum)
    if floor_share is not None:
        floor = int(payload_bytes * floor_share / 100)
    return max(asked, floor)


@dataclass
class Candidate:
    torrent_id: str
    payload: int
    zones: int  # bytes its zones take (estimated or kept)
    level: str  # the policy's level: auto | snapshot | catalog | exclude
    snapshot_max: int = 0  # auto: a full snapshot only up to this payload size


@dataclass
class Plan:
    budget: int
    zones: dict[str, bool] = field(default_factory=dict)  # torrent -> keeps zones
    full: set[str] = field(default_factory=set)  # torrents with a full snapshot
    used: int = 0
    over: list[str] = field(default_factory=list)  # what the budget could not cover, one line each

    def to_json(self) -> dict:
        return {"budget": self.budget, "used": self.used, "full": sorted(self.full), "over": self.over,
                "zones": sorted(t for t, z in self.zones.items() if z)}


def plan(candidates: list[Candidate], budget: int) -> Plan:
    """Zones for every auto or snapshot torrent first (they cover the tagger cases), then full
    snapshots: every `snapshot` torrent (asked for explicitly), then the smallest `auto` torrents up to
    their size cap while the budget lasts. What the budget cannot cover is said in `over`."""
    out = Plan(budget)
    for c in candidates:
        if c.level in ("auto", "snapshot"):
            out.zones[c.torrent_id] = True
            out.used += c.zones
    asked = [c for c in candidates if c.level == "snapshot"]
    for c in asked:
        out.full.add(c.torrent_id)
        out.used += c.payload
    if out.used > budget:
        out.over.append(f"zones and the full snapshots asked for take {out.used:,} bytes, more than the budget"
                        f" ({budget:,}); raise [protection] budget or protect fewer torrents by snapshot")
    for c in sorted((c for c in candidates if c.level == "auto" and c.payload <= c.snapshot_max),
                    key=lambda c: (c.payload, c.torrent_id)):
        if out.used + c.payload - c.zones > budget:
            break
        out.full.add(c.torrent_id)
        out.used += c.payload - c.zones  # a full snapshot holds the zones' chunks too
    return out


def full_snapshot_refusal(prot, policy, payload_size: int, usage: dict, has_snapshot: bool) -> str | None:
    """Why a torrent gets no full snapshot under its policy, None when it does (pure): level
    `snapshot` always (within its snapshot_max_bytes); `auto` when the torrent is no bigger than
    auto_snapshot_max_mb and the store has room for it within the budget (a torrent snapshotted
    before costs next to nothing again)."""
    if policy.snapshot_max_bytes and payload_size > policy.snapshot_max_bytes:
        return f"larger than the policy's snapshot_max_bytes ({policy.snapshot_max_bytes:,})"
    if policy.level == "snapshot":
        return None
    if policy.level != "auto":
        return f"policy level {policy.level}"
    if payload_size > prot.auto_snapshot_max_mb * 1024 * 1024:
        return f"auto: larger than auto_snapshot_max_mb ({prot.auto_snapshot_max_mb} MiB); zones and parity instead"
    budget = budget_bytes(prot.budget, usage["payload_bytes"], prot.budget_min)
    if not has_snapshot and usage["bytes"] + payload_size > budget:
        return (f"auto: a full snapshot ({payload_size:,} bytes) does not fit the budget {prot.budget}"
                f" ({usage['bytes']:,} of {budget:,} bytes used); zones and parity instead")
    return None
