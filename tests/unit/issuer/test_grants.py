"""The client credentials grant of the local issuer: SMART's private_key_jwt and the monitoring client's secret,
what each may be granted, replays and forgeries; and the audit events of the edge are valid FHIR AuditEvents."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from fhir.resources.R4B.auditevent import AuditEvent as FhirAuditEvent

from services.issuer.clients import HOSPITAL_SCOPES, MONITORING_CLIENT, hospital_key_path, register_local_clients
from services.issuer.grants import ASSERTION_TYPE, GrantRefused, TokenService, client_assertion
from services.issuer.keys import generate, load_or_create
from shared.access import refusal_event, rest_event, token_event
from shared.auth import HOSPITAL_CLAIM, SCOPE_OPS, SCOPE_REPORTS, Principal, TokenVerifier
from shared.http import Refused, Request

ISSUER = "http://127.0.0.1:8107"


class StaticKeys:
    def __init__(self, service: TokenService) -> None:
        self.public = service.key.private.public_key()

    def key_for(self, token: str) -> object:
        return self.public


@pytest.fixture
def issuer(tmp_path: Path) -> tuple[TokenService, Path]:
    clients = register_local_clients(tmp_path, ["cleveland", "hungary"])
    return TokenService(clients, load_or_create(tmp_path / "signing-key.pem"), ISSUER, "aimass", 300), tmp_path


def asserted(service: TokenService, folder: Path, hospital: str, **form: str) -> dict[str, str]:
    key = load_or_create(hospital_key_path(folder, hospital))
    assertion = client_assertion(f"{hospital}-backend", key, service.token_endpoint, time.time())
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        **form,
    }


async def test_a_hospital_client_gets_a_token_for_its_hospital_that_the_services_accept(issuer) -> None:
    service, folder = issuer
    grant = service.grant(asserted(service, folder, "hungary", scope=SCOPE_REPORTS))
    assert grant.response()["token_type"] == "bearer" and grant.response()["scope"] == SCOPE_REPORTS
    claims = jwt.decode(grant.access_token, options={"verify_signature": False})
    assert (
        claims[HOSPITAL_CLAIM] == "hungary"
        and claims["sub"] == "hungary-backend"
        and claims["exp"] - claims["iat"] == 300
    )
    principal = await TokenVerifier(ISSUER, "aimass", StaticKeys(service)).principal(grant.access_token)
    assert principal.hospital == "hungary" and principal.allows(SCOPE_REPORTS) and principal.token_id == grant.token_id
    everything = service.grant(asserted(service, folder, "cleveland"))  # no scope asked: what it is registered for
    assert set(everything.scopes) == set(HOSPITAL_SCOPES) and SCOPE_OPS not in everything.scopes


def test_the_monitoring_client_authenticates_with_its_secret_and_gets_only_the_ops_scope(issuer) -> None:
    service, folder = issuer
    secret = (folder / "clients" / f"{MONITORING_CLIENT}.secret").read_text().strip()
    grant = service.grant({"grant_type": "client_credentials"}, (MONITORING_CLIENT, secret))
    assert grant.scopes == (SCOPE_OPS,) and grant.client.hospital is None
    with pytest.raises(GrantRefused) as wrong:
        service.grant({"grant_type": "client_credentials"}, (MONITORING_CLIENT, secret + "x"))
    assert (wrong.value.error, wrong.value.status) == ("invalid_client", 401)
    with pytest.raises(GrantRefused) as scope:
        service.grant({"grant_type": "client_credentials", "scope": SCOPE_REPORTS}, (MONITORING_CLIENT, secret))
    assert scope.value.error == "invalid_scope" and SCOPE_OPS in scope.value.description


@pytest.mark.parametrize(
    ("tamper", "error"),
    [
        ("replay", "used before"),
        ("other key", "not signed by a registered key"),
        ("other audience", "not valid"),
        ("hospital asks for ops", "not registered for ops/metrics.read"),
        ("password grant", "only grant_type=client_credentials"),
        ("unknown client", "no client"),
    ],
)
def test_what_the_issuer_refuses(issuer, tamper: str, error: str) -> None:
    service, folder = issuer
    form = asserted(service, folder, "cleveland")
    if tamper == "replay":
        service.grant(form)
    elif tamper == "other key":
        form["client_assertion"] = client_assertion(
            "cleveland-backend", generate(), service.token_endpoint, time.time()
        )
    elif tamper == "other audience":
        key = load_or_create(hospital_key_path(folder, "cleveland"))
        form["client_assertion"] = client_assertion("cleveland-backend", key, "http://elsewhere/token", time.time())
    elif tamper == "hospital asks for ops":
        form["scope"] = SCOPE_OPS
    elif tamper == "password grant":
        form["grant_type"] = "password"
    elif tamper == "unknown client":
        key = load_or_create(hospital_key_path(folder, "cleveland"))
        form["client_assertion"] = client_assertion("berlin-backend", key, service.token_endpoint, time.time())
    with pytest.raises(GrantRefused) as refused:
        service.grant(form)
    assert error in refused.value.description


def test_every_event_of_the_edge_is_a_valid_fhir_audit_event_naming_who_what_when_outcome_and_where() -> None:
    request = Request("/reports/r-1", {"report_id": "r-1"}, {"format": "pdf"}, "GET", {}, b"", "10.1.2.3")
    reader = Principal("cleveland-backend", "cleveland", frozenset({SCOPE_REPORTS}), token_id="t-1")
    read = rest_event(
        "report", request, reader, "read", resource="DiagnosticReport/r-1", patient="p" * 32, details={"format": "pdf"}
    )
    refused = refusal_event("report", request, Refused(403, "access_denied", "another hospital's patient"))
    issued = token_event("issuer", request, "cleveland-backend", "cleveland", [SCOPE_REPORTS], token_id="t-1")
    for event in (read, refused, issued):
        FhirAuditEvent.model_validate_json(event.model_dump_json(exclude_none=True))
    client, server = read.agent
    assert client.requestor and client.who.identifier.value == "cleveland-backend"
    assert client.network.address == "10.1.2.3" and client.policy == ["urn:aimass:bearer:t-1"]
    assert not server.requestor and read.action == "R" and read.outcome == "0"
    assert [e.what.reference or e.what.identifier.value for e in read.entity] == ["DiagnosticReport/r-1", "p" * 32]
    assert refused.outcome == "4" and "403 access_denied" in refused.outcomeDesc
    assert refused.entity[0].what.display == "/reports/r-1"
    assert issued.type.code == "110114" and issued.entity[0].detail[0].valueString == SCOPE_REPORTS
