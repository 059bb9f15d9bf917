import uuid

import pytest

from shared.topics import (
    CE_ID,
    CE_SOURCE,
    CE_SPECVERSION,
    CE_TIME,
    CE_TYPE,
    Topic,
    cloudevent_headers,
    decode_headers,
    derived_event_id,
    event_type,
    group_id,
    hospital_input_topic,
    hospital_of_input_topic,
    topic_name,
)


def test_topic_names_carry_the_prefix() -> None:
    assert topic_name(Topic.INGEST_RAW, "aimass.") == "aimass.ingest.raw"
    assert topic_name("predictions.fused", "site-b.") == "site-b.predictions.fused"


def test_every_contract_topic_is_declared() -> None:
    contract = {
        "ingest.raw",
        "records.ingested",
        "records.clean",
        "train.requests",
        "models.released",
        "predictions",
        "predictions.fused",
        "reports",
        "deadletter",
    }
    assert contract <= {t.value for t in Topic}


def test_cloudevent_headers_follow_the_binary_mode_binding() -> None:
    headers = cloudevent_headers(service="clean", type_=event_type("record", "cleaned"), event_id="e-1")
    assert headers[CE_SPECVERSION] == "1.0"
    assert headers[CE_ID] == "e-1"
    assert headers[CE_SOURCE] == "aimass/clean"
    assert headers[CE_TYPE] == "org.aimass.record.cleaned.v1"
    assert headers[CE_TIME].endswith("Z") and "T" in headers[CE_TIME]
    assert headers["content-type"] == "application/json"


def test_derived_ids_are_the_uuid5_of_their_parts_in_the_project_namespace() -> None:
    namespace = uuid.UUID("6f1c1d52-3f0e-4d8e-9a57-5b1a2f0c9e11")
    for parts in (("infer", "ce-1", "heart", "cleveland", "v1"), ("clean", "écrit/ü", 0), ("report", "")):
        expected = uuid.uuid5(namespace, "/".join(map(str, parts)))
        assert derived_event_id(*parts) == str(expected)  # type: ignore[arg-type]
        assert uuid.UUID(derived_event_id(*parts)).version == 5  # type: ignore[arg-type]


def test_derived_ids_are_stable_and_distinct() -> None:
    first = derived_event_id("ingest", "cleveland/msg-1", 0)
    assert first == derived_event_id("ingest", "cleveland/msg-1", 0)
    assert first != derived_event_id("ingest", "cleveland/msg-1", 1)
    assert first != derived_event_id("ingest", "hungary/msg-1", 0)
    assert first != derived_event_id("clean", "cleveland/msg-1", 0)


def test_hostile_headers_decode_without_raising() -> None:
    decoded = decode_headers([("a", b"\xff\xfe"), ("b", None), ("c", b"ok")])
    assert decoded["a"] == "\ufffd\ufffd"
    assert decoded["b"] == ""
    assert decoded["c"] == "ok"


def test_a_consumer_group_belongs_to_the_deployment_its_prefix_names() -> None:
    assert group_id("infer", "aimass.") == "aimass-infer"  # the default deployment keeps its groups
    assert group_id("infer", "it-1a2b.") == "it-1a2b-infer"
    assert group_id("clean", "it-1a2b.") != group_id("clean", "aimass.")
    assert group_id("fuse", "") == "aimass-fuse"


def test_each_hospital_has_its_own_input_topic_beside_the_contract_one() -> None:
    assert hospital_input_topic("cleveland", "aimass.") == "aimass.ingest.raw.cleveland"
    assert hospital_input_topic("va-long-beach", "it-1.") == "it-1.ingest.raw.va-long-beach"
    assert hospital_input_topic("cleveland", "") == "ingest.raw.cleveland"
    assert hospital_input_topic("hungary", "aimass.") != topic_name(Topic.INGEST_RAW, "aimass.")


def test_a_hospital_input_topic_names_its_hospital_back() -> None:
    for hospital in ("cleveland", "va-long-beach", "site_7"):
        for prefix in ("aimass.", "it-1a2b.", ""):
            assert hospital_of_input_topic(hospital_input_topic(hospital, prefix), prefix) == hospital


@pytest.mark.parametrize(
    "name",
    [
        "aimass.ingest.raw",  # the contract topic: written by internal principals, no hospital of its own
        "aimass.ingest.raw.",
        "aimass.ingest.rawcleveland",
        "aimass.records.clean",
        "other.ingest.raw.cleveland",  # another deployment's
        "aimass.ingest.raw.cleve.land",  # a dot would make the name ambiguous
        "ingest.raw.cleveland",
    ],
)
def test_other_topics_name_no_hospital(name: str) -> None:
    assert hospital_of_input_topic(name, "aimass.") is None


@pytest.mark.parametrize("hospital", ["", "cleve.land", "a/b", "mayo clinic", "é", "x" * 201])
def test_a_hospital_id_that_cannot_name_a_topic_is_refused(hospital: str) -> None:
    with pytest.raises(ValueError, match="cannot name a topic"):
        hospital_input_topic(hospital, "aimass.")
