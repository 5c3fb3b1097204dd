"""The user's own stop and start of a torrent (`seedward stop ID`, `seedward start ID`): carried
out through qBittorrent and recorded as the user's choice, so nothing in seedward starts a
torrent the user stopped, and a torrent seedward stopped (a hold) is handed over to the user."""

from ..catalog import trust
from ..errors import BadInput


def user_stop(catalog, qbt, tid: str, *, operator: str = "", steps=None) -> dict:
    trust.user_stop(catalog, tid, operator)
    qbt.stop(tid)
    hold = steps.info(tid) if steps is not None else trust.get_hold(catalog, tid)
    if hold is not None:  # seedward will not start it when it is done with it
        remaining = [s for s in hold["steps"] if s != "start"]
        if steps is not None:
            with steps.lock:
                if tid in steps.holds:
                    steps.holds[tid].update(resume=False, steps=remaining)
        trust.update_hold(catalog, tid, resume=False, steps=remaining)
    return {"id": tid, "stopped": True, "by": "user", "operator": operator,
            "held_by_seedward": hold is not None}


def user_start(catalog, qbt, tid: str, *, state: str | None, force: bool = False, operator: str = "",
               steps=None) -> dict:
    """Refuses a damaged or healing torrent unless forced: it would seed pieces that fail their hashes."""
    if state in ("damaged", "healing") and not force:
        raise BadInput(tid[:12], f"it is {state}: starting it would seed pieces that fail their hashes; heal it "
                       "(`seedward restore ID`) or start it anyway with --force")
    trust.user_start(catalog, tid)
    if steps is not None:
        steps.drop(tid)  # the user takes over from seedward
    else:
        trust.drop_hold(catalog, tid)
    qbt.start(tid)
    return {"id": tid, "started": True, "by": "user", "operator": operator, "protection": state, "forced": force}
