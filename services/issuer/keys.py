"""EC P-256 key pairs as PEM files (mode 600) and their public halves as JWKs, ``kid`` the RFC 7638 thumbprint."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

ALGORITHM = "ES256"


@dataclass(frozen=True)
class KeyPair:
    private: ec.EllipticCurvePrivateKey
    kid: str

    @property
    def public_jwk(self) -> dict[str, Any]:
        return {**public_jwk(self.private.public_key()), "kid": self.kid, "use": "sig", "alg": ALGORITHM}

    def pem(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def public_jwk(key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    return ECAlgorithm.to_jwk(key, as_dict=True)


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: SHA-256 of the required members, lexicographically ordered, no white space."""
    required = {name: jwk[name] for name in ("crv", "kty", "x", "y")}
    digest = hashlib.sha256(json.dumps(required, separators=(",", ":"), sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def generate() -> KeyPair:
    private = ec.generate_private_key(ec.SECP256R1())
    return KeyPair(private, thumbprint(public_jwk(private.public_key())))


def load(path: Path) -> KeyPair:
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an EC private key")
    return KeyPair(private, thumbprint(public_jwk(private.public_key())))


def load_or_create(path: Path) -> KeyPair:
    """The key pair in ``path``, made now when there is none (written aside and linked, so two processes starting
    together end with one key)."""
    if path.exists():
        return load(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pair = generate()
    partial = path.with_suffix(f".{os.getpid()}.part")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pair.pem())
    try:
        os.link(partial, path)
    except FileExistsError:
        pass
    finally:
        partial.unlink()
    return load(path)
