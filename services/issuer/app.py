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

from services.issuer.clients import issuer_folder, register_local_clients
from services.issuer.grants import TokenService
from services.issuer.keys import load_or_create
from services.issuer.routes import IssuerRoutes
from shared.service import Service
from shared.settings import Settings


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
    routes = IssuerRoutes(tokens, service.audit)
    service.http.get("/.well-known/jwks.json", routes.keys, guard=None)
    service.http.get("/.well-known/smart-configuration", routes.smart_configuration, guard=None)
    service.http.post("/token", routes.token, guard=None)  # the client authenticates in the request itself
    return service
