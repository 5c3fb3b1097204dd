"""Lock order, checked in every test (a small lockdep).

Each lock that seedward (or watchdog, which calls back into it) creates notes which locks its
thread already held when it was taken. Two locks ever taken in opposite orders, by any threads in
any tests, can deadlock: that is how a `status` and a `detail` request once hung the service for
good. Locks are told apart by where they were created (file:line), so two instances of one class
count as one lock, and nesting those is not judged.

`install()` must run before seedward's modules are imported (module-level locks are made then).
"""

import atexit
import json
import os
import sys
import threading
import traceback

_Lock, _RLock = threading.Lock, threading.RLock
WATCHED = tuple(os.sep + p + os.sep for p in ("companion", "tui", "watchdog"))
OUR_FILES = tuple(os.sep + p + os.sep for p in ("companion", "tui"))


class Recorder:
    def __init__(self):
        self.edges: dict[tuple[str, str], str] = {}  # (held, taken) -> where it first happened
        self.reported: set[frozenset] = set()
        self._mutex = _Lock()
        self._local = threading.local()

    def held(self) -> list:
        held = getattr(self._local, "held", None)
        if held is None:
            held = self._local.held = []
        return held

    def taking(self, lock) -> None:
        held = self.held()
        if any(h is lock for h in held):
            return  # re-entered (an RLock)
        for other in held:
            if other.site != lock.site and (other.site, lock.site) not in self.edges:
                where = "".join(traceback.format_list([f for f in traceback.extract_stack()[:-3]
                                                       if any(p in f.filename for p in OUR_FILES)][-6:]))
                with self._mutex:
                    self.edges.setdefault((other.site, lock.site), where)

    def cycles(self) -> list[list[str]]:
        """Cycles of the lock-order graph not reported before, each as its sites in order."""
        with self._mutex:
            edges = list(self.edges)
        graph: dict[str, set[str]] = {}
        for a, b in edges:
            graph.setdefault(a, set()).add(b)
        found = []
        for start in sorted(graph):
            stack = [(start, [start])]
            while stack:
                node, path = stack.pop()
                for nxt in sorted(graph.get(node, ())):
                    if nxt == start:
                        key = frozenset(path)
                        if key not in self.reported:
                            self.reported.add(key)
                            found.append(path + [start])
                    elif nxt not in path and nxt > start:  # each cycle once, from its smallest site
                        stack.append((nxt, path + [nxt]))
        return found

    def save(self, folder: str) -> None:
        with self._mutex:
            edges = [[a, b, where] for (a, b), where in self.edges.items()]
        if edges:
            path = os.path.join(folder, f"{os.getpid()}.json")
            with open(path + ".tmp", "w") as f:
                json.dump({"argv": sys.argv[:3], "edges": edges}, f)
            os.replace(path + ".tmp", path)

    def load(self, folder: str) -> None:
        """Add the pairs other processes saved (save_at_exit)."""
        for name in sorted(os.listdir(folder)):
            if name.endswith(".json"):
                with open(os.path.join(folder, name)) as f:
                    data = json.load(f)
                with self._mutex:
                    for a, b, where in data["edges"]:
                        self.edges.setdefault((a, b), f"(in {' '.join(data['argv'])}, pid {name[:-5]})\n{where}")

    def explain(self, cycle: list[str]) -> str:
        lines = []
        for a, b in zip(cycle, cycle[1:]):
            lines.append(f"{b} taken while holding {a}, at:\n{self.edges.get((a, b), '?')}")
        return "\n".join(lines)


RECORDER = Recorder()


class _Tracked:
    __slots__ = ("_inner", "site")

    def __init__(self, inner, site: str):
        self._inner, self.site = inner, site

    def acquire(self, blocking=True, timeout=-1):
        if blocking:
            RECORDER.taking(self)
        ok = self._inner.acquire(blocking, timeout)
        if ok:
            RECORDER.held().append(self)
        return ok

    def release(self):
        held = RECORDER.held()
        for i in range(len(held) - 1, -1, -1):
            if held[i] is self:
                del held[i]
                break
        self._inner.release()

    __enter__ = acquire

    def __exit__(self, *exc):
        self.release()

    def locked(self):
        return self._inner.locked()

    def __repr__(self):
        return f"<tracked {self._inner!r} from {self.site}>"


class _TrackedRLock(_Tracked):
    __slots__ = ()

    # threading.Condition(rlock) uses these to wait with an RLock taken several times
    def _is_owned(self):
        return self._inner._is_owned()

    def _release_save(self):
        held = RECORDER.held()
        count = sum(1 for h in held if h is self)
        held[:] = [h for h in held if h is not self]
        return self._inner._release_save(), count

    def _acquire_restore(self, saved):
        state, count = saved
        RECORDER.taking(self)
        self._inner._acquire_restore(state)
        RECORDER.held().extend([self] * count)


def _factory(real, tracked):
    def make(*args, **kwargs):
        inner = real(*args, **kwargs)
        frame = sys._getframe(1)
        name = frame.f_code.co_filename
        if not any(p in name for p in WATCHED):
            return inner
        cut = max(name.rfind(p) for p in WATCHED)
        return tracked(inner, f"{name[cut + 1:]}:{frame.f_lineno}")
    return make


def install() -> None:
    threading.Lock = _factory(_Lock, _Tracked)
    threading.RLock = _factory(_RLock, _TrackedRLock)


def save_at_exit(folder: str) -> None:
    atexit.register(RECORDER.save, folder)
