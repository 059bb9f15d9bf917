from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.cli.main import build_parser
from services.cli.publish import document_headers, format_of, read_documents
from services.cli.replay import Filters, parse_since
from services.cli.train_cli import release_headers
from shared.settings import get_settings
from shared.topics import CE_ID, CE_SOURCE, CE_TYPE, CONTENT_TYPE, DLQ_ERROR, DLQ_ORIGINAL_TOPIC, DLQ_SERVICE, Topic


def test_the_format_comes_from_the_flag_the_extension_or_the_content() -> None:
    assert format_of(Path("a.hl7"), None) == "hl7v2" and format_of(Path("a.dcm"), None) == "dicom"
    assert format_of(Path("a.fhir.json"), None) == "fhir" and format_of(Path("a.xlsx"), None) == "xlsx"
    assert format_of(Path("bundle.json"), None, b'{"resourceType": "Bundle"}') == "fhir"
    assert format_of(Path("record.json"), None, b'{"patient_id": "X"}') == "json"
    assert format_of(Path("a.txt"), None) is None and format_of(Path("a.txt"), "csv") == "csv"


def test_a_folder_is_read_recursively_and_unreadable_files_are_counted(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.csv").write_text("a,b,c\n1,2,3\n")
    (tmp_path / "a.hl7").write_text("MSH|^~\\&|")
    documents, failed = read_documents([str(tmp_path), str(tmp_path / "missing.json")], None)
    assert [(Path(n).name, f) for n, _, f in documents] == [("a.hl7", "hl7v2"), ("b.csv", "csv")]
    assert failed == 1


def test_documents_carry_the_hospital_and_content_type() -> None:
    headers = dict(document_headers("va-long-beach", "csv"))
    assert headers[CE_SOURCE] == b"va-long-beach" and headers[CONTENT_TYPE] == b"text/csv"
    assert CONTENT_TYPE not in dict(document_headers("x", None))  # no format: ingest sniffs


def test_replay_filters() -> None:
    headers = {
        DLQ_SERVICE: "ingest",
        DLQ_ERROR: "CSV row 2 column 'x': not a number",
        CE_SOURCE: "va-long-beach",
        DLQ_ORIGINAL_TOPIC: "aimass.ingest.raw",
    }
    at = int(datetime(2026, 11, 29, 10, 0, tzinfo=UTC).timestamp() * 1000)
    assert Filters(
        service="ingest", reason="ROW 2", hospital="va-long-beach", original_topic="aimass.ingest.raw"
    ).wanted(headers, at)
    assert not Filters(service="clean").wanted(headers, at)
    assert not Filters(hospital="cleveland").wanted(headers, at)
    assert not Filters(original_topic="aimass.records.ingested").wanted(headers, at)
    assert Filters(since=parse_since("2026-11-29T09:59")).wanted(headers, at)
    assert not Filters(since=parse_since("2026-11-29T10:00:01+00:00")).wanted(headers, at)


def test_the_cli_accepts_the_new_flags() -> None:
    args = build_parser().parse_args(["replay", "--hospital", "hungary", "--topic", "ingest.raw", "--dry-run"])
    assert (args.hospital, args.topic, args.dry_run) == ("hungary", "ingest.raw", True)
    assert build_parser().parse_args(["publish", "x.xlsx", "--hospital", "h", "--format", "xlsx"]).format == "xlsx"


def test_a_topic_is_named_with_or_without_the_prefix_and_a_wrong_name_lists_the_topics(capsys) -> None:
    prefixed = get_settings().topic_prefix + "records.clean"
    assert build_parser().parse_args(["tail", prefixed]).topic is Topic.RECORDS_CLEAN
    assert build_parser().parse_args(["tail", "predictions.fused"]).topic is Topic.PREDICTIONS_FUSED
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["replay", "--topic", "records.cleaned"])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "no topic 'records.cleaned'" in error and "records.clean, train.requests" in error


def test_every_status_change_the_cli_publishes_is_a_new_event() -> None:
    first, again = dict(release_headers()), dict(release_headers())  # e.g. v1 activated, and again after a rollback
    assert first[CE_ID] != again[CE_ID]
    assert first[CE_TYPE] == again[CE_TYPE] == b"org.aimass.model.released.v1"
