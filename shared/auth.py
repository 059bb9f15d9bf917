"""Who is asking: OAuth2 bearer access tokens in the SMART Backend Services shape, verified against the issuer's JWKS.

A token is a JWT signed by the configured issuer (``AIMASS_AUTH_ISSUER``; its keys at ``AIMASS_AUTH_JWKS_URL``),
for the audience ``AIMASS_AUTH_AUDIENCE``, carrying ``sub`` (the client), ``scope`` (SMART v1 scopes such as
``system/DiagnosticReport.read``; ``ops/metrics.read`` for operators) and ``hospital`` (the hospital the
client acts for; absent for operators). Verification is PyJWT's; the keys are fetched from the JWKS and cached
(``PyJWKClient``), re-fetched when a token names a key not seen yet (the issuer rotated).
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import jwt

from shared.http import Refused, Request, Response
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.links import LinkSigner

SCOPE_REPORTS = "system/DiagnosticReport.read"
SCOPE_PATIENTS = "system/Patient.read"
SCOPE_SUBMIT = "system/Bundle.write"  # FHIR REST intake: a hospital's documents, as its own
SCOPE_PREDICT = "system/RiskAssessment.read"  # synchronous predictions and CDS Hooks cards
SCOPE_SUBSCRIBE = "system/Subscription.write"  # rest-hook subscriptions to a hospital's results
SCOPE_OPS = "ops/metrics.read"
HOSPITAL_CLAIM = "hospital"
ALGORITHMS = ("ES256", "RS256", "PS256")
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub", "jti")


@dataclass(frozen=True)
class Principal:
    """The client a request acts for. ``resource`` is set for a signed link: the one path it opens."""

    client_id: str
    hospital: str | None
    scopes: frozenset[str]
    token_id: str = ""
    via: str = "bearer"  # or "link"
    resource: str | None = None

    def allows(self, scope: str) -> bool:
        return scope_allows(self.scopes, scope)


def scope_allows(granted: Iterable[str], wanted: str) -> bool:
    """SMART v1 scope grammar ``<context>/<resource>.<permission>``, ``*`` standing for any resource or permission:
    ``system/*.read`` allows ``system/DiagnosticReport.read``; ``patient/...`` never allows ``system/...``."""
    context, _, rest = wanted.partition("/")
    resource, _, permission = rest.rpartition(".")
    for scope in granted:
        scope_context, _, scope_rest = scope.partition("/")
        scope_resource, _, scope_permission = scope_rest.rpartition(".")
        if (
            scope_context == context
            and scope_resource in (resource, "*")
            and scope_permission in (permission, "*")
            and scope_resource
        ):
            return True
    return False


class SigningKeys(Protocol):
    def key_for(self, token: str) -> Any:
        """The issuer's public key that signed ``token`` (blocking: may fetch the JWKS)."""
        ...


class JwksKeys:
    """The issuer's keys from its JWKS URL, cached for five minutes and on every new ``kid``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=5)

    def key_for(self, token: str) -> Any:
        return self._client.get_signing_key_from_jwt(token).key


VERIFIED_TTL_SECONDS = 300
"""How long a verified token is taken on its verification: as long as the JWKS keys are cached (``JwksKeys``), so a
key the issuer withdrew stops working no later than it would without this cache; never past the token's ``exp``."""
VERIFIED_MAX_TOKENS = 4096


class TokenVerifier:
    """Verifies bearer tokens; a token verified once is taken again until its ``exp`` (at most
    ``VERIFIED_TTL_SECONDS``) without a second signature check: a client calls with the same token for its lifetime,
    and a synchronous prediction checks it at four services in a row. Only valid tokens are kept (by their SHA-256);
    a refused one is checked again each time."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        keys: SigningKeys,
        leeway_seconds: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.keys = keys
        self.leeway = leeway_seconds
        self.clock = clock
        self._verified: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        return cls.from_settings_values(
            settings.auth_issuer, settings.auth_audience, settings.auth_jwks_url, settings.auth_leeway_seconds
        )

    @classmethod
    def from_settings_values(
        cls, issuer: str, audience: str, jwks_url: str | None = None, leeway_seconds: int = 30
    ) -> TokenVerifier:
        jwks = jwks_url or f"{issuer.rstrip('/')}/.well-known/jwks.json"
        return cls(issuer, audience, JwksKeys(jwks), leeway_seconds)

    async def principal(self, token: str) -> Principal:
        """The token's principal, or ``Refused`` (401) saying what is wrong with it; 503 when the issuer's keys
        cannot be fetched (then no token can be checked, and none is accepted)."""
        digest = hashlib.sha256(token.encode()).digest()
        now = self.clock()
        known = self._verified.get(digest)
        if known is not None and now < known[0]:
            self._verified.move_to_end(digest)
            return known[1]
        if known is not None:
            del self._verified[digest]
        principal, expires = await self._verify(token)
        self._verified[digest] = (min(expires, now + VERIFIED_TTL_SECONDS), principal)
        while len(self._verified) > VERIFIED_MAX_TOKENS:
            self._verified.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            key = await asyncio.to_thread(self.keys.key_for, token)
        except jwt.PyJWKClientConnectionError:
            raise Refused(503, "temporarily_unavailable", "the token issuer's keys cannot be fetched now") from None
        except (jwt.PyJWKClientError, jwt.DecodeError):
            raise Refused(401, "invalid_token", f"the token is not signed by a key of {self.issuer}") from None
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=list(ALGORITHMS),
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError:
            raise Refused(401, "invalid_token", f"the token has expired; ask {self.issuer} for a new one") from None
        except jwt.InvalidTokenError as invalid:
            # PyJWT's messages name the claim or check that failed ("Invalid audience"), never a value.
            raise Refused(401, "invalid_token", f"the token is not valid here: {invalid}") from None
        hospital = claims.get(HOSPITAL_CLAIM)
        principal = Principal(
            client_id=str(claims["sub"]),
            hospital=str(hospital) if hospital else None,
            scopes=frozenset(str(claims.get("scope", "")).split()),
            token_id=str(claims["jti"]),
        )
        return principal, float(claims["exp"])


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class Gate:
    """The guards of a service's routes (``shared.http.Guard``). With ``links``, ``scoped_or_link`` also admits a
    signed link (``shared.links``) for the path it was made for."""

    def __init__(
        self, verifier: TokenVerifier, links: LinkSigner | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.verifier = verifier
        self.links = links
        self.clock = clock

    async def authenticated(self, request: Request) -> Principal:
        token = bearer_token(request)
        if token is None:
            if request.headers.get("authorization"):
                raise Refused(401, "invalid_request", "the Authorization header must be 'Bearer <access token>'")
            raise Refused(401, "missing_token", f"send an access token from {self.verifier.issuer}")
        return await self.verifier.principal(token)

    def scoped(self, scope: str) -> Any:
        """A guard admitting a token that grants ``scope`` (403 for a valid token that does not)."""

        async def guard(request: Request) -> Principal:
            principal = await self.authenticated(request)
            if not principal.allows(scope):
                raise Refused(403, "insufficient_scope", f"this needs a token with the scope {scope}", principal)
            return principal

        return guard

    def scoped_or_link(self, scope: str) -> Any:
        """``scoped(scope)``, or a signed link when the request carries one (a browser with no token in hand)."""
        scoped = self.scoped(scope)

        async def guard(request: Request) -> Principal:
            if self.links is not None and "sig" in request.query and bearer_token(request) is None:
                return self.links.verify(request, self.clock())
            return await scoped(request)

        return guard

    async def optional(self, request: Request) -> Principal:
        """The principal when a valid token was sent, else an anonymous one (for ``/readyz``: probes send none)."""
        if bearer_token(request) is None:
            return ANONYMOUS
        try:
            return await self.authenticated(request)
        except Refused:
            return ANONYMOUS


ANONYMOUS = Principal(client_id="anonymous", hospital=None, scopes=frozenset(), via="none")


ISSUE_TYPE = {401: "login", 403: "forbidden", 503: "transient"}


def wants_fhir(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return request.query.get("format") == "fhir" or "fhir+json" in accept or request.path.startswith("/fhir")


def refusal_response(request: Request, refused: Refused) -> Response:
    """RFC 6750's ``WWW-Authenticate`` and a body for whoever asked: a FHIR ``OperationOutcome`` on FHIR requests,
    a short page for a browser, JSON otherwise."""
    headers = {}
    if refused.status == 401:
        error = "" if refused.error == "missing_token" else f', error="{refused.error}"'
        headers["www-authenticate"] = f'Bearer realm="aimass"{error}'
    elif refused.status == 403:
        headers["www-authenticate"] = f'Bearer realm="aimass", error="{refused.error}"'
    if wants_fhir(request):
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error",
                    "code": ISSUE_TYPE.get(refused.status, "security"),
                    "diagnostics": refused.description,
                }
            ],
        }
        response = Response.json(outcome, refused.status, "application/fhir+json")
    elif "text/html" in request.headers.get("accept", ""):
        page = (
            "<!DOCTYPE html><html lang=en><meta charset=utf-8><title>Not available</title>"
            "<body style='font-family:sans-serif;max-width:40em;margin:3em auto'>"
            f"<h1>{'Sign-in needed' if refused.status == 401 else 'Not allowed'}</h1>"
            f"<p>{html.escape(refused.description)}</p>"
            "<p>Open reports from the link your system gives you; links are valid for a few minutes.</p></body></html>"
        )
        response = Response(page.encode(), refused.status, "text/html; charset=utf-8")
    else:
        response = Response.json({"error": refused.error, "error_description": refused.description}, refused.status)
    response.headers.update(headers)
    return response
