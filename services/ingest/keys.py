"""Where the pseudonym key comes from: ``AIMASS_PSEUDONYM_KEY``, else a local key made once in ``var/pseudonym.key``."""

from __future__ import annotations

from shared.secrets import local_secret
from shared.settings import Settings


def load_pseudonym_key(settings: Settings) -> bytes:
    return local_secret(settings.pseudonym_key, settings.var_dir / "pseudonym.key", "AIMASS_PSEUDONYM_KEY")
