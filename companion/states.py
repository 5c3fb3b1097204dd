"""The protection-state vocabulary: every state seedward shows for a torrent, and the qBittorrent
tags that mirror them. Standard library only; everything that names a state takes it from here.

  pending       known, not verified yet
  protected     verified against the torrent's own hashes; a baseline is kept and drift is watched
  damaged       drift found (or a heal failed): some pieces no longer match
  healing       damaged pieces are being written back
  baseline_bad  the payload never matched its torrent: nothing to protect yet
  excluded      a policy or a rule keeps it out (the reason is said)
  unreachable   its save path does not exist on this host (a container without path_map, a disk
                not mounted): nothing is verified or healed there until it is back
  removed       gone from qBittorrent; its history is kept
"""

PENDING, PROTECTED, DAMAGED, HEALING = "pending", "protected", "damaged", "healing"
BASELINE_BAD, EXCLUDED, REMOVED = "baseline_bad", "excluded", "removed"
UNREACHABLE = "unreachable"

# The states a torrent in qBittorrent can be in (each has its tag there).
STATES = (PENDING, PROTECTED, DAMAGED, HEALING, BASELINE_BAD, EXCLUDED, UNREACHABLE)
PROTECTION_STATES = frozenset(STATES + (REMOVED,))
HAS_BASELINE = (PROTECTED, DAMAGED, HEALING)  # verified once: a baseline exists, drift is watched
UNPROTECTED = frozenset({PENDING, BASELINE_BAD, EXCLUDED, UNREACHABLE})

TAG_PREFIX = "seedward:"
HARDLINKED_TAG = TAG_PREFIX + "hardlinked"  # a payload file has other hard links
COMPANION_TAG = TAG_PREFIX + "companion"  # a torrent seedward published from an AI job's outputs


def state_tag(state: str) -> str:
    """qBittorrent's tag for a protection state: seedward:protected, seedward:baseline-bad, ..."""
    return TAG_PREFIX + state.replace("_", "-")


def split_tags(tags) -> list[str]:
    """qBittorrent's tags ("a, b" or a list) as a list."""
    if isinstance(tags, str):
        return [t.strip() for t in tags.split(",") if t.strip()]
    return list(tags or ())


def user_tags(tags) -> list[str]:
    """The tags that are not seedward's own."""
    return [t for t in split_tags(tags) if not t.startswith(TAG_PREFIX)]
