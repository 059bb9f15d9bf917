"""The clients the local issuer knows: one backend client per hospital (its key pair under the issuer's folder, as
SMART Backend Services registers a client's JWKS) and one monitoring client with a secret (Prometheus's OAuth2
client credentials). A deployment with its own identity provider registers its clients there instead."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from services.issuer.keys import load_or_create
from shared.auth import SCOPE_OPS, SCOPE_PATIENTS, SCOPE_PREDICT, SCOPE_REPORTS, SCOPE_SUBMIT, SCOPE_SUBSCRIBE
from shared.settings import Settings

HOSPITAL_SCOPES = (SCOPE_REPORTS, SCOPE_PATIENTS, SCOPE_SUBMIT, SCOPE_PREDICT, SCOPE_SUBSCRIBE)
MONITORING_CLIENT = "ops-monitoring"


def issuer_folder(settings: Settings) -> Path:
    """Where the local issuer keeps its signing key and its clients."""
    return settings.var_dir / "issuer"


def hospital_client_id(hospital: str) -> str:
    return f"{hospital}-backend"


@dataclass(frozen=True)
class Client:
    client_id: str
    hospital: str | None
    scopes: tuple[str, ...]  # what it may be granted; a request asks for some of them
    jwks: tuple[dict[str, Any], ...] = field(default_factory=tuple)  # private_key_jwt: its public keys
    secret_sha256: str | None = None  # client_secret_basic / client_secret_post


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class FileClients:
    """``clients.json`` in the issuer's folder, read at start."""

    def __init__(self, path: Path) -> None:
        self.path = path
        entries = json.loads(path.read_text()) if path.exists() else []
        self._clients = {e["client_id"]: _client(e) for e in entries}

    def get(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)

    def all(self) -> list[Client]:
        return list(self._clients.values())


def _client(entry: dict[str, Any]) -> Client:
    return Client(
        client_id=entry["client_id"],
        hospital=entry.get("hospital"),
        scopes=tuple(entry["scopes"]),
        jwks=tuple(entry.get("jwks", ())),
        secret_sha256=entry.get("secret_sha256"),
    )


def hospital_key_path(folder: Path, hospital: str) -> Path:
    return folder / "clients" / f"{hospital}.pem"


def monitoring_secret_path(folder: Path) -> Path:
    return folder / "clients" / f"{MONITORING_CLIENT}.secret"


def register_local_clients(folder: Path, hospitals: Iterable[str]) -> FileClients:
    """The local stack's clients, made where missing: a key pair per hospital, a secret for monitoring; then
    ``clients.json`` written from them (their public halves and the secret's digest only)."""
    clients = []
    for hospital in sorted(hospitals):
        pair = load_or_create(hospital_key_path(folder, hospital))
        clients.append(Client(hospital_client_id(hospital), hospital, HOSPITAL_SCOPES, (pair.public_jwk,)))
    secret_path = monitoring_secret_path(folder)
    if not secret_path.exists():
        secret_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    secret = secret_path.read_text().strip()
    clients.append(Client(MONITORING_CLIENT, None, (SCOPE_OPS,), secret_sha256=secret_digest(secret)))
    path = folder / "clients.json"
    partial = path.with_suffix(f".{os.getpid()}.part")
    partial.write_text(json.dumps([asdict(c) for c in clients], indent=1))
    os.replace(partial, path)
    return FileClients(path)
