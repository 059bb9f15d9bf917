"""The OAuth2 client credentials grant as SMART Backend Services asks for it (pure but for the clock).

A client authenticates with a JWT assertion signed by its own key (``private_key_jwt``, RFC 7523: ``iss`` = ``sub``
= its client id, ``aud`` = the token endpoint, a short ``exp``, a ``jti`` never used before) or, for monitoring
systems that cannot sign (Prometheus), with a client secret (``client_secret_basic`` / ``client_secret_post``). It
gets the scopes it asked for that it is registered for, in an ES256 JWT access token for the platform's audience.
"""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jwt

from services.issuer.clients import Client, secret_digest
from services.issuer.keys import ALGORITHM, KeyPair
from shared.auth import HOSPITAL_CLAIM

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ("ES256", "ES384", "RS384", "RS256")
MAX_ASSERTION_SECONDS = 300  # SMART: an assertion's exp at most five minutes ahead


class Clients(Protocol):
    def get(self, client_id: str) -> Client | None: ...


class GrantRefused(Exception):
    """RFC 6749 section 5.2: ``error`` and a description the client's developer can act on."""

    def __init__(self, error: str, description: str, client_id: str = "", status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.client_id = client_id
        self.status = status


@dataclass(frozen=True)
class Grant:
    client: Client
    scopes: tuple[str, ...]
    access_token: str
    token_id: str
    expires_in: int

    def response(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "scope": " ".join(self.scopes),
        }


class TokenService:
    def __init__(
        self,
        clients: Clients,
        key: KeyPair,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clients = clients
        self.key = key
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._seen_assertions: dict[str, float] = {}  # jti -> when it expires

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    def grant(self, form: Mapping[str, str], basic: tuple[str, str] | None = None) -> Grant:
        if form.get("grant_type") != "client_credentials":
            raise GrantRefused("unsupported_grant_type", "only grant_type=client_credentials is supported")
        client = self._authenticate(form, basic)
        scopes = self._scopes(client, form.get("scope"))
        now = int(self.clock())
        token_id = str(uuid.uuid4())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": client.client_id,
            "aud": self.audience,
            "iat": now,
            "exp": now + self.ttl_seconds,
            "jti": token_id,
            "scope": " ".join(scopes),
        }
        if client.hospital:
            claims[HOSPITAL_CLAIM] = client.hospital
        token = jwt.encode(claims, self.key.private, algorithm=ALGORITHM, headers={"kid": self.key.kid})
        return Grant(client, scopes, token, token_id, self.ttl_seconds)

    def _authenticate(self, form: Mapping[str, str], basic: tuple[str, str] | None) -> Client:
        if form.get("client_assertion_type") == ASSERTION_TYPE and form.get("client_assertion"):
            return self._asserted(form["client_assertion"])
        client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
        client = self.clients.get(client_id) if client_id else None
        if client is None or client.secret_sha256 is None or not secret:
            raise GrantRefused(
                "invalid_client",
                "authenticate with a client assertion (private_key_jwt) or a registered client secret",
                client_id,
                401,
            )
        if not hmac.compare_digest(client.secret_sha256, secret_digest(secret)):
            raise GrantRefused("invalid_client", "the client secret does not match", client_id, 401)
        return client

    def _asserted(self, assertion: str) -> Client:
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.DecodeError:
            raise GrantRefused("invalid_client", "the client assertion is not a JWT", status=401) from None
        client_id = str(unverified.get("iss", ""))
        client = self.clients.get(client_id)
        if client is None or not client.jwks:
            raise GrantRefused("invalid_client", f"no client {client_id!r} with registered keys", client_id, 401)
        claims = self._verified(assertion, client)
        if claims["sub"] != client_id:
            raise GrantRefused("invalid_client", "the client assertion's sub must equal its iss", client_id, 401)
        now = self.clock()
        if claims["exp"] > now + MAX_ASSERTION_SECONDS:
            raise GrantRefused(
                "invalid_client", "the client assertion may be valid for five minutes at most", client_id, 401
            )
        self._seen_assertions = {jti: exp for jti, exp in self._seen_assertions.items() if exp >= now}
        if claims["jti"] in self._seen_assertions:
            raise GrantRefused("invalid_client", "this client assertion was used before (its jti)", client_id, 401)
        self._seen_assertions[claims["jti"]] = float(claims["exp"])
        return client

    def _verified(self, assertion: str, client: Client) -> dict[str, Any]:
        kid = jwt.get_unverified_header(assertion).get("kid")
        keys = [k for k in client.jwks if kid is None or k.get("kid") == kid]
        for jwk in keys:
            try:
                return jwt.decode(
                    assertion,
                    jwt.PyJWK.from_dict(jwk).key,
                    algorithms=list(ASSERTION_ALGORITHMS),
                    audience=self.token_endpoint,
                    leeway=30,
                    options={"require": ["iss", "sub", "aud", "exp", "jti"]},
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.InvalidTokenError as invalid:
                raise GrantRefused(
                    "invalid_client", f"the client assertion is not valid: {invalid}", client.client_id, 401
                ) from None
        raise GrantRefused(
            "invalid_client", "the client assertion is not signed by a registered key", client.client_id, 401
        )

    @staticmethod
    def _scopes(client: Client, requested: str | None) -> tuple[str, ...]:
        if not requested:
            return client.scopes
        asked = tuple(dict.fromkeys(requested.split()))
        refused = [scope for scope in asked if scope not in client.scopes]
        if refused:
            raise GrantRefused(
                "invalid_scope",
                f"{client.client_id} is not registered for {' '.join(refused)}; "
                f"it may ask for {' '.join(client.scopes)}",
                client.client_id,
            )
        return asked


def client_assertion(client_id: str, key: KeyPair, token_endpoint: str, now: float) -> str:
    """What a client sends to authenticate (``aimass token``, tests, a hospital's integration)."""
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_endpoint,
        "exp": int(now) + 240,
        "iat": int(now),
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid})
