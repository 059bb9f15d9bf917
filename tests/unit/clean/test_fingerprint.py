from services.clean.fingerprint import content_fingerprint
from tests.support.factories.clean import heart_document, record_of


def test_the_same_content_under_a_new_message_id_has_the_same_fingerprint() -> None:
    first, again = record_of(heart_document(), "cleveland", "m-1"), record_of(heart_document(), "cleveland", "m-2")
    assert first.record_id != again.record_id
    assert content_fingerprint(first) == content_fingerprint(again)


def test_order_and_display_text_do_not_matter() -> None:
    document = heart_document()
    shuffled = {
        **document,
        "observations": [
            {**o, "code": {**o["code"], "display": "other words"}} for o in reversed(document["observations"])
        ],
    }
    original, reordered = record_of(document, "cleveland"), record_of(shuffled, "cleveland")
    assert content_fingerprint(original) == content_fingerprint(reordered)


def test_another_value_patient_or_hospital_is_other_content() -> None:
    base = content_fingerprint(record_of(heart_document(), "cleveland"))
    assert content_fingerprint(record_of(heart_document(chol=287.0), "cleveland")) != base
    assert content_fingerprint(record_of(heart_document(id=3), "cleveland")) != base
    assert content_fingerprint(record_of(heart_document(), "hungary")) != base


def test_repeated_codes_with_and_without_values_do_not_break_the_ordering() -> None:
    document = heart_document()
    document["observations"] += [{"code": {"system": "http://loinc.org", "code": "2093-3"}, "value": None}]
    assert len(content_fingerprint(record_of(document, "cleveland"))) == 64
