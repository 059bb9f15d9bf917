"""Secrets a service needs that the deployment may leave to the platform: the configured value when set, else one
made once under ``var/secrets/`` (mode 600) and shared by every process on the machine."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from shared.settings import Settings

log = logging.getLogger("aimass.secrets")


def secrets_dir(settings: Settings) -> Path:
    return settings.var_dir / "secrets"


def local_secret(settings: Settings, configured: SecretStr | None, name: str) -> bytes:
    """``configured``, else the contents of ``var/secrets/<name>``, made now with 32 random bytes if absent."""
    if configured is not None:
        return configured.get_secret_value().encode()
    path = secrets_dir(settings) / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return path.read_text().strip().encode()
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        log.warning("generated a local secret; set it in the environment in production", extra={"secret": name})
    return path.read_text().strip().encode()
