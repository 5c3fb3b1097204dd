"""`seedward tui --web`: the same Textual app in a browser, served by textual-serve on loopback.

Each browser tab runs its own `seedward tui` process (textual-serve's model) that talks to the
service like the terminal one. The control socket is owner-only; a TCP port is not, so the page
and its websocket need a token made at start (printed once, on stderr): the first visit with
`?token=...` sets an HttpOnly, SameSite=Strict cookie, and every other request must carry it.
"""

import hmac
import secrets

from aiohttp import web
from textual_serve.server import Server

COOKIE = "seedward_tui"
HOST = "127.0.0.1"


class TokenServer(Server):
    def __init__(self, command: str, token: str, out=None, **kwargs):
        super().__init__(command, **kwargs)
        self.token, self.out = token, out

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()  # (textual-serve builds its app in a coroutine)
        app.middlewares.append(self._guard)
        app.on_startup.append(self._announce)
        return app

    async def _announce(self, _app) -> None:
        """The address, once the port is about to take connections (aiohttp's startup)."""
        if self.out is not None:
            print(f"seedward: the dashboard is at http://{self.host}:{self.port}/?token={self.token} "
                  "(this machine only; Ctrl-C stops it)", file=self.out, flush=True)

    @web.middleware
    async def _guard(self, request: web.Request, handler):
        if request.path.startswith("/static/"):
            return await handler(request)  # textual-serve's own scripts and fonts: nothing of the user's
        given = request.query.get("token", "")
        if given and hmac.compare_digest(given, self.token):
            if request.path == "/":
                response = await handler(request)
                response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict", path="/")
                return response
        elif not hmac.compare_digest(request.cookies.get(COOKIE, ""), self.token):
            raise web.HTTPForbidden(text="seedward: open the address `seedward tui --web` printed (it has the token)")
        return await handler(request)


def serve(command: str, port: int, out, token: str | None = None) -> None:
    """Serve until interrupted; tells `out` the address to open."""
    token = token or secrets.token_urlsafe(24)
    TokenServer(command, token, out, host=HOST, port=port, title="seedward").serve()
