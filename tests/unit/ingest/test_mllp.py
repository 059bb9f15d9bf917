"""HL7 v2 over MLLP without a broker: what each message is answered (original and enhanced mode), the ERR a person
reads, what is written where and when, and the listener on a real loopback socket with python-hl7's own client."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from functools import partial
from typing import Any

import hl7
import pytest
from hl7.mllp import open_hl7_connection

from services.cli.scenario import formats
from services.cli.scenario.heart import records_by_hospital
from services.ingest import mllp
from services.ingest.adapters.mllp_listener import MllpListeners
from services.ingest.documents import ReadOptions, read_document
from services.ingest.doors import Door
from services.ingest.metrics import DoorMetrics, IngestMetrics
from services.ingest.mllp import Outcome, Verdict
from services.ingest.mllp_intake import MllpIntake
from shared.metrics import ServiceMetrics
from shared.topics import CE_ID, CE_SOURCE, CONTENT_TYPE
from tests.support.factories.ingest import TABLES, fixture, pseudonymize
from tests.support.fakes import Acknowledgements, RecordingDeadLetters, RecordingPublisher, RecordingRaw
from tests.support.processes import free_port

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
HL7 = "x-application/hl7-v2+er7"
ADT = fixture("admission-and-result.mllp.hl7").split(b"\x1c\r")[0].lstrip(b"\x0b")
ORU = fixture("lipid-panel.oru.hl7")  # MSH-15 AL, MSH-16 NE: enhanced mode
ORIGINAL_ORU = formats.hl7_oru(records_by_hospital(1)["hungary"][0]).encode()  # the real UCI row, MSH-15/16 empty


def with_msh(message: bytes, **fields: str) -> bytes:
    """``message`` with MSH fields replaced: ``f9="X"`` sets MSH-10 (MSH-1 is the separator the split eats, so
    MSH-n is item n-1 of the split)."""
    segments = message.decode().split("\r")
    msh = segments[0].split("|")
    msh += [""] * (20 - len(msh))
    for name, value in fields.items():
        msh[int(name.removeprefix("f"))] = value
    segments[0] = "|".join(msh).rstrip("|")
    return "\r".join(segments).encode()


class Stack:
    def __init__(self, *, held: bool = False, failures: int = 0) -> None:
        self.acks = Acknowledgements(held=held, failures=failures)
        registry = ServiceMetrics("ingest").registry
        read = partial(read_document, pseudonymize=pseudonymize, max_bytes=2_000_000, options=ReadOptions(TABLES))
        self.metrics = DoorMetrics(registry)
        self.registry = registry
        door = Door(
            read,
            RecordingRaw(self.acks),
            RecordingDeadLetters(self.acks),
            RecordingPublisher(self.acks, "audit"),
            IngestMetrics(registry),
            "unit.ingest.raw",
            clock=lambda: NOW,
        )
        self.intake = MllpIntake(door, self.metrics, clock=lambda: NOW)

    @property
    def raw(self) -> list[tuple[bytes, dict[str, str], str]]:
        return self.acks.of("raw")

    @property
    def dead(self) -> list[Any]:
        return self.acks.of("dead")

    async def send(self, block: bytes, hospital: str = "hungary") -> list[hl7.Message]:
        return [hl7.parse(ack.decode()) for ack in await self.intake.receive(hospital, block)]


def msa(ack: hl7.Message) -> tuple[str, str]:
    segment = ack.segment("MSA")
    return str(segment(1)), str(segment(2))


def err(ack: hl7.Message, number: int = 0) -> Any:
    return ack.segments("ERR")[number]


# -- the verdict and the ACK ---------------------------------------------------------------------------------------
async def test_an_adt_a01_and_an_oru_r01_are_written_then_answered_aa() -> None:
    stack = Stack()
    [adt_ack] = await stack.send(ADT)
    [oru_ack] = await stack.send(ORIGINAL_ORU)
    assert msa(adt_ack) == ("AA", "ADT-1001")
    assert msa(oru_ack)[0] == "AA"
    assert "ERR" not in str(adt_ack) and "ERR" not in str(oru_ack)
    assert [document for document, _, _ in stack.raw] == [ADT, ORIGINAL_ORU]  # the bytes as they came
    _, headers, key = stack.raw[0]
    assert headers[CE_ID] == "mllp/ADT-1001" and headers[CE_SOURCE] == "hungary" and key == "hungary"
    assert headers[CONTENT_TYPE] == HL7
    assert str(adt_ack.segment("MSH")(9)) == "ACK^A01^ACK"
    assert str(adt_ack.segment("MSH")(5)) == "ADT" and str(adt_ack.segment("MSH")(6)) == "HUNGARY"  # back to sender
    assert stack.dead == []
    metrics = stack.registry
    assert metrics.get_sample_value("aimass_ingest_mllp_messages_total", {"hospital": "hungary", "ack": "AA"}) == 2


async def test_the_ports_hospital_is_the_sender_whatever_the_message_claims() -> None:
    stack = Stack()
    claiming = with_msh(ADT, f2="OTHERAPP", f3="cleveland")  # MSH-3 and MSH-4 say cleveland
    await stack.send(claiming, hospital="hungary")
    [(_, headers, key)] = stack.raw
    assert headers[CE_SOURCE] == "hungary" and key == "hungary"


async def test_a_malformed_message_is_dead_lettered_and_answered_ae_with_an_err_a_person_can_act_on() -> None:
    stack = Stack()
    no_pid = b"MSH|^~\\&|LAB|HU|AIMASS|AIMASS|20261101||ORU^R01|BAD-1|P|2.5\rOBR|1||X|2093-3^Chol^LN\r"
    [ack] = await stack.send(no_pid)
    assert msa(ack) == ("AE", "BAD-1")
    error = err(ack)
    assert str(error(3)) == "100^Segment sequence error^HL70357"  # ERR-3: table 0357
    assert str(error(4)) == "E"
    assert "comes before any PID" in ack.unescape(str(error(8)))  # ERR-8: ingest's own reason
    assert str(error(2)) == "OBR^1"  # ERR-2: where
    assert stack.raw == []
    [letter] = stack.dead
    assert letter.record.value == no_pid and "OBR: comes before any PID" in letter.reason
    assert dict((k, v.decode()) for k, v in letter.record.headers)[CE_ID] == "mllp/BAD-1"
    assert letter.record.topic == "unit.ingest.raw"  # where aimass replay sends it back to
    [audit] = stack.acks.of("audit")
    assert audit.event.outcome == "rejected" and audit.event.hospital == "hungary"


async def test_a_result_that_is_not_a_number_names_the_obx_field_and_the_rest_goes_on() -> None:
    stack = Stack()
    bad = ORIGINAL_ORU.decode().split("\r")
    obx = next(i for i, s in enumerate(bad) if s.startswith("OBX|1|NM"))
    parts = bad[obx].split("|")
    parts[5] = "high"
    bad[obx] = "|".join(parts)
    only_obx = [s for s in bad if not s.startswith("OBX")] + [bad[obx]]
    [ack] = await stack.send("\r".join(s for s in only_obx if s).encode())
    # ingest keeps the patient's record and dead-letters the OBX alone (the stream does): accepted, with a warning
    assert msa(ack)[0] == "AA"
    assert str(err(ack)(2)) == "OBX^1^5" and str(err(ack)(3)).startswith("102^Data type error")
    assert str(err(ack)(4)) == "W" and "not numeric for NM" in str(err(ack)(8))


async def test_a_message_with_one_bad_obx_is_accepted_with_a_warning_for_that_obx() -> None:
    stack = Stack()
    text = ORIGINAL_ORU.decode().rstrip("\r") + "\rOBX|99|NM|2093-3^Cholesterol^LN||lots|mg/dL|||||F\r"
    [ack] = await stack.send(text.encode())
    assert msa(ack)[0] == "AA"
    assert str(err(ack)(4)) == "W" and str(err(ack)(2)).startswith("OBX^")
    assert len(stack.raw) == 1 and stack.dead == []  # the stream dead-letters the OBX alone


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"f8": "ORM^O01"}, "200"),  # message type
        ({"f8": "ADT^A40"}, "201"),  # event of a type ingest reads
        ({"f10": "T"}, "202"),  # training: would become records of real patients
        ({"f11": "3.0"}, "203"),  # version
    ],
)
async def test_what_ingest_does_not_take_is_answered_ar_and_still_kept(changes: dict[str, str], code: str) -> None:
    stack = Stack()
    [ack] = await stack.send(with_msh(ADT, **changes))
    assert msa(ack) == ("AR", "ADT-1001")
    assert str(err(ack)(3)).startswith(f"{code}^")
    assert stack.raw == [] and len(stack.dead) == 1


async def test_without_a_control_id_a_resend_could_not_be_recognised_so_ae() -> None:
    stack = Stack()
    [ack] = await stack.send(with_msh(ADT, f9=""))
    assert msa(ack) == ("AE", "")
    assert str(err(ack)(3)).startswith("101^") and str(err(ack)(2)) == "MSH^1^10"
    [letter] = stack.dead
    assert dict(letter.record.headers)[CE_ID].decode().startswith("mllp/sha256-")


async def test_garbage_is_answered_ae_with_an_ack_of_ingests_own_and_kept() -> None:
    stack = Stack()
    [ack] = await stack.send(b"this is not HL7 at all")
    assert msa(ack) == ("AE", "") and str(ack.segment("MSH")(9)) == "ACK"
    assert len(stack.dead) == 1 and stack.dead[0].record.value == b"this is not HL7 at all"


async def test_two_messages_in_one_block_are_refused() -> None:
    stack = Stack()
    [ack] = await stack.send(ADT + b"\r" + ORIGINAL_ORU)
    assert msa(ack)[0] == "AE" and "one message per block" in str(err(ack)(8))


async def test_the_err_text_is_escaped_so_the_ack_parses() -> None:
    reason = "HL7 MSH-9: type A|B^C&D~E is not supported"
    ack = hl7.parse(mllp.build_ack(None, "AE", [mllp.AckError("200", reason)], NOW).decode())
    assert len(ack.segments("ERR")) == 1
    assert ack.unescape(str(ack.segment("ERR")(8))) == reason


@pytest.mark.parametrize(
    ("accept", "application", "outcome", "codes"),
    [
        ("", "", Outcome.STORED, ["AA"]),
        ("", "", Outcome.INVALID, ["AE"]),
        ("", "", Outcome.UNSUPPORTED, ["AR"]),
        ("", "", Outcome.NOT_STORED, ["AR"]),
        ("AL", "AL", Outcome.STORED, ["CA", "AA"]),
        ("AL", "AL", Outcome.INVALID, ["CA", "AE"]),  # kept safely (dead letter): committed; the content is wrong
        ("AL", "AL", Outcome.UNSUPPORTED, ["CR"]),  # no application acknowledgement after a reject
        ("AL", "AL", Outcome.NOT_STORED, ["CE"]),
        ("AL", "NE", Outcome.STORED, ["CA"]),
        ("NE", "AL", Outcome.STORED, ["AA"]),
        ("NE", "NE", Outcome.STORED, []),
        ("ER", "ER", Outcome.STORED, []),
        ("ER", "ER", Outcome.INVALID, ["AE"]),  # the commit succeeded: no CA asked for
        ("ER", "AL", Outcome.NOT_STORED, ["CE"]),
        ("SU", "SU", Outcome.STORED, ["CA", "AA"]),
        ("SU", "SU", Outcome.INVALID, ["CA"]),
        ("AL", "", Outcome.STORED, ["CA", "AA"]),  # an empty condition in enhanced mode: AL
    ],
)
def test_accept_and_application_acknowledgement_conditions(
    accept: str, application: str, outcome: Outcome, codes: list[str]
) -> None:
    header = mllp.read_header(with_msh(ADT, f14=accept, f15=application))
    assert mllp.acknowledgement_codes(Verdict(outcome, header)) == codes


async def test_enhanced_mode_commit_ack_then_application_ack_on_the_same_connection() -> None:
    stack = Stack()
    commit, application = await stack.send(with_msh(ORU, f15="AL"))
    assert msa(commit) == ("CA", "LAB-000917") and msa(application) == ("AA", "LAB-000917")
    assert str(commit.segment("MSH")(10)) != str(application.segment("MSH")(10))  # each ACK its own control id
    [only_commit] = await stack.send(ORU)  # AL, NE as the fixture sends it
    assert msa(only_commit)[0] == "CA"


async def test_the_ack_waits_for_the_broker_and_a_failed_write_is_answered_ar_re_send() -> None:
    stack = Stack(held=True)
    answering = asyncio.ensure_future(stack.send(ADT))
    await asyncio.sleep(0.05)
    assert not answering.done() and len(stack.raw) == 1  # written, not acknowledged: no ACK yet
    stack.acks.acknowledge_all()
    [ack] = await answering
    assert msa(ack)[0] == "AA"

    [ack] = await Stack(failures=1).send(ADT)
    assert msa(ack)[0] == "AR" and str(err(ack)(3)).startswith("207^") and "send it again" in str(err(ack)(8))
    [commit] = await Stack(failures=1).send(with_msh(ADT, f14="AL", f15="AL"))
    assert msa(commit)[0] == "CE"  # enhanced mode: no application acknowledgement for what was not stored


def test_error_codes_and_locations_of_ingests_reasons() -> None:
    assert mllp.error_location("HL7 OBX[2]-5.2 not numeric for NM") == ("OBX", "2", "5", "", "2")
    assert mllp.error_location("HL7 PID-3: no patient identifier") == ("PID", "1", "3")
    assert mllp.error_location("HL7 PID: missing, so the patient is unknown") == ("PID", "1")
    assert mllp.error_code("HL7 PID-3: no patient identifier", "schema") == "101"
    assert mllp.error_code("HL7 MSH-7: not an HL7 date/time", "schema") == "102"
    assert mllp.error_code("document of 9 bytes exceeds the limit", "oversized") == "104"


# -- the listener on a socket --------------------------------------------------------------------------------------
async def test_the_listener_answers_in_order_with_pythons_hl7_client_and_survives_stray_and_oversized_frames() -> None:
    stack = Stack()
    port = free_port()
    listeners = MllpListeners(stack.intake, {"hungary": port}, "127.0.0.1", 4096, stack.metrics)
    await listeners.start()
    try:
        assert listeners.listening() == {"hungary": port}
        reader, writer = await open_hl7_connection("127.0.0.1", port)
        sent = [with_msh(ORIGINAL_ORU, f9=f"ORDER-{n}") for n in range(5)]
        for message in sent:  # all written before any answer is read: the order is the listener's
            writer.writemessage(hl7.parse(message.decode()))
        await writer.drain()
        answers = [await asyncio.wait_for(reader.readmessage(), 10) for _ in sent]
        assert [msa(a) for a in answers] == [("AA", f"ORDER-{n}") for n in range(5)]
        assert [h[CE_ID] for _, h, _ in stack.raw] == [f"mllp/ORDER-{n}" for n in range(5)]
        assert stack.registry.get_sample_value("aimass_ingest_mllp_connections", {"hospital": "hungary"}) == 1

        writer.write(b"\n\n")  # stray bytes between frames (a keep-alive) are not a message
        writer.writemessage(hl7.parse(with_msh(ADT, f9="AFTER").decode()))
        writer.writeblock(b"MSH|" + b"x" * 8000)  # over the limit: dropped unread, answered
        writer.writemessage(hl7.parse(with_msh(ADT, f9="LAST").decode()))
        await writer.drain()
        assert msa(await asyncio.wait_for(reader.readmessage(), 10)) == ("AA", "AFTER")
        too_big = await asyncio.wait_for(reader.readmessage(), 10)
        assert msa(too_big)[0] == "AE" and "4096 bytes" in str(too_big.segment("ERR")(8))
        assert msa(await asyncio.wait_for(reader.readmessage(), 10)) == ("AA", "LAST")
        writer.close()
        await writer.wait_closed()
    finally:
        await listeners.stop()
    assert stack.registry.get_sample_value("aimass_ingest_mllp_listening", {"hospital": "hungary"}) == 0


async def test_a_port_that_cannot_be_bound_leaves_the_others_listening() -> None:
    stack = Stack()
    taken = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    busy = taken.sockets[0].getsockname()[1]
    free = free_port()
    listeners = MllpListeners(stack.intake, {"cleveland": busy, "hungary": free}, "127.0.0.1", 4096, stack.metrics)
    try:
        await listeners.start()
        assert listeners.listening() == {"hungary": free}
        assert stack.registry.get_sample_value("aimass_ingest_mllp_listening", {"hospital": "cleveland"}) == 0
    finally:
        await listeners.stop()
        taken.close()
