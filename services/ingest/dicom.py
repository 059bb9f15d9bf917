"""DICOM Part 10 (pydicom): study, series, modality, body part, acquisition parameters and pixel statistics of one
instance; its pixel data, if larger than ``claim_check_bytes``, becomes a de-identified file for the data dir (claim
check) that the record references (pure: the file's bytes are returned, the handler stores them).

De-identification follows the DICOM PS3.15 Basic Application Level Confidentiality Profile (Table E.1-1), as the
``dicom-anonymizer`` library generates its action table from the standard (``PROFILE_VERSION``), with the Retain
Longitudinal Temporal Information with Modified Dates Option: every date the profile keeps in some form moves by the
patient's own offset (``dates.py``, the same as the record's), times of day stay, birth dates go. Two actions are
ingest's own, because the library's are random per process: every UID outside DICOM's own 1.2.840.10008 root becomes
a keyed UID (the same study always gets the same replacement, in the record and in the file, and nobody can go back),
and PatientID becomes the pseudonym. Every person name anywhere, nested sequences included, is removed as well.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

import numpy as np
import pydicom
from dicomanonymizer import simpledicomanonymizer as basic_profile
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.multival import MultiValue
from pydicom.uid import DeflatedExplicitVRLittleEndian

from services.ingest.dates import shift_dicom_date, shift_dicom_datetime
from services.ingest.parsed import Attachment, ParseContext, ParsedDocument, ParsedRecord
from services.ingest.pseudonym import OLDEST_REPORTED_AGE
from shared.errors import RejectedInput
from shared.schemas import ImagingReference, IncomingRecord

DICOM_CONTENT_TYPE = "application/dicom"
STANDARD_UID_ROOT = "1.2.840.10008."  # DICOM's own UIDs (SOP classes, transfer syntaxes): not about anyone
PROFILE_VERSION = "dicomfields_2026c"  # the library's newest table: PS3.15 2026c, Table E.1-1
Tag = tuple[int, ...]
Action = Callable[[Dataset, Tag], None]
# PS3.16 CID 7050 "De-identification Method": what was done, for whoever reads the file next.
DEIDENTIFICATION_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
)
DEIDENTIFICATION_METHOD = "PS3.15 Basic Profile; dates shifted per patient; keyed UIDs"  # LO: 64 at most
FILE_META_AE_TITLES = (
    "SourceApplicationEntityTitle",
    "SendingApplicationEntityTitle",
    "ReceivingApplicationEntityTitle",
)
# What the record takes from the instance besides UIDs, modality and body part: numbers and enumerated values only.
# None of them is in the profile's table (a unit test holds this), so the record never carries what the file loses.
ACQUISITION = (
    "SliceThickness",
    "SpacingBetweenSlices",
    "PixelSpacing",
    "KVP",
    "ExposureTime",
    "XRayTubeCurrent",
    "MagneticFieldStrength",
    "RepetitionTime",
    "EchoTime",
    "FlipAngle",
    "ImagingFrequency",
    "BitsAllocated",
    "BitsStored",
    "PhotometricInterpretation",
    "NumberOfFrames",
)
SEX = {"M": "male", "F": "female", "O": "other"}
# Bounds against decompression bombs: a deflated dataset of half a megabyte can declare gigabytes of zeros, and a few
# bytes can declare 65535 x 65535 pixels that a codec would allocate before finding out the data is not there.
MAX_INFLATED_BYTES = 64 * 1024 * 1024
MAX_STATISTICS_PIXELS = 16 * 1024 * 1024


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return str(value).strip() if value is not None else ""


def _uid(context: ParseContext, original: str) -> str:
    """A UUID-derived UID (2.25.<128-bit integer>) from the keyed hash of the original: stable, not reversible."""
    return f"2.25.{int(context.pseudonymize(context.hospital, original, 'dicom-uid'), 16)}"


def _age(ds: Dataset) -> tuple[date | None, int | None]:
    birth = _text(ds, "PatientBirthDate")
    if len(birth) >= 8 and birth[:8].isdigit():
        try:
            return date(int(birth[:4]), int(birth[4:6]), int(birth[6:8])), None
        except ValueError:
            pass
    age = _text(ds, "PatientAge")  # e.g. 061Y, 006M
    if len(age) == 4 and age[:3].isdigit():
        return None, int(age[:3]) if age[3] == "Y" else 0
    return None, None


def _when(ds: Dataset) -> datetime | None:
    for day_key, time_key in (
        ("StudyDate", "StudyTime"),
        ("AcquisitionDate", "AcquisitionTime"),
        ("ContentDate", "ContentTime"),
    ):
        day, clock = _text(ds, day_key), _text(ds, time_key).split(".")[0].ljust(6, "0")[:6]
        if len(day) == 8 and day.isdigit():
            try:
                stamp = f"{day}{clock}" if clock.isdigit() else f"{day}000000"
                return datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
            except ValueError:
                continue
    return None


def _acquisition(ds: Dataset) -> dict[str, float | str]:
    out: dict[str, float | str] = {}
    for keyword in ACQUISITION:
        value = ds.get(keyword)
        if value is None or value == "":
            continue
        try:
            out[keyword] = float(value)
        except (TypeError, ValueError):
            out[keyword] = "\\".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)[:64]
    return out


def _declared_pixels(ds: Dataset) -> int | None:
    try:
        return (
            int(ds.get("Rows") or 0)
            * int(ds.get("Columns") or 0)
            * max(int(ds.get("NumberOfFrames") or 1), 1)
            * max(int(ds.get("SamplesPerPixel") or 1), 1)
        )
    except (TypeError, ValueError):
        return None


def _pixel_statistics(ds: Dataset) -> dict[str, float]:
    """Mean, spread and range in modality units (rescale applied); empty when the pixels cannot be decoded here
    (a compressed transfer syntax without its codec) or are declared too many to decode."""
    declared = _declared_pixels(ds)
    if declared is None or declared > MAX_STATISTICS_PIXELS:
        return {}
    try:
        pixels = np.asarray(ds.pixel_array, dtype=np.float64)
    except Exception:  # decoding is optional: a missing codec must not lose the instance
        return {}
    if pixels.size == 0:
        return {}
    pixels = pixels * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0) or 0)
    return {
        "pixel_mean": float(pixels.mean()),
        "pixel_std": float(pixels.std()),
        "pixel_min": float(pixels.min()),
        "pixel_max": float(pixels.max()),
    }


@cache
def profile_actions() -> dict[Tag, Action]:
    """The Basic Profile's action for each tag (or tag mask, for repeating groups), as generated by the library."""
    return basic_profile.initialize_actions(PROFILE_VERSION)


def _vr(tag: Tag) -> str | None:
    try:
        return dictionary_VR((tag[0] << 16) | tag[1])
    except KeyError:  # a tag the standard has retired and pydicom no longer names
        return None


def _is_birth(tag: Tag) -> bool:
    return "Birth" in (keyword_for_tag((tag[0] << 16) | tag[1]) or "")


@cache
def _kept_by_ingest() -> frozenset[Tag]:
    """Tags whose profile action ingest replaces with its own, done beforehand in ``_keyed_and_shifted``: the UIDs
    the profile replaces (the library's replacements are random per process, so a study would not group across
    documents or restarts) and the dates and times it keeps in some form (Modified Dates Option: shifted, not
    dummied). What the profile deletes outright stays deleted, and birth dates and times are never kept."""
    own = set()
    for tag, action in profile_actions().items():
        if len(tag) != 2 or action is basic_profile.delete:
            continue
        vr = _vr(tag)
        if vr == "UI" or (vr in ("DA", "DT", "TM") and not _is_birth(tag)):
            own.add(tag)
    return frozenset(own)


def _keep(_: Dataset, __: Tag) -> None:
    """The value ``_keyed_and_shifted`` already wrote stays."""


def _rules() -> dict[Tag, Action]:
    rules = dict(profile_actions())
    rules.update(dict.fromkeys(_kept_by_ingest(), _keep))
    return rules


def _keyed_and_shifted(ds: Dataset, context: ParseContext, days: int) -> None:
    """Ingest's own part, on every element at every depth: person names removed, UIDs keyed, dates shifted (birth
    dates excepted: the profile empties those)."""

    def each(dataset: Dataset, element: Any) -> None:
        if element.VR == "PN":
            del dataset[element.tag]
            return
        if element.value in (None, "") or element.VR not in ("UI", "DA", "DT"):
            return
        if element.VR != "UI" and "Birth" in (element.keyword or ""):
            return
        values = list(element.value) if isinstance(element.value, MultiValue | list | tuple) else [element.value]
        if element.VR == "UI":
            out = [v if str(v).startswith(STANDARD_UID_ROOT) else _uid(context, str(v)) for v in values]
        elif element.VR == "DA":
            out = [shift_dicom_date(str(v), days) for v in values]
        else:
            out = [shift_dicom_datetime(str(v), days) for v in values]
        element.value = out if len(out) > 1 else out[0]

    ds.walk(each)


def deidentify(ds: Dataset, context: ParseContext, pseudonym: str, days: int) -> Dataset:
    """The dataset as the Basic Profile leaves it (with the Modified Dates Option), ingest's keyed UIDs and
    shifted dates, PatientID the pseudonym, private tags removed."""
    _keyed_and_shifted(ds, context, days)
    try:
        basic_profile.anonymize_dataset(ds, delete_private_tags=True, base_rules_gen=_rules)
    finally:
        # The library remembers every UID it replaced, for good, in a module-level dict (nested UIDs in sequences
        # it dummies): consistent within this instance is all that is needed, and a service must not grow forever.
        basic_profile.dictionary.clear()
    if getattr(ds, "file_meta", None) is not None:
        if "SOPInstanceUID" in ds:
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        for keyword in FILE_META_AE_TITLES:  # not in the profile's table, yet they name the sending station
            if keyword in ds.file_meta:
                delattr(ds.file_meta, keyword)
    ds.PatientID = pseudonym
    ds.PatientIdentityRemoved = "YES"
    ds.LongitudinalTemporalInformationModified = "MODIFIED"
    ds.DeidentificationMethod = DEIDENTIFICATION_METHOD
    codes = []
    for value, meaning in DEIDENTIFICATION_CODES:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
        codes.append(item)
    ds.DeidentificationMethodCodeSequence = codes
    return ds


def _check_inflated_size(document: bytes) -> None:
    """pydicom inflates a deflated dataset whole; inflate it here first, stopping at ``MAX_INFLATED_BYTES``.
    (``_read_file_meta_info`` is pydicom's own reader of the file meta group, unchanged since pydicom 1.)"""
    stream = io.BytesIO(document)
    try:
        read_preamble(stream, False)
        deflated = _read_file_meta_info(stream).get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian
    except Exception:  # not readable as Part 10: dcmread says why, below
        return
    if not deflated:
        return
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(stream.read(), MAX_INFLATED_BYTES + 1)
    except zlib.error:
        raise RejectedInput("DICOM: the deflated dataset is corrupt", "malformed") from None
    if len(inflated) > MAX_INFLATED_BYTES:
        raise RejectedInput(f"DICOM: the deflated dataset expands to more than {MAX_INFLATED_BYTES} bytes", "oversized")


def _read(document: bytes) -> Dataset:
    _check_inflated_size(document)
    try:
        return pydicom.dcmread(io.BytesIO(document))
    except InvalidDicomError:
        raise RejectedInput("DICOM: not a DICOM Part 10 file (no DICM preamble)", "malformed") from None
    except Exception as error:  # pydicom raises EOFError, struct.error, ValueError ... on truncated files
        raise RejectedInput(f"DICOM: cannot be read ({type(error).__name__})", "malformed") from None


def _instance(ds: Dataset, context: ParseContext) -> ParsedDocument:
    patient_id = _text(ds, "PatientID")
    if not patient_id:
        raise RejectedInput("DICOM (0010,0020) PatientID: empty, so the patient is unknown", "schema")
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID"):
        if not _text(ds, keyword):
            raise RejectedInput(f"DICOM {keyword}: missing", "schema")
    # Everything the record needs is read before the claim check de-identifies the dataset in place.
    birth, age = _age(ds)
    recorded_at, sex = _when(ds), SEX.get(_text(ds, "PatientSex")[:1].upper(), "unknown")
    pixel_bytes = len(ds.PixelData) if "PixelData" in ds else None
    statistics = _pixel_statistics(ds) if pixel_bytes else {}
    rows, columns = ds.get("Rows"), ds.get("Columns")
    reference = {
        "study_uid": _uid(context, _text(ds, "StudyInstanceUID")),
        "series_uid": _uid(context, _text(ds, "SeriesInstanceUID")),
        "instance_uid": _uid(context, _text(ds, "SOPInstanceUID")) if _text(ds, "SOPInstanceUID") else None,
        "modality": _text(ds, "Modality")[:16] or None,
        "body_part": _text(ds, "BodyPartExamined")[:64] or None,
        "rows": int(rows) if rows is not None else None,
        "columns": int(columns) if columns is not None else None,
        "pixel_bytes": pixel_bytes,
        "acquisition": _acquisition(ds),
        **statistics,
    }
    attachments = []
    if pixel_bytes is not None and pixel_bytes > context.claim_check_bytes:
        path = (
            context.data_root
            / "imaging"
            / reference["study_uid"]
            / reference["series_uid"]
            / f"{reference['instance_uid'] or 'instance'}.dcm"
        )
        buffer = io.BytesIO()
        pseudonym = context.pseudonymize(context.hospital, patient_id)
        deidentify(ds, context, pseudonym, context.pseudonymize.date_shift_days(pseudonym)).save_as(buffer)
        attachments.append(Attachment(path, buffer.getvalue()))
        reference["uri"] = path.as_uri() if path.is_absolute() else str(path)
    incoming = IncomingRecord(
        patient_id=patient_id[:256],
        recorded_at=recorded_at,
        birth_date=birth,
        age_years=min(age, OLDEST_REPORTED_AGE) if age is not None else None,
        sex=sex,
    )
    record = ParsedRecord(incoming, "instance", (ImagingReference(**reference),))
    return ParsedDocument(records=[record], attachments=attachments)


def parse_dicom(document: bytes, context: ParseContext) -> ParsedDocument:
    ds = _read(document)
    try:
        return _instance(ds, context)
    except RejectedInput:
        raise
    except Exception as error:  # pydicom converts element values lazily: a corrupt one fails only here
        raise RejectedInput(f"DICOM: an element cannot be decoded ({type(error).__name__})", "malformed") from None
