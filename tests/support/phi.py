"""A PHI scanner for tests: finds the identifiers that went into a run in everything the run left behind.

Usage (from an async test, after the run has settled)::

    from tests.support.phi import scan, describe
    identifiers = [s for document in sent for s in formats.identity(document).strings()]
    hits = await scan(identifiers, settings, metrics_urls=[f"{p.url}/metrics" for p in processes.values()])
    assert hits == [], describe(hits)

``scan(identifiers, settings, metrics_urls=(), var_dir=None, ignore_case=True, inputs_too=False) -> list[Hit]``
looks in three places:

- **topics**: every topic whose name starts with ``settings.topic_prefix``, every partition from its beginning up to
  its end offset at the time of the scan: each record's key, value, and header names and values.
  Two topics hold what hospitals sent, by contract, and are not PHI leaks: ``ingest.raw`` (the input) is skipped and
  of ``deadletter`` only the headers the project adds (``aimass-*``) are scanned, since its value, key and original
  headers are the rejected message unchanged (for ``aimass replay``). ``inputs_too=True`` scans them whole.
- **logs**: every file under ``var_dir`` (default ``settings.var_dir``) whose name contains ``.log``, or that lies in
  a folder named ``log`` or ``logs``; a hit names the file and line.
- **metric labels**: every label value of every sample on each URL of ``metrics_urls`` (Prometheus text format).

``Hit(identifier, place, where)``: ``place`` is ``"topic"``, ``"log"`` or ``"metric"``; ``where`` says exactly where
(``<topic>[<partition>]@<offset> value|key|header <name>``, ``<file>:<line>``, ``<url> <metric>{<label>}``).

Matching is one pass per text: all identifiers in one compiled regular expression (an alternation, longest first), as
UTF-8 bytes and in their JSON-escaped forms (``\\u00e9``), case-insensitive by default (a name in capitals is still
a name). ``PhiMatcher`` is the matcher alone, for texts of your own. ``scan_blocking`` is ``scan`` for sync code.

**Dates** (``date_identifiers``): ingest shifts every date of a patient's care by a per-patient number of days
(±1..``max_shift_days``, never 0) and drops birth dates, so the real ones must not come out. But a shifted date is a
date too, and it can be another patient's real one: scanning for every real date would raise false alarms. So a
form of a real date is scanned only where nothing legitimate can produce it:

- a **time to the minute** (``2026-01-05T08:00``, ``2026-01-05 08:00``, HL7/DICOM ``202601050800``, in UTC) unless
  some other real time has the same minute of the day on a date within ``max_shift_days`` (a whole-day shift keeps
  the minute, so only such a time can be shifted onto it), or the platform itself was running at that minute (its
  own clock: ``received_at``, ``ce_time``, log lines);
- a **date alone** (``2026-01-05``, ``20260105``, ``01/05/2026``) unless some other real date of care lies within
  ``max_shift_days`` of it, or the platform ran that day; birth dates the same way (they are never shifted, but a
  shifted date of care could land on one).

The demo scenario gives every encounter a minute of the day of its own (``heart.ENCOUNTER_SPACING``), so all of its
times are scanned; its dates of care lie within weeks of each other, so those are left to the minute forms.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from shared.security import kafka_client_options
from shared.settings import Settings
from shared.topics import DLQ_HEADERS, Topic, topic_name

LOG_FOLDERS = {"log", "logs"}


@dataclass(frozen=True, order=True)
class Hit:
    identifier: str
    place: str  # "topic" | "log" | "metric"
    where: str


def _forms(identifier: str) -> set[bytes]:
    """The byte strings in which ``identifier`` can appear: as UTF-8, and JSON-escaped (ASCII or not)."""
    return {
        identifier.encode(),
        json.dumps(identifier)[1:-1].encode(),
        json.dumps(identifier, ensure_ascii=False)[1:-1].encode(),
    }


class PhiMatcher:
    """All identifiers at once: ``find(data)`` yields (identifier, offset) for every occurrence in one pass."""

    def __init__(self, identifiers: Iterable[str], ignore_case: bool = True) -> None:
        self.ignore_case = ignore_case
        self._identifier_of: dict[bytes, str] = {}
        for identifier in {i.strip() for i in identifiers if i and i.strip()}:
            for form in _forms(identifier):
                self._identifier_of[self._fold(form)] = identifier
        alternation = b"|".join(re.escape(f) for f in sorted(self._identifier_of, key=len, reverse=True))
        self._pattern = re.compile(alternation, re.IGNORECASE if ignore_case else 0) if alternation else None

    def _fold(self, data: bytes) -> bytes:
        return data.lower() if self.ignore_case else data

    def find(self, data: bytes | str) -> Iterator[tuple[str, int]]:
        if self._pattern is None or not data:
            return
        raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
        for match in self._pattern.finditer(raw):
            yield self._identifier_of[self._fold(match.group(0))], match.start()

    def found(self, data: bytes | str) -> set[str]:
        return {identifier for identifier, _ in self.find(data)}


def _is_log(path: Path, root: Path) -> bool:
    return path.is_file() and (".log" in path.name or bool(LOG_FOLDERS & set(path.relative_to(root).parts[:-1])))


def scan_logs(matcher: PhiMatcher, var_dir: Path) -> list[Hit]:
    hits = []
    for path in sorted(p for p in var_dir.rglob("*") if _is_log(p, var_dir)):
        data = path.read_bytes()
        for identifier, offset in matcher.find(data):
            line = data.count(b"\n", 0, offset) + 1
            hits.append(Hit(identifier, "log", f"{path}:{line}"))
    return hits


def scan_metrics_text(matcher: PhiMatcher, text: str, source: str) -> list[Hit]:
    hits = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for label, value in sample.labels.items():
                hits += [Hit(i, "metric", f"{source} {sample.name}{{{label}}}") for i in matcher.found(value)]
    return hits


async def scan_metrics(matcher: PhiMatcher, urls: Iterable[str], headers: Mapping[str, str] | None = None) -> list[Hit]:
    """``headers``: an operator's token, which ``/metrics`` asks for."""
    hits = []
    async with httpx.AsyncClient(timeout=10, headers=dict(headers or {})) as client:
        for url in urls:
            response = await client.get(url)
            response.raise_for_status()
            hits += scan_metrics_text(matcher, response.text, url)
    return hits


def _record_hits(matcher: PhiMatcher, record: object, where: str, whole: bool) -> list[Hit]:
    hits = []
    parts: list[tuple[str, bytes | None]] = []
    if whole:
        parts += [("value", record.value), ("key", record.key)]  # type: ignore[attr-defined]
    for name, value in record.headers:  # type: ignore[attr-defined]
        if whole or name in DLQ_HEADERS:
            parts += [(f"header name {name!r}", name.encode("utf-8", "replace")), (f"header {name}", value)]
    for label, data in parts:
        hits += [Hit(i, "topic", f"{where} {label}") for i in matcher.found(data or b"")]
    return hits


async def _partitions(settings: Settings, inputs_too: bool) -> list[TopicPartition]:
    """Every partition of every topic with the prefix (but ``ingest.raw`` unless ``inputs_too``)."""
    raw = topic_name(Topic.INGEST_RAW, settings.topic_prefix)
    admin = AIOKafkaAdminClient(**kafka_client_options(settings), request_timeout_ms=10_000)
    await admin.start()
    try:
        topics = await admin.describe_topics()
    finally:
        await admin.close()
    return sorted(
        TopicPartition(t["topic"], p["partition"])
        for t in topics
        for p in t["partitions"]
        if t["topic"].startswith(settings.topic_prefix) and (inputs_too or t["topic"] != raw)
    )


async def scan_topics(matcher: PhiMatcher, settings: Settings, inputs_too: bool = False) -> list[Hit]:
    dead = topic_name(Topic.DEADLETTER, settings.topic_prefix)
    partitions = await _partitions(settings, inputs_too)
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(
        **kafka_client_options(settings),
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    hits: list[Hit] = []
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        pending = {tp for tp in partitions if ends[tp] > 0}
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=1000)
            for tp, records in batches.items():
                for record in records:
                    where = f"{tp.topic}[{tp.partition}]@{record.offset}"
                    hits += _record_hits(matcher, record, where, whole=inputs_too or tp.topic != dead)
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return hits


async def scan(
    identifiers: Iterable[str],
    settings: Settings,
    metrics_urls: Iterable[str] = (),
    var_dir: Path | None = None,
    ignore_case: bool = True,
    inputs_too: bool = False,
    metrics_headers: Mapping[str, str] | None = None,
) -> list[Hit]:
    """Every place an identifier was found in the run's topics, logs and metric labels (see the module docstring)."""
    matcher = PhiMatcher(identifiers, ignore_case)
    hits = await scan_topics(matcher, settings, inputs_too)
    hits += scan_logs(matcher, var_dir or settings.var_dir)
    hits += await scan_metrics(matcher, metrics_urls, metrics_headers)
    return sorted(hits)


def scan_blocking(identifiers: Iterable[str], settings: Settings, **options: object) -> list[Hit]:
    """``scan`` for code that runs no event loop."""
    return asyncio.run(scan(identifiers, settings, **options))  # type: ignore[arg-type]


DAY_FORMS = ("%Y-%m-%d", "%Y%m%d", "%m/%d/%Y")
MINUTE_FORMS = ("%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y%m%d%H%M")
DICOM_TIMES = (
    ("StudyDate", "StudyTime"),
    ("SeriesDate", "SeriesTime"),
    ("AcquisitionDate", "AcquisitionTime"),
    ("ContentDate", "ContentTime"),
    ("InstanceCreationDate", "InstanceCreationTime"),
)


def day_forms(day: date) -> set[str]:
    return {day.strftime(form) for form in DAY_FORMS}


def minute_forms(when: datetime) -> set[str]:
    utc = when.astimezone(UTC)
    return {utc.strftime(form) for form in MINUTE_FORMS}


def _near(day: date, others: Iterable[date], max_shift_days: int) -> bool:
    """Whether a shift of one of ``others`` (never by 0 days) could land on ``day``."""
    return any(0 < abs((day - other).days) <= max_shift_days for other in others)


def date_identifiers(
    patients: Iterable[tuple[date | None, Iterable[datetime]]],
    max_shift_days: int,
    platform: tuple[datetime, datetime],
) -> set[str]:
    """The forms of the patients' real dates (birth date, times of care) that no legitimate output can contain: see
    the module docstring. ``platform`` is (from, to) of the platform's own clock during the run."""
    people = [(birth, [t.astimezone(UTC) for t in times]) for birth, times in patients]
    care_days = {t.date() for _, times in people for t in times}
    days_of_minute: dict[tuple[int, int], set[date]] = defaultdict(set)
    for _, times in people:
        for t in times:
            days_of_minute[t.hour, t.minute].add(t.date())
    began, ended = (t.astimezone(UTC) for t in platform)
    platform_days = {began.date() + timedelta(days=n) for n in range((ended.date() - began.date()).days + 1)}
    found: set[str] = set()
    for birth, times in people:
        if birth is not None and not _near(birth, care_days, max_shift_days) and birth not in platform_days:
            found |= day_forms(birth)
        for t in times:
            platform_minute = began - timedelta(minutes=1) <= t <= ended + timedelta(minutes=1)
            if not platform_minute and not _near(t.date(), days_of_minute[t.hour, t.minute], max_shift_days):
                found |= minute_forms(t)
            if not _near(t.date(), care_days, max_shift_days) and t.date() not in platform_days:
                found |= day_forms(t.date())
    return found


def dicom_dates(data: bytes) -> tuple[date | None, list[datetime]]:
    """(birth date, times of care) of a DICOM instance, for ``date_identifiers``: a date without its time counts as
    midnight (its minute forms are then those of midnight, its day forms the date's)."""
    import pydicom  # only the tests that scan DICOM input need it

    ds = pydicom.dcmread(io.BytesIO(data))
    times = []
    for day_keyword, time_keyword in DICOM_TIMES:
        day, clock = str(ds.get(day_keyword) or ""), str(ds.get(time_keyword) or "").split(".")[0].ljust(6, "0")[:6]
        if len(day) == 8 and day.isdigit():
            stamp = day + (clock if clock.isdigit() else "000000")
            times.append(datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=UTC))
    born = str(ds.get("PatientBirthDate") or "")
    birth = datetime.strptime(born, "%Y%m%d").date() if len(born) == 8 and born.isdigit() else None
    return birth, times


def describe(hits: list[Hit], limit: int = 20) -> str:
    """The hits as lines for an assertion message: what was found where (the identifiers are synthetic)."""
    lines = [f"{h.place}: {h.identifier!r} at {h.where}" for h in hits[:limit]]
    return "\n".join([f"{len(hits)} PHI hits", *lines, *(["..."] if len(hits) > limit else [])])
