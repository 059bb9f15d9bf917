"""A tiny ASGI layer beside the broker: health, readiness, metrics and a service's own GET routes.

FastStream's ``AsgiFastStream`` runs the broker in the ASGI lifespan; its router matches exact paths only, so
routes with parameters (``/reports/{report_id}``) are dispatched here first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from faststream.asgi import AsgiFastStream

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Request:
    path: str
    params: dict[str, str]
    query: dict[str, str]


@dataclass
class Response:
    body: bytes
    status: int = 200
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: object, status: int = 200) -> Response:
        return cls(json.dumps(payload, default=str).encode(), status, "application/json")

    async def send(self, send: Send) -> None:
        headers = [(b"content-type", self.content_type.encode()), (b"content-length", str(len(self.body)).encode())]
        headers += [(k.encode(), v.encode()) for k, v in self.headers.items()]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


Handler = Callable[[Request], Awaitable[Response]]


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")


class HttpApp:
    """ASGI app: GET routes by pattern; lifespan (broker start/stop) delegated to FastStream."""

    def __init__(self, lifespan_app: AsgiFastStream) -> None:
        self._lifespan_app = lifespan_app
        self._routes: list[tuple[re.Pattern[str], Handler]] = []

    def get(self, pattern: str, handler: Handler) -> None:
        self._routes.append((_compile(pattern), handler))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._lifespan_app(scope, receive, send)
            return
        path = scope["path"]
        for pattern, handler in self._routes:
            match = pattern.match(path)
            if match is None:
                continue
            if scope["method"] not in ("GET", "HEAD"):
                await Response(b"method not allowed", 405).send(send)
                return
            query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
            await (await handler(Request(path, match.groupdict(), query))).send(send)
            return
        await Response(b"not found", 404).send(send)
