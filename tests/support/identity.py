"""A real identity provider for tests: the local issuer's own key, clients and grant code, minting real ES256 tokens
in the test process, its JWKS and token endpoint served over HTTP on a free port, so service processes verify tokens
as they verify the issuer's and Prometheus fetches its own. One per test session (``local_identity``); the issuer
process itself (``aimass run issuer``: the same code plus the audit of every grant) has tests of its own.
"""

from __future__ import annotations

import base64
import json
import tempfile
import threading
import time
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus

from services.issuer.clients import hospital_client_id, hospital_key_path, register_local_clients
from services.issuer.grants import ASSERTION_TYPE, GrantRefused, TokenService, client_assertion
from services.issuer.keys import load_or_create
from shared.auth import SCOPE_OPS, TokenVerifier
from shared.settings import PROJECT_ROOT

HOSPITALS = tuple(path.stem for path in sorted((PROJECT_ROOT / "deploy" / "hospitals").glob("*.yaml")))
AUDIENCE = "aimass"


class LocalIdentity:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.key = load_or_create(folder / "signing-key.pem")
        self.clients = register_local_clients(folder, HOSPITALS)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.tokens = TokenService(self.clients, self.key, self.url, AUDIENCE, ttl_seconds=600)
        threading.Thread(target=self._server.serve_forever, name="test-jwks", daemon=True).start()

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/.well-known/jwks.json"

    def settings(self) -> dict[str, str]:
        """What a service's settings need to accept this provider's tokens."""
        return {"auth_issuer": self.url, "auth_jwks_url": self.jwks_url, "auth_audience": AUDIENCE}

    def environment(self) -> dict[str, str]:
        return {f"AIMASS_{name.upper()}": value for name, value in self.settings().items()}

    def verifier(self) -> TokenVerifier:
        return TokenVerifier.from_settings_values(self.url, AUDIENCE, self.jwks_url)

    def token(self, hospital: str | None = None, scope: str | None = None) -> str:
        """A token through the client credentials grant: a hospital's backend client (its key, a fresh assertion),
        or, without a hospital, the monitoring client (its secret; scope ``ops/metrics.read``)."""
        if hospital is None:
            secret = (self.folder / "clients" / "ops-monitoring.secret").read_text().strip()
            form = {"grant_type": "client_credentials", "scope": scope or SCOPE_OPS}
            return self.tokens.grant(form, ("ops-monitoring", secret)).access_token
        client_id = hospital_client_id(hospital)
        assertion = client_assertion(
            client_id, load_or_create(hospital_key_path(self.folder, hospital)), self.tokens.token_endpoint, time.time()
        )
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        }
        if scope:
            form["scope"] = scope
        return self.tokens.grant(form).access_token

    def headers(self, hospital: str | None = None, scope: str | None = None) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token(hospital, scope)}"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        identity = self

        class Keys(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/.well-known/jwks.json":
                    self.send_error(404)
                    return
                body = json.dumps({"keys": [identity.key.public_jwk]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # the token endpoint, for clients that fetch their own (Prometheus)
                if self.path != "/token":
                    self.send_error(404)
                    return
                length = int(self.headers.get("content-length") or 0)
                form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                basic = None
                scheme, _, value = (self.headers.get("authorization") or "").partition(" ")
                if scheme.lower() == "basic":
                    client_id, _, secret = base64.b64decode(value).decode().partition(":")
                    basic = (unquote_plus(client_id), unquote_plus(secret))
                try:
                    status, answer = 200, identity.tokens.grant(form, basic).response()
                except GrantRefused as refused:
                    status, answer = refused.status, {"error": refused.error, "error_description": refused.description}
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:  # quiet: pytest shows stderr of failing tests
                return

        return Keys


@lru_cache(maxsize=1)
def local_identity() -> LocalIdentity:
    return LocalIdentity(Path(tempfile.mkdtemp(prefix="aimass-identity-")))
