"""What every ACME answer carries, errors included and whoever made it (a route, an error
handler, the size and media-type checks of the edge): a fresh `Replay-Nonce` (RFC 8555
section 6.5), the directory as `Link: rel="index"` (section 7.1), and `Cache-Control:
no-store`. Pure ASGI, outermost, so nothing answers an ACME path without them."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from certificate_api.acme.shapes import PREFIX


class AcmeEdge:
    """Adds the ACME headers to answers of paths under /acme/."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        runtime = scope["app"].state.runtime
        index = f'<{runtime.settings.public_base_url}{PREFIX}/directory>;rel="index"'

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.append((b"replay-nonce", runtime.nonces.make().encode()))
                headers.append((b"link", index.encode()))
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
