"""``aimass token`` and ``aimass link``: an access token from the local issuer as a hospital's backend client would get
one (a client assertion signed with the hospital's key, SMART Backend Services), and a signed report link made with
it, for a person to open in a browser."""

from __future__ import annotations

import base64
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable

from services.issuer.clients import (
    MONITORING_CLIENT,
    hospital_client_id,
    hospital_key_path,
    issuer_folder,
    monitoring_secret_path,
)
from services.issuer.grants import ASSERTION_TYPE, client_assertion
from services.issuer.keys import load
from shared.settings import Settings


class TokenError(Exception):
    """Why no token (or link) could be had, in words that say what to do."""


def _post(url: str, data: bytes, headers: dict[str, str]) -> dict[str, object]:
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as refused:
        body = json.loads(refused.read() or b"{}")
        reason = body.get("error_description") or body.get("error") or refused.reason
        raise TokenError(f"{url} answered {refused.code}: {reason}") from None
    except OSError as unreachable:
        raise TokenError(f"{url} does not answer ({unreachable}); is the stack up (`make up`)?") from None


def token_for(settings: Settings, hospital: str, scope: str | None = None) -> str:
    key_path = hospital_key_path(issuer_folder(settings), hospital)
    if not key_path.exists():
        raise TokenError(
            f"no client key for {hospital!r} at {key_path}: the local issuer makes one per file in "
            f"{settings.hospitals_dir} when it starts (`make up`)"
        )
    endpoint = f"{settings.auth_issuer.rstrip('/')}/token"
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(hospital_client_id(hospital), load(key_path), endpoint, time.time()),
    }
    if scope:
        form["scope"] = scope
    answer = _post(
        endpoint, urllib.parse.urlencode(form).encode(), {"content-type": "application/x-www-form-urlencoded"}
    )
    return str(answer["access_token"])


def ops_token(settings: Settings) -> str:
    """A token with ``ops/metrics.read``, as the local monitoring client gets one (its secret, client_secret_basic)."""
    secret_path = monitoring_secret_path(issuer_folder(settings))
    if not secret_path.exists():
        raise TokenError(f"no monitoring client secret at {secret_path}: the local issuer makes it when it starts")
    credentials = base64.b64encode(f"{MONITORING_CLIENT}:{secret_path.read_text().strip()}".encode()).decode()
    endpoint = f"{settings.auth_issuer.rstrip('/')}/token"
    headers = {"content-type": "application/x-www-form-urlencoded", "authorization": f"Basic {credentials}"}
    return str(_post(endpoint, b"grant_type=client_credentials", headers)["access_token"])


def links_for(settings: Settings, reports: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Signed links to ``(report id, hospital)`` reports; those that cannot be made now are left out."""
    links = {}
    for report_id, hospital in reports:
        try:
            links[report_id] = link_for(settings, report_id, hospital)
        except TokenError:
            continue
    return links


def link_for(settings: Settings, report_id: str, hospital: str) -> str:
    """A signed link to the report, made with a token of ``hospital`` (the report's patient's hospital)."""
    token = token_for(settings, hospital)
    url = f"{settings.public_url('report')}/reports/{urllib.parse.quote(report_id, safe='')}/link"
    answer = _post(url, b"", {"authorization": f"Bearer {token}"})
    return str(answer["url"])


def patient_link_for(settings: Settings, patient: str, hospital: str) -> str:
    """A signed link to the patient's timeline and the pages below it (the questioning page among them), made to
    answer there as ``hospital``."""
    token = token_for(settings, hospital)
    url = f"{settings.public_url('report')}/patients/{urllib.parse.quote(patient, safe='')}/link?answer=true"
    answer = _post(url, b"", {"authorization": f"Bearer {token}"})
    return str(answer["url"])


def printed(command: str, make: Callable[[], str]) -> int:
    """``aimass token`` / ``aimass link``: what ``make`` returns on stdout, or why not on stderr."""
    try:
        print(make())
    except TokenError as failed:
        print(f"aimass {command}: {failed}", file=sys.stderr)
        return 1
    return 0
