"""The parser libraries quote what they fail on; once ingest has quieted them, no log line or warning carries it."""

import contextlib
import logging
import warnings

from pydicom.data import get_testdata_file

from services.ingest.libraries import quiet_parser_libraries
from shared.errors import RejectedInput
from tests.support.factories.ingest import read

SECRET = "Zebedee-Quarrington"


def test_malformed_documents_leave_no_values_in_logs_or_warnings(caplog) -> None:
    quiet_parser_libraries()
    dicom = open(get_testdata_file("MR_small.dcm"), "rb").read()  # noqa: SIM115
    broken_uid = dicom.replace(b"1.2.840.10008.5.1.4.1.1.4", f"{SECRET[:25]}".encode(), 1)
    documents = [
        (
            f"MSH|^~\\&|A|B|C|D|2026||ORU^R01|1|P|2.5\rPID|1||X^^^^MR\rOBX|1|ST|1^a^LN||\\P{SECRET}\\".encode(),
            "x-application/hl7-v2+er7",
        ),
        (broken_uid, "application/dicom"),
    ]
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        quiet_parser_libraries()
        for body, content_type in documents:
            with contextlib.suppress(RejectedInput):
                read(body, "hungary", content_type)
    assert SECRET[:20] not in caplog.text
    assert not [w for w in caught if SECRET[:20] in str(w.message)]
