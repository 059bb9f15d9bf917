from datetime import UTC, datetime, timedelta

import pytest

from services.cli.train_cli import models_table
from services.train.adapters.registry_writer import RegistryWriter
from services.train.adapters.store import DATA_FILE, INBOX_FILE, ParquetTrainingStore
from services.train.ports import StoredRecord
from services.train.release import release
from services.train.training import train_model
from shared.registry import list_cards
from shared.settings import Settings
from tests.unit.train.conftest import quick


def stored(record_id: str, hospital: str = "h/1", label: float | None = 1.0) -> StoredRecord:
    return StoredRecord(record_id, "p" * 32, hospital, "2026-01-01T00:00:00+00:00", ["a", "b"], [1.5, None], label)


def test_the_store_keeps_exactly_one_copy_per_record_across_compaction_and_restart(tmp_path) -> None:
    store = ParquetTrainingStore(tmp_path)
    assert store.add("t", stored("r1")) and store.add("t", stored("r2", label=None))
    assert not store.add("t", stored("r1"))  # a redelivery
    store.compact()
    partition = store.partition("t", "h/1")
    assert (partition / DATA_FILE).exists() and not (partition / INBOX_FILE).exists()
    reopened = ParquetTrainingStore(tmp_path)
    # r1 again after its compaction (a re-delivery after a crash): only the inbox's ids are in memory, so it is
    # appended, counted twice until the next compaction, and that compaction keeps one copy.
    assert reopened.add("t", stored("r1")) and not reopened.add("t", stored("r1"))
    assert reopened.add("t", stored("r3"))
    assert reopened.counts() == {("t", "h/1"): 4}
    assert list(reopened.dataset("t", ["a"]).record_ids) == ["r1", "r3"]  # read before compaction: one r1 too
    reopened.compact("t", "h/1")
    assert reopened.counts() == {("t", "h/1"): 3} and reopened.inbox_rows("t", "h/1") == 0
    data = reopened.dataset("t", ["b", "a", "c"])  # the task's order; 'c' was never stored: missing
    assert list(data.record_ids) == ["r1", "r3"]  # labelled rows only
    assert data.x[0, 1] == 1.5 and data.x[0, 0] != data.x[0, 0] and data.x[0, 2] != data.x[0, 2]
    assert data.site_names == ["h/1"]


def test_release_writes_the_layout_and_keeps_one_active_model_per_site(tmp_path, tasks, wdbc_data) -> None:
    settings = Settings(var_dir=tmp_path)
    writer = RegistryWriter(settings.data_path / "models")
    trained = train_model(quick(tasks["breast_cancer"], trials=1, max_epochs=10), wdbc_data, "wisconsin")
    start = datetime(2026, 3, 1, tzinfo=UTC)
    [first] = release(trained, writer, now=start)
    retired, second = release(trained, writer, now=start + timedelta(seconds=1))
    assert (retired.version, retired.status, second.status) == (first.version, "retired", "active")
    directory = writer.model_dir("breast_cancer", "wisconsin", second.version)
    assert {p.name for p in directory.iterdir()} == {"model.onnx", "card.json", "roc.png", "calibration.png"}
    assert second.features == list(tasks["breast_cancer"].feature_names) and second.opset == 17
    assert second.cross_site["wisconsin"] == second.metrics["auc"]
    assert len(second.training_data_fingerprint) == 64 and len(second.artifact_sha256) == 64
    changed = writer.set_status("breast_cancer", "wisconsin", first.version, "active")
    assert [(c.version, c.status) for c in changed] == [(second.version, "retired"), (first.version, "active")]
    assert [c.status for c in list_cards(settings)] == ["active", "retired"]
    assert "breast_cancer" in models_table(list_cards(settings)).splitlines()[1]
    with pytest.raises(LookupError):
        writer.set_status("breast_cancer", "wisconsin", "nope", "retired")
    (directory / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(ValueError, match="sha256"):
        writer.release(directory, second)
