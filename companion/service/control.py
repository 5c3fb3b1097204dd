"""The control socket's server side; the protocol and its client are `companion/control.py`.

One thread per connection (socketserver) behind a backlog sized for bursts of clients. A request
is read with a ceiling (over MAX_REQUEST the connection is closed and nothing of it runs), then
parsed with a nesting limit and without NaN/Infinity, then handed to `dispatch(message)`, which
checks the op's fields (`ops.py`). Replies go out in pieces: a big list is written a slice at a
time, so the status of 100,000 torrents never sits in memory as one string.
"""

import json
import logging
import os
import queue
import socketserver
import threading
from pathlib import Path

from ..control import MAX_DEPTH, MAX_REQUEST, ControlError, ServiceNotRunning, connect, encode
from ..errors import Ambiguous, BadInput, Error, Locked, NotFound

log = logging.getLogger(__name__)

# Errors that say the request itself is wrong; any other failure is answered as `internal`.
REFUSALS = (ControlError, BadInput, NotFound, Ambiguous)
BACKLOG = 128  # connections waiting to be accepted (socketserver's default of 5 refused bursts)
STREAM_ITEMS = 2000  # list items serialized per write of a big reply


class BadRequest(Exception):
    pass


def _no_constants(name: str):
    raise ValueError(f"{name} is not allowed")


def parse_request(line: bytes) -> dict:
    """A request line -> the message; raises BadRequest saying what is wrong."""
    try:
        message = json.loads(line, parse_constant=_no_constants)
    except RecursionError:
        raise BadRequest(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # UnicodeDecodeError included
        raise BadRequest(f"not JSON ({exc})") from None
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise BadRequest('a request is one JSON object with a string "op"')
    if depth(message) > MAX_DEPTH:
        raise BadRequest(f"nested deeper than {MAX_DEPTH} levels")
    return message


def depth(obj) -> int:
    """Levels of nesting of lists and objects (a flat object is 1); stops counting past MAX_DEPTH."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                break
            stack.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def write_reply(wfile, reply: dict) -> None:
    """One reply line; its big top-level lists are written STREAM_ITEMS items at a time."""
    big = {k for k, v in reply.items() if isinstance(v, list) and len(v) > STREAM_ITEMS}
    if not big:
        wfile.write(encode(reply))
        return
    wfile.write(b"{")
    for i, (key, value) in enumerate(reply.items()):
        wfile.write((", " if i else "").encode() + json.dumps(key).encode() + b": ")
        if key not in big:
            wfile.write(json.dumps(value, default=str).encode())
            continue
        wfile.write(b"[")
        for start in range(0, len(value), STREAM_ITEMS):
            items = json.dumps(value[start:start + STREAM_ITEMS], default=str)[1:-1]
            wfile.write(((", " if start else "") + items).encode())
        wfile.write(b"]")
    wfile.write(b"}\n")


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: ControlServer = self.server.control  # type: ignore[attr-defined]
        try:
            self._serve(server)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away

    def _serve(self, server: "ControlServer") -> None:
        while not server.stopping.is_set():
            line = self.rfile.readline(MAX_REQUEST + 1)
            if not line:
                return
            if len(line) > MAX_REQUEST and not line.endswith(b"\n"):
                self._send({"ok": False, "error": f"bad request: longer than {MAX_REQUEST} bytes; the connection"
                                                  " is closed and nothing of it ran"})
                return
            try:
                message = parse_request(line)
            except BadRequest as exc:
                self._send({"ok": False, "error": f"bad request: {exc}"})
                continue
            if message["op"] == "subscribe" and len(message) == 1:
                self._stream(server)
                return
            write_reply(self.wfile, server.answer(message))

    def _send(self, obj: dict) -> None:
        self.wfile.write(encode(obj))

    def _stream(self, server: "ControlServer") -> None:
        events = server.subscribe()
        try:
            self._send({"ok": True})
            while not server.stopping.is_set():
                try:
                    event = events.get(timeout=0.5)
                except queue.Empty:
                    continue
                if event is None:  # dropped: the subscriber fell too far behind
                    return
                self._send(event)
        finally:
            server.unsubscribe(events)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = BACKLOG


class ControlServer:
    """Serves the control socket on a thread. dispatch(message) -> dict (or raises Error)."""

    def __init__(self, path: Path, dispatch, subscribe, unsubscribe):
        self.path = Path(path)
        self.dispatch = dispatch
        self.subscribe = subscribe
        self.unsubscribe = unsubscribe
        self.stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def answer(self, message: dict) -> dict:
        """The reply: ok, a refusal (the request is wrong), or `internal` (the service could not do it)."""
        try:
            return {"ok": True, **(self.dispatch(message) or {})}
        except REFUSALS as exc:
            return {"ok": False, "error": str(exc)}
        except Error as exc:  # the catalog, the store or qBittorrent failed: the request may be fine
            return {"ok": False, "internal": True, "error": str(exc)}
        except Exception as exc:  # a broken op must not take the service down
            log.exception("control op %r failed", message.get("op"))
            return {"ok": False, "internal": True,
                    "error": f"internal error in {message.get('op')!r}: {type(exc).__name__}"}

    def start(self) -> None:
        if self.path.exists() or self.path.is_symlink():
            try:
                connect(self.path, 2.0).close()
            except ServiceNotRunning:
                self.path.unlink()  # left by a service that died
            else:
                raise Locked(self.path, "another running seedward service")
        self._server = _Server(str(self.path), _Handler)
        os.chmod(self.path, 0o600)
        self._server.control = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
