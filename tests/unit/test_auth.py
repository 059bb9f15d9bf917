"""Bearer tokens verified against the issuer's JWKS over HTTP, scopes, signed links, and the refusals a client sees."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome

from services.issuer.keys import ALGORITHM, generate
from shared.auth import (
    HOSPITAL_CLAIM,
    SCOPE_OPS,
    SCOPE_REPORTS,
    SCOPE_SUBMIT,
    VERIFIED_TTL_SECONDS,
    Gate,
    JwksKeys,
    Principal,
    TokenVerifier,
    refusal_response,
    scope_allows,
)
from shared.http import Refused, Request
from shared.links import LinkSigner, signed_paths
from tests.support.identity import AUDIENCE, local_identity


def request(headers: dict[str, str] | None = None, path: str = "/reports/r-1", **query: str) -> Request:
    return Request(path, {}, query, "GET", headers or {}, b"", "10.0.0.7")


def forged(identity_url: str, **changes: object) -> str:
    """A token shaped like the issuer's, signed by ``changes['key']`` or the issuer's own key, claims changed."""
    identity = local_identity()
    key = changes.pop("key", identity.key)
    now = int(time.time())
    claims = {
        "iss": identity_url,
        "sub": "cleveland-backend",
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 60,
        "jti": str(uuid.uuid4()),
        "scope": SCOPE_REPORTS,
        HOSPITAL_CLAIM: "cleveland",
        **changes,
    }
    return jwt.encode(
        {k: v for k, v in claims.items() if v is not None}, key.private, algorithm=ALGORITHM, headers={"kid": key.kid}
    )


@pytest.mark.parametrize(
    ("granted", "wanted", "allowed"),
    [
        ({"system/DiagnosticReport.read"}, "system/DiagnosticReport.read", True),
        ({"system/*.read"}, "system/DiagnosticReport.read", True),
        ({"system/DiagnosticReport.*"}, "system/DiagnosticReport.read", True),
        ({"system/Patient.read"}, "system/DiagnosticReport.read", False),
        ({"patient/*.read"}, "system/DiagnosticReport.read", False),
        ({"system/DiagnosticReport.write"}, "system/DiagnosticReport.read", False),
        ({"ops/metrics.read"}, "system/DiagnosticReport.read", False),
        ({"system/.read"}, "system/DiagnosticReport.read", False),
    ],
)
def test_smart_scopes(granted: set[str], wanted: str, allowed: bool) -> None:
    assert scope_allows(granted, wanted) is allowed


async def test_a_token_from_the_issuer_is_verified_through_its_jwks_and_names_client_hospital_and_scopes() -> None:
    identity = local_identity()
    principal = await identity.verifier().principal(identity.token("hungary"))
    assert principal.client_id == "hungary-backend" and principal.hospital == "hungary"
    assert principal.allows(SCOPE_REPORTS) and not principal.allows(SCOPE_OPS)
    ops = await identity.verifier().principal(identity.token())
    assert ops.hospital is None and ops.allows(SCOPE_OPS) and not ops.allows(SCOPE_REPORTS)


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"aud": "another-platform"}, "audience"),
        ({"iss": "http://elsewhere"}, "issuer"),
        ({"jti": None}, "jti"),
        ({"key": generate()}, "not signed by a key"),
    ],
)
async def test_tokens_the_platform_must_not_accept_are_refused_with_401_and_a_reason(
    changes: dict[str, object], says: str
) -> None:
    identity = local_identity()
    with pytest.raises(Refused) as refused:
        await identity.verifier().principal(forged(identity.url, **changes))
    assert refused.value.status == 401 and refused.value.error == "invalid_token"
    assert says in refused.value.description.lower()


async def test_the_gate_answers_no_token_bad_header_and_missing_scope_differently() -> None:
    identity = local_identity()
    gate = Gate(identity.verifier())
    with pytest.raises(Refused) as missing:
        await gate.authenticated(request())
    assert (missing.value.status, missing.value.error) == (401, "missing_token")
    with pytest.raises(Refused) as malformed:
        await gate.authenticated(request({"authorization": "Basic Zm9vOmJhcg=="}))
    assert (malformed.value.status, malformed.value.error) == (401, "invalid_request")
    with pytest.raises(Refused) as scope:
        await gate.scoped(SCOPE_OPS)(request(identity.headers("cleveland")))
    assert (scope.value.status, scope.value.error) == (403, "insufficient_scope")
    anonymous = await gate.optional(request({"authorization": "Bearer not-a-jwt"}))
    assert anonymous.client_id == "anonymous" and not anonymous.scopes


async def test_an_issuer_whose_keys_cannot_be_fetched_means_503_not_access() -> None:
    # port 9 (discard): nothing answers there
    verifier = TokenVerifier("http://127.0.0.1:9", AUDIENCE, JwksKeys("http://127.0.0.1:9/.well-known/jwks.json"))
    with pytest.raises(Refused) as refused:
        await verifier.principal(forged("http://127.0.0.1:9"))
    assert refused.value.status == 503


def test_refusals_carry_www_authenticate_and_a_body_for_whoever_asked() -> None:
    refused = Refused(401, "invalid_token", "the token has expired; ask the issuer for a new one")
    fhir = refusal_response(request({"accept": "application/fhir+json"}), refused)
    outcome = OperationOutcome.model_validate_json(fhir.body)
    assert fhir.status == 401 and outcome.issue[0].code == "login" and "expired" in outcome.issue[0].diagnostics
    assert fhir.headers["www-authenticate"] == 'Bearer realm="aimass", error="invalid_token"'
    page = refusal_response(request({"accept": "text/html"}), Refused(403, "access_denied", "another <hospital>"))
    assert page.content_type.startswith("text/html") and b"another &lt;hospital&gt;" in page.body
    plain = refusal_response(request(), Refused(401, "missing_token", "send a token"))
    assert plain.headers["www-authenticate"] == 'Bearer realm="aimass"' and b'"missing_token"' in plain.body


def test_a_signed_link_opens_its_path_until_it_expires_and_nothing_else() -> None:
    signer = LinkSigner(b"k" * 32, ttl_seconds=600)
    client = Principal("cleveland-backend", "cleveland", frozenset({SCOPE_REPORTS}))
    url, expires = signer.sign("/reports/r-1", client, now=1000.0)
    query = dict(part.split("=", 1) for part in url.split("?", 1)[1].split("&"))
    opened = signer.verify(request(path="/reports/r-1", **query), now=1500.0)
    assert (opened.client_id, opened.hospital, opened.via, opened.resource) == (
        "cleveland-backend",
        "cleveland",
        "link",
        "/reports/r-1",
    )
    assert expires == 1600
    for tampered in (
        request(path="/reports/r-2", **query),
        request(path="/reports/r-1", **{**query, "exp": str(expires + 3600)}),
        request(path="/reports/r-1", **{**query, "by": "hungary-backend"}),
        request(path="/reports/r-1", **{**query, "for": "hungary"}),
        request(path="/reports/r-1", **{k: v for k, v in query.items() if k != "sig"}),
    ):
        with pytest.raises(Refused) as refused:
            signer.verify(tampered, now=1500.0)
        assert refused.value.error == "invalid_link"
    with pytest.raises(Refused) as late:
        signer.verify(request(path="/reports/r-1", **query), now=1601.0)
    assert late.value.error == "expired_link"
    other_key = LinkSigner(b"x" * 32, ttl_seconds=600)
    with pytest.raises(Refused):
        other_key.verify(request(path="/reports/r-1", **query), now=1500.0)


def test_a_signed_link_opens_the_pages_below_its_own_and_never_the_one_above() -> None:
    signer = LinkSigner(b"k" * 32, ttl_seconds=600)
    client = Principal("cleveland-backend", "cleveland", frozenset({SCOPE_REPORTS}))
    url, _ = signer.sign("/patients/p-1", client, now=1000.0)
    query = dict(part.split("=", 1) for part in url.split("?", 1)[1].split("&"))
    below = signer.verify(request(path="/patients/p-1/questions/heart_disease", **query), now=1100.0)
    assert below.resource == "/patients/p-1"
    assert signer.verify(request(path="/patients/p-1", **query), now=1100.0).resource == "/patients/p-1"
    for elsewhere in ("/patients", "/patients/p-10", "/patients/p-2/questions", "/reports/p-1"):
        with pytest.raises(Refused) as refused:
            signer.verify(request(path=elsewhere, **query), now=1100.0)
        assert refused.value.error == "invalid_link"
    assert signed_paths("/patients/p-1/questions/t") == [
        "/patients/p-1/questions/t",
        "/patients/p-1/questions",
        "/patients/p-1",
    ]


def test_a_link_answers_questions_only_when_made_so_by_a_client_that_may_write() -> None:
    signer = LinkSigner(b"k" * 32, ttl_seconds=600)
    reader = Principal("cleveland-backend", "cleveland", frozenset({SCOPE_REPORTS}))
    writer = Principal("cleveland-backend", "cleveland", frozenset({SCOPE_REPORTS, SCOPE_SUBMIT}))
    with pytest.raises(ValueError, match=r"Bundle\.write"):
        signer.sign("/patients/p-1", reader, now=1000.0, answer=True)
    url, _ = signer.sign("/patients/p-1", writer, now=1000.0, answer=True)
    query = dict(part.split("=", 1) for part in url.split("?", 1)[1].split("&"))
    assert query["can"] == "answer"
    opened = signer.verify(request(path="/patients/p-1/questions/heart_disease", **query), now=1100.0)
    assert opened.allows(SCOPE_SUBMIT) and opened.allows(SCOPE_REPORTS)
    read_only, _ = signer.sign("/patients/p-1", writer, now=1000.0)
    plain = dict(part.split("=", 1) for part in read_only.split("?", 1)[1].split("&"))
    assert not signer.verify(request(path="/patients/p-1", **plain), now=1100.0).allows(SCOPE_SUBMIT)
    with pytest.raises(Refused):  # can=answer added to a read-only link breaks its signature
        signer.verify(request(path="/patients/p-1", **{**plain, "can": "answer"}), now=1100.0)


class CountingKeys:
    """The issuer's JWKS, counting how many times a token's key was looked up (once per signature check)."""

    def __init__(self, url: str) -> None:
        self.jwks = JwksKeys(url)
        self.lookups = 0

    def key_for(self, token: str) -> object:
        self.lookups += 1
        return self.jwks.key_for(token)


async def test_a_verified_token_is_taken_again_until_its_expiry_and_a_refused_one_is_checked_every_time() -> None:
    identity = local_identity()
    keys = CountingKeys(identity.jwks_url)
    now = [time.time()]
    verifier = TokenVerifier(identity.url, AUDIENCE, keys, leeway_seconds=0, clock=lambda: now[0])
    token = forged(identity.url, exp=int(now[0]) + 60)
    first = await verifier.principal(token)
    assert await verifier.principal(token) == first and keys.lookups == 1, "verified once, then remembered"
    other = forged(identity.url, sub="hungary-backend", **{HOSPITAL_CLAIM: "hungary"})
    assert (await verifier.principal(other)).hospital == "hungary" and keys.lookups == 2
    now[0] += 61  # past its exp on the verifier's clock: not taken on trust (PyJWT checks it again on its own)
    await verifier.principal(token)
    assert keys.lookups == 3
    long_lived = forged(identity.url, exp=int(now[0]) + 3600)
    await verifier.principal(long_lived)
    now[0] += VERIFIED_TTL_SECONDS - 1
    await verifier.principal(long_lived)
    assert keys.lookups == 4
    now[0] += 2  # no longer than the JWKS keys are cached, whatever the token's exp
    await verifier.principal(long_lived)
    assert keys.lookups == 5
    bad = forged(identity.url, key=generate())  # a key the issuer never published
    for _ in range(2):
        with pytest.raises(Refused):
            await verifier.principal(bad)
    assert keys.lookups == 7, "a refused token is never remembered"
