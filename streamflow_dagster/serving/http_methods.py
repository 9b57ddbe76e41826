"""HEAD on every GET route, and `Allow` on every 405, as HTTP says (uptime probes use HEAD).

FastAPI routes answer only the methods they declare; Starlette's 405 names them in `Allow`.
HEAD is served as the GET it mirrors, without the body.
"""

from __future__ import annotations


class HeadAsGet:
    """ASGI middleware: a HEAD request runs as GET; the headers go out, the body does not."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


def allow_header(allowed: str) -> str:
    """Starlette's `Allow` of a 405, with HEAD wherever GET is allowed."""
    methods = [m.strip() for m in allowed.split(",") if m.strip()]
    if "GET" in methods and "HEAD" not in methods:
        methods.append("HEAD")
    return ", ".join(methods)
