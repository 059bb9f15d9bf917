"""The chaos suite's own logic, without a broker: batches clean will not drop, and the reconciliation's verdicts."""

from __future__ import annotations

from datetime import UTC, datetime

from services.clean.fingerprint import content_fingerprint
from services.ingest.pseudonym import Pseudonymizer
from services.ingest.records import Envelope, to_canonical
from shared.schemas import IncomingRecord
from tests.chaos.documents import heart_documents
from tests.chaos.reconcile import reconcile


def test_a_batch_beyond_the_920_rows_is_all_new_content_for_clean() -> None:
    documents = heart_documents(2000, start=datetime(2026, 3, 1, tzinfo=UTC))
    pseudonymize = Pseudonymizer(b"chaos-unit-test-key")
    received = datetime(2026, 3, 2, tzinfo=UTC)
    fingerprints = {
        content_fingerprint(
            to_canonical(
                IncomingRecord.model_validate_json(d.body),
                Envelope(d.hospital, d.ce_id, received),
                "json",
                pseudonymize,
            )
        )
        for d in documents
    }
    assert len(fingerprints) == len({d.record_id for d in documents}) == 2000


def test_reconcile_counts_lost_split_strangers_and_duplicates() -> None:
    seen = {"a": {"id-a"}, "b": {"id-b", "id-b2"}, "x": {"id-x"}, "old": {"id-old"}}
    outcome = reconcile("fused", ["a", "b", "c"], seen, duplicates=4, sent={"a", "b", "c", "old"})
    assert outcome.lost == ("c",)
    assert outcome.split == ("b",)
    assert outcome.strangers == 1  # "x"; "old" came from an earlier batch of the same run
    assert outcome.duplicates == 4
    assert len(outcome.problems) == 3


def test_a_complete_batch_has_no_problems_whatever_its_duplicates() -> None:
    outcome = reconcile("reports", ["a", "b"], {"a": {"1"}, "b": {"2"}}, duplicates=7, sent={"a", "b"})
    assert outcome.problems == []
