"""Settings of the parser libraries that the service needs (called once, at wiring time)."""

from __future__ import annotations

import logging
import warnings

import hl7.containers
import hl7.util
import pydicom.config


def quiet_parser_libraries() -> None:
    """hl7 and pydicom log and warn quoting the values they stumble on, and those values are patient data.
    ingest reports every problem itself (a dead letter with a reason that names the place, not the value), so
    their own messages are switched off and pydicom stops validating values on read."""
    for name in ("pydicom", hl7.util.__file__, hl7.containers.__file__):
        logger = logging.getLogger(name)
        logger.disabled = True
        logger.propagate = False
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    warnings.filterwarnings("ignore", module=r"(pydicom|openpyxl|hl7)(\..*)?$")
