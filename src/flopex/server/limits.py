"""An ASGI middleware that answers 413 for bodies over the limit (blobs have their own)."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flopex.errors import TooLarge


class BodyLimit:
    """Reject requests whose declared or streamed body exceeds the route's limit."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_blob_bytes: int) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.max_blob = max_blob_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_blob if scope["path"].startswith("/v1/blobs/") else self.max_body
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _too_large(send, limit)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge
            return msg

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await _too_large(send, limit)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Send, limit: int) -> None:
    err = TooLarge(f"request body exceeds the limit of {limit} bytes")
    body: dict[str, Any] = err.to_body()
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
