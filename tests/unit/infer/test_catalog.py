from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.infer.catalog import ModelCatalog, desired_card
from shared.schemas.models import ModelCard

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def card(version: str, status: str = "active", minutes: int = 0, site: str = "pooled") -> ModelCard:
    return ModelCard(
        task="heart",
        site=site,
        version=version,
        status=status,
        created_at=T0 + timedelta(minutes=minutes),
        artifact_uri="file:///nowhere",
        artifact_sha256="0" * 64,
    )


def test_the_registry_decides_so_replayed_old_cards_change_nothing() -> None:
    registry = [card("v1", "retired"), card("v2", "active", 1)]
    assert desired_card(card("v2", minutes=1), card("v1", "active"), registry).version == "v2"
    assert desired_card(card("v2", minutes=1), card("v1", "retired"), registry).version == "v2"


def test_a_promotion_back_switches_in_one_step() -> None:
    # train writes v1 active and v2 retired, then publishes the retirement first: already v1 is served.
    registry = [card("v1", "active"), card("v2", "retired", 1)]
    assert desired_card(card("v2", minutes=1), card("v2", "retired", 1), registry).version == "v1"


def test_without_a_readable_registry_the_newest_active_card_wins_and_retire_removes() -> None:
    assert desired_card(None, card("v1"), []).version == "v1"
    assert desired_card(card("v2", minutes=1), card("v1"), []).version == "v2"
    assert desired_card(card("v1"), card("v2", minutes=1), []).version == "v2"
    assert desired_card(card("v1"), card("v1", "retired"), []) is None
    assert desired_card(card("v1"), card("v0", "retired"), []).version == "v1"
    assert desired_card(card("v1"), card("v3", "candidate", 5), []).version == "v1"


def test_a_swap_leaves_the_snapshot_a_batch_holds_untouched() -> None:
    catalog: ModelCatalog[str] = ModelCatalog()
    catalog.put(card("v1"), "session-1")
    catalog.put(card("c1", site="cleveland"), "session-c")
    held = catalog.snapshot()
    assert catalog.put(card("v2", minutes=1), "session-2").version == "v1"
    assert [m.scorer for m in held["heart"]] == ["session-c", "session-1"]
    assert [m.scorer for m in catalog.snapshot()["heart"]] == ["session-c", "session-2"]
    catalog.remove("heart", "cleveland")
    assert [m.card.version for m in catalog.snapshot()["heart"]] == ["v2"]
    assert catalog.summary() == {"heart": ["pooled/v2"]}
