"""The claim check against the PS3.15 Basic Profile: every attribute of the library's own action table (not a hand
list) is filled in a real CT instance, the instance is ingested, and the stored file is checked attribute by
attribute: removed or replaced, UIDs keyed, dates shifted by the patient's offset, pixels unchanged."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset

from services.ingest.adapters.claim_check_files import FileClaimChecks
from services.ingest.dates import shift_dicom_date, shift_dicom_datetime
from services.ingest.dicom import ACQUISITION, profile_actions
from tests.support.factories.ingest import pseudonymize, read

MARK = "PHIMARK"  # in every string value put in: none may be in the stored file
REAL_DATE, REAL_DATETIME, REAL_TIME = "20040119", "20040119072730", "072730"


def _single(tag: tuple[int, ...]) -> int | None:
    return (tag[0] << 16) | tag[1] if len(tag) == 2 else None


def _value(vr: str, index: int) -> Any:
    """A valid value of ``vr`` that carries the mark where the VR can hold text."""
    text = f"{MARK}{index}"
    if vr in ("AE", "CS", "SH"):
        return text[:16]
    if vr in ("LO", "LT", "ST", "UT", "UC", "PN"):
        return f"{text} Wrenfield"
    if vr == "UR":
        return f"http://{MARK.lower()}.example/{index}"
    if vr == "UI":
        return f"1.2.826.0.1.3680043.2.1125.{index}"
    if vr == "DA":
        return REAL_DATE
    if vr == "DT":
        return REAL_DATETIME
    if vr == "TM":
        return REAL_TIME
    if vr == "AS":
        return "042Y"
    if vr in ("DS", "IS"):
        return "42"
    if vr in ("US", "SS", "UL", "SL", "FL", "FD", "SV", "UV"):
        return 42
    if vr in ("OB", "OW", "UN", "OD", "OF", "OL", "OV"):
        return f"{MARK}{index:04d}".encode()[:8]
    if vr == "AT":
        return 0x00100010
    if vr == "SQ":
        item = Dataset()
        item.CodeMeaning = f"{text} nested"
        item.ReferencedSOPInstanceUID = f"1.2.826.0.1.3680043.2.1125.9{index}"
        return [item]
    raise AssertionError(f"no test value for VR {vr}")


@pytest.fixture(scope="module")
def filled() -> tuple[Dataset, dict[int, Any]]:
    """CT_small with every single-tag attribute of the profile's table set (those pydicom knows), a private tag, an
    overlay comment (a repeating group) and the pixel data it had."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    put: dict[int, Any] = {}
    for index, tag in enumerate(profile_actions()):
        number = _single(tag)
        # repeating groups below; the command set (group 0) is a network message's, the file meta (group 2) is
        # written by pydicom, and trailing padding (FFFC) is not an attribute a file carries in its dataset
        if number is None or tag[0] in (0x0000, 0x0002, 0xFFFC):
            continue
        try:
            vr = dictionary_VR(number).split(" or ")[0]
        except KeyError:  # retired attributes pydicom does not name: nothing to fill
            continue
        if number == 0x7FE00010:
            continue
        put[number] = _value(vr, index)
        ds.add_new(number, vr, put[number])
    ds.add_new(0x60004000, "LT", f"{MARK} overlay comment")
    block = ds.private_block(0x0099, "ACME 1.0", create=True)
    block.add_new(0x01, "LO", f"{MARK} private")
    return ds, put


@pytest.fixture(scope="module")
def stored(filled, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Dataset, bytes]:
    """The record and the file ingest wrote for it, read back from the data dir as a client of the claim check
    would."""
    ds, _ = filled
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    data = tmp_path_factory.mktemp("data")
    ingested = read(buffer.getvalue(), "cleveland", "application/dicom", data_root=data)
    assert ingested.rejected == [] and len(ingested.attachments) == 1
    asyncio.run(FileClaimChecks(data).store(ingested.attachments))
    [record] = ingested.records
    path = Path(record.imaging[0].uri.removeprefix("file://"))
    assert path.is_relative_to(data) and path.exists()
    content = path.read_bytes()
    return record, pydicom.dcmread(io.BytesIO(content)), content


def test_the_table_is_the_librarys_and_covers_the_basic_profile(filled) -> None:
    _, put = filled
    assert len(profile_actions()) > 600 and len(put) > 550  # Table E.1-1 has about 650 rows


def test_no_marked_value_survives_anywhere_in_the_stored_file(stored) -> None:
    _, _, content = stored
    assert MARK.encode() not in content and MARK.lower().encode() not in content
    assert b"Wrenfield" not in content


def test_every_attribute_of_the_table_is_removed_replaced_keyed_or_shifted(filled, stored) -> None:
    _, put = filled
    record, copy, _ = stored
    days = pseudonymize.date_shift_days(record.patient)
    unchanged = []
    for number, sent in put.items():
        if number not in copy:
            continue  # removed
        element = copy[number]
        got = element.value
        vr = element.VR
        if vr == "UI":
            assert got in ("", _keyed(sent)), hex(number)
        elif vr == "DA" and got not in ("", "00010101"):
            assert got == shift_dicom_date(sent, days) != sent, hex(number)
        elif vr == "DT" and got not in ("", "00010101010101.000000+0000"):
            assert got == shift_dicom_datetime(sent, days) != sent, hex(number)
        elif vr == "TM":
            assert got in ("", "000000.00", sent), hex(number)  # a whole-day shift keeps the time of day
        elif number == 0x00100020:
            assert got == record.patient  # PatientID: the pseudonym
        elif got == sent and not isinstance(got, int | float):
            unchanged.append(hex(number))
    assert unchanged == []


def _keyed(original: str) -> str:
    return f"2.25.{int(pseudonymize('cleveland', original, 'dicom-uid'), 16)}"


def test_study_series_and_instance_uids_are_the_records_keyed_ones_and_dates_move_with_the_record(
    filled, stored
) -> None:
    source, _ = filled
    record, copy, _ = stored
    [image] = record.imaging
    assert (copy.StudyInstanceUID, copy.SeriesInstanceUID, copy.SOPInstanceUID) == (
        image.study_uid,
        image.series_uid,
        image.instance_uid,
    )
    assert copy.StudyInstanceUID == _keyed(source.StudyInstanceUID)
    assert copy.file_meta.MediaStorageSOPInstanceUID == image.instance_uid
    days = pseudonymize.date_shift_days(record.patient)
    assert copy.StudyDate == shift_dicom_date(REAL_DATE, days) == record.recorded_at.strftime("%Y%m%d")
    assert copy.PatientID == record.patient and copy.PatientIdentityRemoved == "YES"
    assert copy.PatientBirthDate in ("", "00010101") and "PatientAge" not in copy
    assert {c.CodeValue for c in copy.DeidentificationMethodCodeSequence} == {"113100", "113107"}
    assert copy.LongitudinalTemporalInformationModified == "MODIFIED"


def test_private_tags_and_repeating_group_text_are_gone_and_pixels_still_decode(stored) -> None:
    _, copy, _ = stored
    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    assert not [e for e in copy if e.tag.is_private] and 0x60004000 not in copy
    assert (copy.pixel_array == source.pixel_array).all()


def test_the_record_takes_nothing_the_profile_removes_or_replaces() -> None:
    listed = {_single(tag) for tag in profile_actions()}
    assert [k for k in ACQUISITION if tag_for_keyword(k) in listed] == []
