"""Secrets a service needs that the deployment may leave to the platform: the configured value when set, else one
made once in a file under ``var/`` (mode 600) and shared by every process on the machine."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from shared.settings import Settings

log = logging.getLogger("aimass.secrets")


def secret_path(settings: Settings, name: str) -> Path:
    """Where the local secret ``name`` lives: ``var/secrets/<name>``."""
    return settings.var_dir / "secrets" / name


def local_secret(configured: SecretStr | None, path: Path, setting: str) -> bytes:
    """``configured``, else the contents of ``path``, made now with 32 random bytes (hex) if absent. ``setting``
    names the variable that should carry it in production, for the warning."""
    if configured is not None:
        return configured.get_secret_value().encode()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return path.read_text().strip().encode()
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        log.warning(
            "generated a local secret; set %s in production",
            setting,
            extra={"event": "key_generated", "path": str(path)},
        )
    return path.read_text().strip().encode()
