"""The local stack's OAuth2 issuer (``aimass run issuer``, port ``AIMASS_ISSUER_PORT``): what a hospital's identity
provider is to a deployment (docs/security.md says how to plug in a real one).

- ``GET /.well-known/jwks.json``: the public key the services verify access tokens with;
- ``GET /.well-known/smart-configuration``: SMART discovery (token endpoint, auth methods, scopes);
- ``POST /token``: the client credentials grant (``services.issuer.grants``); every decision, granted or refused, is
  an access audit event on ``audit``, acknowledged before the answer goes out.

Its signing key is ``var/issuer/signing-key.pem`` and its clients ``var/issuer/clients.json``, both made at the first
start: a backend client per hospital of ``deploy/hospitals`` (``<hospital>-backend``, key pair in
``var/issuer/clients/<hospital>.pem``) and ``ops-monitoring`` (secret in ``var/issuer/clients/ops-monitoring.secret``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii

from services.issuer.clients import issuer_folder, register_local_clients
from services.issuer.grants import ASSERTION_ALGORITHMS, GrantRefused, TokenService
from services.issuer.keys import ALGORITHM, load_or_create
from shared.access import token_event
from shared.auth import SCOPE_OPS, SCOPE_PATIENTS, SCOPE_REPORTS
from shared.http import Request, Response
from shared.service import Service
from shared.settings import Settings

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
AUTH_METHODS = ["private_key_jwt", "client_secret_basic", "client_secret_post"]


def create_service(settings: Settings | None = None) -> Service:
    service = Service("issuer", settings)
    settings = service.settings
    del service.checks["redis"]  # the issuer keeps no state in Redis
    folder = issuer_folder(settings)
    key = load_or_create(folder / "signing-key.pem")
    hospitals = [path.stem for path in sorted(settings.hospitals_dir.glob("*.yaml"))]
    clients = register_local_clients(folder, hospitals)
    tokens = TokenService(clients, key, settings.auth_issuer, settings.auth_audience, settings.issuer_token_ttl_seconds)
    service.details["clients"] = lambda: sorted(c.client_id for c in clients.all())
    jwks = {"keys": [key.public_jwk]}

    async def keys(_: Request) -> Response:
        response = Response.json(jwks)
        response.headers["cache-control"] = "max-age=300"
        return response

    async def smart_configuration(_: Request) -> Response:
        return Response.json(
            {
                "issuer": tokens.issuer,
                "jwks_uri": f"{tokens.issuer}/.well-known/jwks.json",
                "token_endpoint": tokens.token_endpoint,
                "grant_types_supported": ["client_credentials"],
                "token_endpoint_auth_methods_supported": [
                    "private_key_jwt",
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
                "scopes_supported": [SCOPE_REPORTS, SCOPE_PATIENTS, SCOPE_OPS],
                "capabilities": ["client-confidential-asymmetric"],
                "access_token_signing_alg": ALGORITHM,
            }
        )

    async def token(request: Request) -> Response:
        form = request.form()
        try:
            grant = await asyncio.to_thread(tokens.grant, form, _basic_credentials(request))
        except GrantRefused as refused:
            event = token_event(
                "issuer",
                request,
                refused.client_id or form.get("client_id") or "unknown",
                None,
                (form.get("scope") or "").split(),
                token_id=None,
                outcome="4",
                description=f"{refused.error}: {refused.description}",
            )
            await service.audit(event)
            body = {"error": refused.error, "error_description": refused.description}
            response = Response.json(body, refused.status)
            response.headers.update(NO_STORE)
            if refused.status == 401:
                response.headers["www-authenticate"] = 'Basic realm="aimass"'
            return response
        await service.audit(
            token_event(
                "issuer", request, grant.client.client_id, grant.client.hospital, grant.scopes, token_id=grant.token_id
            )
        )
        response = Response.json(grant.response())
        response.headers.update(NO_STORE)
        return response

    service.http.get("/.well-known/jwks.json", keys, guard=None)
    service.http.get("/.well-known/smart-configuration", smart_configuration, guard=None)
    service.http.post("/token", token, guard=None)  # the client authenticates in the request itself
    return service


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, _, secret = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return client_id, secret
