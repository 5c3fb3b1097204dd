"""A loopback HTTP receiver for notification tests: what Apprise's json:// (and Prometheus-style
GETs) really send, recorded. Started by the test, on 127.0.0.1 and a free port."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """`.url(path)`, `.posts` [{path, headers, body}], `.fail_next(n)`: answer 500 to the next n."""

    def __init__(self):
        self.posts: list[dict] = []
        self.lock = threading.Lock()
        self.failing = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with receiver.lock:
                    fail = receiver.failing > 0
                    receiver.failing -= 1 if fail else 0
                    if not fail:
                        try:
                            body = json.loads(raw)
                        except ValueError:
                            body = raw.decode(errors="replace")
                        receiver.posts.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(500 if fail else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook", daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook", scheme: str = "json", auth: str = "") -> str:
        return f"{scheme}://{auth + '@' if auth else ''}127.0.0.1:{self.port}{path}"

    def fail_next(self, n: int) -> None:
        with self.lock:
            self.failing = n

    def titles(self) -> list[str]:
        with self.lock:
            return [p["body"]["title"] for p in self.posts if isinstance(p["body"], dict)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
