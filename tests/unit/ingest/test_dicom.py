import io
from datetime import UTC, datetime, timedelta

import pydicom
import pytest
from pydicom.data import get_testdata_file

from services.ingest.dicom import DICOM_CONTENT_TYPE
from shared.errors import RejectedInput
from tests.support.factories.ingest import pseudonymize, read

DICOM = DICOM_CONTENT_TYPE


def shipped(name: str) -> bytes:
    with open(get_testdata_file(name), "rb") as handle:
        return handle.read()


def original(name: str) -> pydicom.Dataset:
    return pydicom.dcmread(get_testdata_file(name))


def test_ct_small_becomes_a_record_with_imaging_metadata_and_a_claim_check(tmp_path) -> None:
    ingested = read(shipped("CT_small.dcm"), "cleveland", DICOM, data_root=tmp_path)
    [record] = ingested.records
    source = original("CT_small.dcm")
    assert record.source_format == "dicom" and record.patient == pseudonymize("cleveland", "1CT1")
    days = pseudonymize.date_shift_days(record.patient)
    assert record.recorded_at == datetime(2004, 1, 19, 7, 27, 30, tzinfo=UTC) + timedelta(days=days)  # StudyDate/Time
    [image] = record.imaging
    assert (image.modality, image.rows, image.columns, image.pixel_bytes) == ("CT", 128, 128, 32768)
    assert image.acquisition["KVP"] == 120.0 and image.acquisition["SliceThickness"] == 5.0
    pixels = source.pixel_array * float(source.RescaleSlope) + float(source.RescaleIntercept)
    assert image.pixel_mean == pytest.approx(float(pixels.mean())) and image.pixel_max == float(pixels.max())
    assert image.study_uid != source.StudyInstanceUID and image.study_uid.startswith("2.25.")
    # 32 KiB of pixels > 16 KiB: stored as a de-identified file the record points to
    [attachment] = ingested.attachments
    assert image.uri == attachment.path.as_uri() and attachment.path.is_relative_to(tmp_path)
    stored = pydicom.dcmread(io.BytesIO(attachment.content))
    assert stored.PatientID == record.patient and "PatientName" not in stored
    assert stored.StudyInstanceUID == image.study_uid
    assert stored.file_meta.MediaStorageSOPInstanceUID == image.instance_uid
    assert (stored.pixel_array == source.pixel_array).all()
    for identifier in (b"CompressedSamples", b"1CT1", source.StudyInstanceUID.encode(), b"JFK IMAGING"):
        assert identifier not in attachment.content


def test_mr_small_below_the_claim_check_size_is_summarized_only() -> None:
    ingested = read(shipped("MR_small.dcm"), "cleveland", DICOM)
    [record] = ingested.records
    [image] = record.imaging
    assert (image.modality, image.rows, image.columns, image.uri) == ("MR", 64, 64, None)
    assert record.demographics.sex == "female" and ingested.attachments == []
    assert image.pixel_mean == pytest.approx(float(original("MR_small.dcm").pixel_array.mean()))


def test_replacement_uids_are_stable_and_depend_on_the_hospital() -> None:
    first = read(shipped("CT_small.dcm"), "cleveland", DICOM).records[0].imaging[0]
    again = read(shipped("CT_small.dcm"), "cleveland", DICOM).records[0].imaging[0]
    elsewhere = read(shipped("CT_small.dcm"), "hungary", DICOM).records[0].imaging[0]
    assert first.study_uid == again.study_uid != elsewhere.study_uid


def test_dicom_is_sniffed_without_content_type() -> None:
    assert read(shipped("MR_small.dcm"), "cleveland").source_format == "dicom"


@pytest.mark.parametrize(("cut", "says"), [(60, "not a DICOM Part 10 file"), (2000, "DICOM")])
def test_truncated_dicom_is_rejected(cut: int, says: str) -> None:
    with pytest.raises(RejectedInput, match=says):
        read(shipped("CT_small.dcm")[:cut], "cleveland", DICOM)


def test_dicom_without_patient_id_is_rejected() -> None:
    source = original("MR_small.dcm")
    source.PatientID = ""
    buffer = io.BytesIO()
    source.save_as(buffer)
    with pytest.raises(RejectedInput, match="PatientID: empty"):
        read(buffer.getvalue(), "cleveland", DICOM)
