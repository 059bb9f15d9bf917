"""``aimass quality``'s summary over the 920 real rows as their hospitals send them."""

from __future__ import annotations

import pytest

from services.cli.quality import render, summarize
from services.cli.scenario.heart import records_by_hospital
from tests.support.factories.clean import SENDS, cleaner, record_of


@pytest.fixture(scope="module")
def summary():
    clean = cleaner()
    records = [
        clean.clean(record_of(SENDS[hospital](doc), hospital, f"m-{i}")).record
        for hospital, documents in records_by_hospital().items()
        for i, doc in enumerate(documents)
    ]
    return summarize(records + records[:5])  # a record delivered twice counts once


def missing_percent(text: str, feature: str) -> list[str]:
    [line] = [line for line in text.splitlines() if line.split()[:1] == [feature]]
    return line.split()[1:]


def test_missingness_per_feature_and_hospital(summary) -> None:
    assert dict(summary.tasks["heart_disease"].records) == {
        "cleveland": 304,
        "hungary": 293,
        "va-long-beach": 200,
        "switzerland": 123,
    }
    text = render(summary)
    assert text.startswith("records.clean: 920 records from 4 hospitals")
    header = next(line for line in text.splitlines() if line.startswith("feature"))
    assert header.split()[1:] == ["cleveland", "hungary", "switzerland", "va-long-beach"]
    cleveland, hungary, switzerland, va = missing_percent(text, "cholesterol")
    assert (cleveland, switzerland) == ("0.0%", "100.0%")  # Switzerland's zeros: implausible, so missing
    assert float(va.rstrip("%")) > 20  # VA Long Beach sends 0 for about a quarter of its patients too
    assert float(hungary.rstrip("%")) < 10
    assert missing_percent(text, "age") == ["0.0%"] * 4


def test_flags_by_kind_and_hospital(summary) -> None:
    text = render(summary)
    implausible = missing_percent(text, "implausible")
    assert implausible[2] == "123"  # every Swiss cholesterol
    assert missing_percent(text, "unmapped_code") == ["0"] * 4


def test_one_task_only(summary) -> None:
    assert "breast_cancer" not in render(summary, "heart_disease")
    assert "heart_disease:" in render(summary, "heart_disease")


def test_an_empty_topic_says_what_to_do() -> None:
    assert "aimass simulate" in render(summarize([]))
