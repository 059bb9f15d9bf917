"""The local stack's credentials for the command line, so nobody types a password.

When ``make up`` runs the stack secured (Kafka ``sasl-ssl``, Redis ``acl``), deploy/lib/secure.py writes each
principal's environment to ``var/secrets/<principal>.env``. Before a command builds its settings, the one of its
principal is read into the process environment: ``svc-<service>`` for ``aimass run SERVICE``, ``hospital-<id>`` for
``aimass publish --as-hospital``, ``operator`` for everything else. A variable already set wins (a caller managing its
own credentials, or deploy/services.sh, which passes them itself); an unsecured or stopped stack loads nothing.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

from shared.principals import OPERATOR, hospital_principal, service_principal
from shared.settings import PROJECT_ROOT

SECURED_PROFILES = {"kafka": "sasl-ssl", "redis": "acl"}


def var_dir(environ: MutableMapping[str, str]) -> Path:
    """The var dir as ``Settings`` would read it, without building settings from an environment not yet complete."""
    return Path(environ.get("AIMASS_VAR_DIR") or PROJECT_ROOT / "var")


def stack_secured(var: Path) -> bool:
    """Whether the stack whose state is under ``var`` was started secured (deploy/kafka/kafka.sh, redis/redis.sh)."""
    for part, profile in SECURED_PROFILES.items():
        state = var / "run" / f"{part}.security"
        if state.exists() and state.read_text().strip() == profile:
            return True
    return False


def principal_for(command: str, service: str | None = None, as_hospital: str | None = None) -> str:
    if command == "run" and service:
        return service_principal(service)
    if as_hospital:
        return hospital_principal(as_hospital)
    return OPERATOR


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (secure.py writes them unquoted); ``#`` comments and blank lines skipped."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value
    return values


def load_local_credentials(principal: str, environ: MutableMapping[str, str] = os.environ) -> Path | None:
    """Put ``principal``'s variables into ``environ`` where not set yet; the file read, or None when nothing was."""
    var = var_dir(environ)
    path = var / "secrets" / f"{principal}.env"
    if not stack_secured(var) or not path.exists():
        return None
    for key, value in read_env_file(path).items():
        environ.setdefault(key, value)
    return path
