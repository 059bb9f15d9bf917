"""The expected-model set: newest active card per site, retirement, out-of-order replay."""

import pytest

from services.fuse.directory import ModelDirectory
from shared.errors import RejectedInput, parse_event
from shared.schemas.models import ModelCard
from tests.support.factories.fuse import card


def test_one_active_model_per_site_newest_wins_whatever_the_order() -> None:
    old, new = card("hungary", "v1", minutes=0), card("hungary", "v2", minutes=5)
    for order in ([old, new], [new, old]):
        directory = ModelDirectory(order)
        assert directory.expected("heart_disease") == {"hungary": new}


def test_retirement_removes_only_that_version_and_a_promotion_back_follows() -> None:
    v1, v2 = card("hungary", "v1", minutes=0), card("hungary", "v2", minutes=5)
    directory = ModelDirectory([v1, v2, v1.model_copy(update={"status": "retired"})])
    assert directory.expected("heart_disease") == {"hungary": v2}
    # train promotes v1 back: it publishes v2 retired, then v1 active.
    directory.apply(v2.model_copy(update={"status": "retired"}))
    directory.apply(v1)
    assert directory.expected("heart_disease") == {"hungary": v1}


def test_candidates_are_not_expected_but_their_cards_are_known() -> None:
    candidate = card("va-long-beach", "v9", status="candidate")
    directory = ModelDirectory([candidate, card("hungary")])
    assert set(directory.expected("heart_disease")) == {"hungary"}
    assert directory.card(candidate.ref) == candidate
    assert directory.summary() == {"heart_disease": ["heart_disease/hungary/v1"]}


def test_an_unknown_version_falls_back_to_its_sites_active_card() -> None:
    active = card("hungary", "v2")
    directory = ModelDirectory([active])
    assert directory.card(card("hungary", "v1").ref) == active
    assert directory.card(card("cleveland", "v1").ref) is None


def test_a_card_whose_time_has_no_zone_is_refused_at_the_edge() -> None:
    """Cards are ordered by ``created_at``; one without a zone could not be compared with the rest, and the
    ``TypeError`` would drop every later card of its site."""
    naive = card("hungary").model_dump_json().replace('Z"', '"').replace('+00:00"', '"').encode()
    with pytest.raises(RejectedInput) as rejected:
        parse_event(naive, ModelCard, "unit.models.released")
    assert rejected.value.reason_class == "schema" and "created_at" in rejected.value.reason
