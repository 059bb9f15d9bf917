"""Where the pseudonym key comes from: ``AIMASS_PSEUDONYM_KEY``, else a local key made once under ``var/``."""

from __future__ import annotations

import logging
import os
import secrets

from shared.settings import Settings

log = logging.getLogger("aimass.ingest")


def load_pseudonym_key(settings: Settings) -> bytes:
    if settings.pseudonym_key is not None:
        return settings.pseudonym_key.get_secret_value().encode()
    path = settings.var_dir / "pseudonym.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        log.warning(
            "generated a local pseudonym key; set AIMASS_PSEUDONYM_KEY in production", extra={"event": "key_generated"}
        )
    return path.read_text().strip().encode()
