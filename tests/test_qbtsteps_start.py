"""A start is only done once qBittorrent shows it running, not checking, for a while (drift/qbtsteps.py).

Found by the soak: after a heal, seedward said "resumed" and dropped its hold, but qBittorrent
(4.5) stopped the torrent again when the recheck it was running ended (a recheck of a stopped
torrent resumes it only until the check is over; a start sent meanwhile is lost). The torrent
stayed stopped for good, with nothing queued to start it. The seam here is qBittorrent's view and
its calls (a scripted view, a recorder), the qBittorrent behaviour itself is the real one's."""

import time

from companion.catalog import Catalog
from companion.drift import qbtsteps
from companion.drift.qbtsteps import QbtSteps

TID = "ab" * 20


class Recorder:
    url = "http://127.0.0.1:1"

    def __init__(self, view):
        self.view, self.calls = view, []

    def start(self, tid):
        self.calls.append("start")
        self.view["state"] = "checkingUP" if self.view.pop("checking_left", 0) else "stalledUP"

    def stop(self, tid):
        self.calls.append("stop")
        self.view["state"] = "pausedUP"

    def recheck(self, tid):
        self.calls.append("recheck")

    def torrent(self, tid):
        return dict(self.view, progress=1.0)

    def add_tags(self, *a):
        pass

    def remove_tags(self, *a):
        pass


def held_and_stopped(tmp_path, monkeypatch, resend: float):
    """A QbtSteps over a scripted qBittorrent whose torrent seedward holds, its stop carried out."""
    monkeypatch.setattr(qbtsteps, "START_SETTLE", 0.3)
    monkeypatch.setattr(qbtsteps, "START_RESEND", resend)
    view = {"state": "pausedUP"}
    qbt = Recorder(view)
    cat = Catalog(tmp_path / "catalog.sqlite")
    steps = QbtSteps(cat, qbt, live=lambda tid: dict(view))
    assert steps.hold(TID, "drift", resume=True)
    steps.tick()
    return view, qbt, cat, steps


def until_done(steps) -> None:
    deadline = time.monotonic() + 30
    while steps.pending(TID) and time.monotonic() < deadline:
        steps.tick()
        time.sleep(0.05)


def test_a_start_lost_at_the_end_of_a_check_is_sent_again(tmp_path, monkeypatch):
    view, qbt, cat, steps = held_and_stopped(tmp_path, monkeypatch, resend=0.3)
    assert qbt.calls == ["stop"] and steps.pending(TID) == []
    view["checking_left"] = 1  # qBittorrent is checking the stopped torrent: the first start lands in it
    steps.settle(TID)
    steps.tick()
    assert qbt.calls == ["stop", "start"] and view["state"] == "checkingUP"
    steps.tick()
    assert steps.pending(TID) == ["start"]  # checking is not running: not done
    view["state"] = "pausedUP"  # the check is over, and qBittorrent stopped it again
    until_done(steps)
    assert steps.pending(TID) == [] and not steps.held(TID)
    assert qbt.calls == ["stop", "start", "start"] and view["state"] == "stalledUP"
    cat.close()


def test_a_start_is_done_only_after_it_stays_running(tmp_path, monkeypatch):
    view, qbt, cat, steps = held_and_stopped(tmp_path, monkeypatch, resend=60.0)
    steps.settle(TID)
    steps.tick()
    assert qbt.calls == ["stop", "start"] and steps.pending(TID) == ["start"]  # running, not for long yet
    until_done(steps)
    assert steps.pending(TID) == [] and qbt.calls == ["stop", "start"]
    cat.close()


def test_resumed_is_said_once_the_start_is_taken_not_when_it_is_sent(tmp_path, monkeypatch):
    """The healed state comes first (qBittorrent never shows it seeding as healing); `resumed`,
    from which seeding continuity counts the torrent seeding again, only once the start is taken."""
    view, qbt, cat, steps = held_and_stopped(tmp_path, monkeypatch, resend=0.3)
    said = []
    steps.on_settled = lambda tid: said.append(("settled", tuple(qbt.calls)))
    steps.on_resumed = lambda tid: said.append(("resumed", tuple(qbt.calls), view["state"]))
    view["checking_left"] = 1
    steps.settle(TID)
    steps.tick()
    assert said == [("settled", ("stop",))]  # before the start is sent
    view["state"] = "pausedUP"  # the start was lost at the end of the check
    until_done(steps)
    assert said == [("settled", ("stop",)), ("resumed", ("stop", "start", "start"), "stalledUP")]
    cat.close()
