"""A tiny ASGI layer beside the broker: health, readiness, metrics and a service's own routes, each behind a guard.

FastStream's ``AsgiFastStream`` runs the broker in the ASGI lifespan; its router matches exact paths only, so
routes with parameters (``/reports/{report_id}``) are dispatched here first. A route names its guard
(``shared.auth``): the guard turns the request's credentials into the ``Principal`` the handler sees, or refuses
with the status and body a client can act on. Only routes declared ``guard=None`` are open (``/healthz``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson
from faststream.asgi import AsgiFastStream

_AS_JSON_DUMPS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
"""orjson (a tenth of ``json.dumps``' time on an answer) writing what ``json.dumps(default=str)`` wrote before."""

if TYPE_CHECKING:
    from shared.auth import Principal

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

MAX_BODY_BYTES = 1024 * 1024
"""Larger request bodies are answered 413 before they are read whole (a route may set its own limit)."""


@dataclass(frozen=True)
class Request:
    path: str
    params: dict[str, str]
    query: dict[str, str]
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case; a repeated header keeps its last
    body: bytes = b""
    client: str = ""  # the peer's address, for the audit trail ("from where")
    principal: Principal | None = None  # set by the route's guard

    def form(self) -> dict[str, str]:
        """An ``application/x-www-form-urlencoded`` body (OAuth2 token requests) as a dict."""
        return {k: v[-1] for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()}


@dataclass
class Response:
    body: bytes
    status: int = 200
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: object, status: int = 200, content_type: str = "application/json") -> Response:
        return cls(orjson.dumps(payload, default=str, option=_AS_JSON_DUMPS), status, content_type)

    async def send(self, send: Send) -> None:
        headers = [(b"content-type", self.content_type.encode()), (b"content-length", str(len(self.body)).encode())]
        headers += [(k.encode(), v.encode()) for k, v in self.headers.items()]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


class Refused(Exception):
    """A request a guard turned away: 401 (no or bad credentials) or 403 (credentials that do not allow this).
    ``error`` is the RFC 6750 code (``invalid_request``, ``invalid_token``, ``insufficient_scope``); ``description`` a
    sentence the caller can act on, never a token or a value it carried."""

    def __init__(self, status: int, error: str, description: str, principal: Principal | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.principal = principal  # who was refused, when the credentials were good (a 403): the audit names them


Handler = Callable[[Request], Awaitable[Response]]
Guard = Callable[[Request], Awaitable["Principal"]]
"""Returns who is asking, or raises ``Refused``."""


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    methods: frozenset[str]
    handler: Handler
    guard: Guard | None
    max_body: int = MAX_BODY_BYTES


def _compile(pattern: str) -> re.Pattern[str]:
    """``/reports/{report_id}`` as a regex; the rest of the pattern is literal (FHIR's ``$operations`` included)."""
    parts = re.split(r"\{(\w+)\}", pattern)  # literal, name, literal, name, ...
    regex = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts))
    return re.compile(f"^{regex}$")


class HttpApp:
    """ASGI app: routes by pattern and method, each behind its guard; lifespan (broker start/stop) delegated to
    FastStream. ``refused`` answers a ``Refused`` (the service audits it there); unset, a refusal is plain JSON."""

    def __init__(self, lifespan_app: AsgiFastStream) -> None:
        self._lifespan_app = lifespan_app
        self._routes: list[Route] = []
        self.refused: Callable[[Request, Refused], Awaitable[Response]] | None = None

    def route(
        self,
        methods: Iterable[str],
        pattern: str,
        handler: Handler,
        *,
        guard: Guard | None,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self._routes.append(Route(_compile(pattern), frozenset(methods), handler, guard, max_body))

    def get(self, pattern: str, handler: Handler, *, guard: Guard | None) -> None:
        self.route(("GET", "HEAD"), pattern, handler, guard=guard)

    def post(self, pattern: str, handler: Handler, *, guard: Guard | None, max_body: int = MAX_BODY_BYTES) -> None:
        self.route(("POST",), pattern, handler, guard=guard, max_body=max_body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._lifespan_app(scope, receive, send)
            return
        path = scope["path"]
        matching = [(route, match) for route in self._routes if (match := route.pattern.match(path))]
        if not matching:
            await Response(b"not found", 404).send(send)
            return
        method = scope["method"]
        chosen = next(((route, match) for route, match in matching if method in route.methods), None)
        if chosen is None:
            allowed = ", ".join(sorted({m for route, _ in matching for m in route.methods}))
            await Response(b"method not allowed", 405, headers={"allow": allowed}).send(send)
            return
        route, match = chosen
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if int(headers.get("content-length") or 0) > route.max_body:
            await Response(b"request body too large", 413).send(send)
            return
        body = await _body(receive, route.max_body) if method == "POST" else b""
        if body is None:
            await Response(b"request body too large", 413).send(send)
            return
        query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
        client = (scope.get("client") or ("", 0))[0]
        request = Request(path, match.groupdict(), query, method, headers, body, client)
        await (await self._dispatch(route, request)).send(send)

    async def _dispatch(self, route: Route, request: Request) -> Response:
        """The guard, then the handler; a ``Refused`` from either (a handler refuses what the token's owner may not
        see) is answered by ``refused``."""
        try:
            if route.guard is not None:
                request = replace(request, principal=await route.guard(request))
            return await route.handler(request)
        except Refused as refusal:
            if self.refused is None:
                body = {"error": refusal.error, "error_description": refusal.description}
                return Response.json(body, refusal.status)
            return await self.refused(request, refusal)


async def _body(receive: Receive, limit: int) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
