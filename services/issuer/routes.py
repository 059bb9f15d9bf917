"""The issuer's HTTP entrypoint: its JWKS, SMART discovery, and the token endpoint. A token decision is answered only
after its audit event was acknowledged: no token is granted that the audit trail does not know of."""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable
from urllib.parse import unquote_plus

from services.issuer.clients import HOSPITAL_SCOPES
from services.issuer.grants import ASSERTION_ALGORITHMS, GrantRefused, TokenService
from services.issuer.keys import ALGORITHM
from shared.access import token_event
from shared.auth import SCOPE_OPS
from shared.http import Request, Response
from shared.schemas.audit import AccessEvent

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
AUTH_METHODS = ["private_key_jwt", "client_secret_basic", "client_secret_post"]


class IssuerRoutes:
    def __init__(self, tokens: TokenService, audit: Callable[[AccessEvent], Awaitable[None]]) -> None:
        self.tokens = tokens
        self.audit = audit

    async def keys(self, _: Request) -> Response:
        response = Response.json({"keys": [self.tokens.key.public_jwk]})
        response.headers["cache-control"] = "max-age=300"
        return response

    async def smart_configuration(self, _: Request) -> Response:
        issuer = self.tokens.issuer
        return Response.json(
            {
                "issuer": issuer,
                "jwks_uri": f"{issuer}/.well-known/jwks.json",
                "token_endpoint": self.tokens.token_endpoint,
                "grant_types_supported": ["client_credentials"],
                "token_endpoint_auth_methods_supported": AUTH_METHODS,
                "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
                "scopes_supported": [*HOSPITAL_SCOPES, SCOPE_OPS],
                "capabilities": ["client-confidential-asymmetric"],
                "access_token_signing_alg": ALGORITHM,
            }
        )

    async def token(self, request: Request) -> Response:
        form = request.form()
        try:
            grant = await asyncio.to_thread(self.tokens.grant, form, basic_credentials(request))
        except GrantRefused as refused:
            client = refused.client_id or form.get("client_id") or "unknown"
            event = token_event(
                "issuer",
                request,
                client,
                None,
                (form.get("scope") or "").split(),
                token_id=None,
                outcome="4",
                description=f"{refused.error}: {refused.description}",
            )
            if not await self._audited(event):
                return _answer({"error": "temporarily_unavailable", "error_description": "try again"}, 503)
            response = _answer({"error": refused.error, "error_description": refused.description}, refused.status)
            if refused.status == 401:
                response.headers["www-authenticate"] = 'Basic realm="aimass"'
            return response
        client = grant.client
        event = token_event("issuer", request, client.client_id, client.hospital, grant.scopes, token_id=grant.token_id)
        if not await self._audited(event):  # the token is never handed out
            return _answer({"error": "temporarily_unavailable", "error_description": "try again"}, 503)
        return _answer(grant.response(), 200)

    async def _audited(self, event: AccessEvent) -> bool:
        try:
            await self.audit(event)
        except Exception:
            return False
        return True


def _answer(body: dict[str, object], status: int) -> Response:
    response = Response.json(body, status)
    response.headers.update(NO_STORE)
    return response


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """``Authorization: Basic`` as RFC 6749 2.3.1 has it (form-encoded id and secret, then base64)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, _, secret = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return unquote_plus(client_id), unquote_plus(secret)
