"""The model registry on disk as infer reads it (layout in ``shared/registry.py``)."""

from __future__ import annotations

import logging
import re

from pydantic import ValidationError

from shared.registry import CARD_FILE, active_cards, read_card, registry_root
from shared.schemas.models import ModelCard
from shared.settings import Settings

log = logging.getLogger("aimass.infer.registry")
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class RegistryCards:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def active(self) -> list[ModelCard]:
        return active_cards(self.settings)

    def cards(self, task: str, site: str) -> list[ModelCard]:
        """Every readable card of (task, site); empty when this machine does not see that part of the registry."""
        if not (SAFE_NAME.fullmatch(task) and SAFE_NAME.fullmatch(site)):
            return []  # a card naming a path outside the registry is not looked up on disk
        cards = []
        for path in (registry_root(self.settings) / task / site).glob(f"*/{CARD_FILE}"):
            try:
                cards.append(read_card(path.parent))
            except (OSError, ValidationError):
                log.warning("unreadable model card skipped", extra={"task": task, "site": site})
        return cards
