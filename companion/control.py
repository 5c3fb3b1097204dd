"""The control socket: how the hook, the CLI and the TUI talk to the running service.

A Unix stream socket at `home.socket` (mode 0600; the home is 0700). One JSON object per
line. Request `{"op": NAME, ...}`; response `{"ok": true, ...}` or `{"ok": false, "error": MESSAGE}`.

Ops:
  ping                      -> {"pid", "version", "started_at"}
  status                    -> the `seedward status --json` object ({"service", "torrents"})
  hook   {"event": "added"|"finished", "hash", "hash_v2", "name", "save_path", "content_path"}
                            -> {"id", "job": job id or null (already queued)}
  events {"since": id, "limit": n, "last": n, "torrent_id": id}
                            -> {"events": [...]} (oldest first, id > since; `last`: the newest n)
  jobs                      -> {"jobs": [queued and running jobs]}
  subscribe                 -> {"ok": true}, then one {"event": KIND, ...} line per service event
                               until either side closes
  action {"action": "verify"|"snapshot"|"heal"|"drill"|"stop"|"start", "id": ID}
                            -> {"job": queued job id or null, "id": full torrent id}
No TCP port: the socket's file mode is the access control.
"""

import json
import logging
import os
import queue
import socket
import socketserver
import threading
from pathlib import Path

from .errors import Error, Locked, ServiceNotRunning

log = logging.getLogger(__name__)

MAX_LINE = 1 << 20


class ControlError(Error):
    """seedward service: {}"""


def _connect(path: Path, timeout: float | None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as exc:
        sock.close()
        raise ServiceNotRunning(f"no service listening on {path}") from exc
    except OSError:
        sock.close()
        raise
    return sock


def request(home, op: str, *, timeout: float = 30.0, **fields) -> dict:
    """Send one request to the running service; returns its response (without "ok").

    Raises ServiceNotRunning when nothing listens, ControlError when the service says no."""
    path = Path(getattr(home, "socket", home))
    try:
        with _connect(path, timeout) as sock:
            sock.sendall((json.dumps({"op": op, **fields}, default=str) + "\n").encode())
            reader = sock.makefile("rb")
            line = reader.readline(MAX_LINE)
    except socket.timeout as exc:
        raise ControlError(f"no answer to {op!r} within {timeout:.0f}s") from exc
    except (ConnectionResetError, BrokenPipeError) as exc:
        raise ServiceNotRunning(f"the service on {path} closed the connection") from exc
    if not line:
        raise ServiceNotRunning(f"the service on {path} closed the connection")
    response = json.loads(line)
    if not response.pop("ok", False):
        raise ControlError(response.get("error", "unknown error"))
    return response


def subscribe(home, timeout: float | None = None):
    """Yield service events ({"event": KIND, ...}) as they happen. Close the generator to stop."""
    path = Path(getattr(home, "socket", home))
    sock = _connect(path, timeout)
    try:
        sock.sendall(b'{"op": "subscribe"}\n')
        reader = sock.makefile("rb")
        first = reader.readline(MAX_LINE)
        if not first or not json.loads(first).get("ok"):
            raise ControlError("subscribe refused")
        while True:
            line = reader.readline(MAX_LINE)
            if not line:
                return
            yield json.loads(line)
    finally:
        sock.close()


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: ControlServer = self.server.control  # type: ignore[attr-defined]
        while not server.stopping.is_set():
            line = self.rfile.readline(MAX_LINE)
            if not line:
                return
            try:
                message = json.loads(line)
                if not isinstance(message, dict) or not isinstance(message.get("op"), str):
                    raise ControlError("a request is one JSON object with a string \"op\"")
            except (ValueError, ControlError) as exc:
                self._send({"ok": False, "error": f"bad request: {exc}"})
                continue
            if message["op"] == "subscribe":
                self._stream(server)
                return
            self._send(server.answer(message))

    def _send(self, obj: dict) -> None:
        self.wfile.write((json.dumps(obj, default=str) + "\n").encode())
        self.wfile.flush()

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
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            server.unsubscribe(events)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True


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
        try:
            return {"ok": True, **(self.dispatch(message) or {})}
        except Error as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # a broken op must not take the service down
            log.exception("control op %r failed", message.get("op"))
            return {"ok": False, "error": f"internal error in {message.get('op')!r}: {type(exc).__name__}"}

    def start(self) -> None:
        if self.path.exists() or self.path.is_symlink():
            try:
                _connect(self.path, 2.0).close()
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
