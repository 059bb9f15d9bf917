"""The 920 real UCI heart-disease rows as a training ``Dataset``: each hospital's documents through ingest's reader,
then the task file's feature and label definitions (what train's store would hold)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from services.cli.scenario.heart import records_by_hospital
from services.ingest.documents import envelope_of, read_document
from services.ingest.pseudonym import Pseudonymizer
from services.train.dataset import Dataset, Row, assemble
from shared.tasks import TaskSpec, feature_vector, label_of

KEY = b"unit-test-key-0123456789abcdef"
WHEN = datetime(2026, 1, 5, tzinfo=UTC)


def heart_dataset(task: TaskSpec, labelled_only: bool = False) -> Dataset:
    pseudonymize = Pseudonymizer(KEY)
    rows = []
    for hospital, documents in records_by_hospital().items():
        for index, document in enumerate(documents):
            headers = {"ce_source": hospital, "content-type": "application/json", "ce_id": f"{hospital}-{index}"}
            envelope = envelope_of(headers, "-", WHEN)
            for record in read_document(json.dumps(document).encode(), headers, envelope, pseudonymize, 10**6):
                label = label_of(record, task)
                if label is not None or not labelled_only:
                    rows.append(Row(record.record_id, record.hospital, feature_vector(record, task), label))
    return assemble(task.feature_names, rows)
