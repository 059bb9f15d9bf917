"""The issuer over HTTP (as ``aimass run issuer`` wires it): discovery, JWKS, the token endpoint, and a decision per
audit event, without which no token is handed out."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import jwt
import pytest

from services.issuer.clients import MONITORING_CLIENT, hospital_key_path, register_local_clients
from services.issuer.grants import ASSERTION_TYPE, TokenService, client_assertion
from services.issuer.keys import load_or_create
from services.issuer.routes import IssuerRoutes
from shared.http import HttpApp
from shared.schemas.audit import AccessEvent

ISSUER = "http://issuer.test"


class Issuer:
    def __init__(self, folder: Path) -> None:
        clients = register_local_clients(folder, ["cleveland"])
        self.tokens = TokenService(clients, load_or_create(folder / "signing-key.pem"), ISSUER, "aimass", 300)
        self.folder = folder
        self.events: list[AccessEvent] = []
        self.broker_down = False
        routes = IssuerRoutes(self.tokens, self.audit)
        http = HttpApp(None)  # type: ignore[arg-type]
        http.get("/.well-known/jwks.json", routes.keys, guard=None)
        http.get("/.well-known/smart-configuration", routes.smart_configuration, guard=None)
        http.post("/token", routes.token, guard=None)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(http, client=("10.0.0.9", 1)), base_url=ISSUER)

    async def audit(self, event: AccessEvent) -> None:
        if self.broker_down:
            raise ConnectionError("broker unavailable")
        self.events.append(event)

    def assertion_form(self) -> dict[str, str]:
        key = load_or_create(hospital_key_path(self.folder, "cleveland"))
        assertion = client_assertion("cleveland-backend", key, f"{ISSUER}/token", time.time())
        return {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        }


@pytest.fixture
async def issuer(tmp_path: Path):
    made = Issuer(tmp_path)
    yield made
    await made.client.aclose()


async def test_discovery_names_the_endpoints_and_the_jwks_verifies_what_the_token_endpoint_grants(issuer) -> None:
    smart = (await issuer.client.get("/.well-known/smart-configuration")).json()
    assert (
        smart["token_endpoint"] == f"{ISSUER}/token"
        and "private_key_jwt" in smart["token_endpoint_auth_methods_supported"]
    )
    answer = await issuer.client.post("/token", data=issuer.assertion_form())
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    token = answer.json()["access_token"]
    [jwk] = (await issuer.client.get("/.well-known/jwks.json")).json()["keys"]
    claims = jwt.decode(token, jwt.PyJWK.from_dict(jwk).key, algorithms=["ES256"], audience="aimass", issuer=ISSUER)
    assert claims["hospital"] == "cleveland" and jwt.get_unverified_header(token)["kid"] == jwk["kid"]
    [event] = issuer.events
    assert event.outcome == "0" and event.agent[0].who.identifier.value == "cleveland-backend"
    assert event.agent[0].network.address == "10.0.0.9" and event.agent[0].policy == [
        f"urn:aimass:bearer:{claims['jti']}"
    ]


async def test_a_refused_client_is_told_why_and_the_refusal_is_audited(issuer) -> None:
    refused = await issuer.client.post(
        "/token", data={"grant_type": "client_credentials"}, auth=(MONITORING_CLIENT, "not-the-secret")
    )
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert refused.headers["www-authenticate"] == 'Basic realm="aimass"'
    assert [(e.outcome, e.agent[0].who.identifier.value) for e in issuer.events] == [("4", MONITORING_CLIENT)]
    assert "does not match" in issuer.events[0].outcomeDesc


async def test_no_token_is_handed_out_that_the_audit_trail_does_not_know_of(issuer) -> None:
    issuer.broker_down = True
    answer = await issuer.client.post("/token", data=issuer.assertion_form())
    assert answer.status_code == 503 and "access_token" not in answer.json()
