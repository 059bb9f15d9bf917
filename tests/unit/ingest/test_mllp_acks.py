"""The pure parts of ingest's MLLP door, field by field: the ACK (MSH, MSA, ERR with its HL7 table 0357 code, place and
reason), MSH-15/MSH-16 (AL, NE, ER, SU), what a control id must be, headers that cannot be read, and the listener's
framing (a frame without a start block, frames many times the limit, a half frame, one message at a time per
connection while other connections go on) with a stand-in intake, no broker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import cast

import hl7
import pytest
from hl7.mllp import open_hl7_connection
from prometheus_client import CollectorRegistry

from services.ingest import mllp
from services.ingest.adapters.mllp_listener import MllpListeners
from services.ingest.doors import Door
from services.ingest.metrics import DoorMetrics
from services.ingest.mllp import AckError, Outcome, Verdict
from services.ingest.mllp_intake import MllpIntake
from shared.errors import RejectedInput
from tests.support.processes import free_port

NOW = datetime(2026, 11, 29, 12, 30, 15, 123456, tzinfo=UTC)
MSH = "MSH|^~\\&|LABSYS|KARD|AIMASS|AIMASS|20261101080000||ORU^R01^ORU_R01|{control}|P|2.5.1|||{accept}|{application}"
BODY = "\rPID|1||OKI-1^^^HU^MR||||19310215|M\rOBR|1||X|2093-3^Chol^LN\rOBX|1|NM|2093-3^Chol^LN||180|mg/dL|||||F\r"


def message(control: str = "CTRL-1", accept: str = "", application: str = "", **fields: str) -> bytes:
    """An ORU^R01 with MSH-10, MSH-15 and MSH-16 given; ``f11="T"`` replaces MSH-11 (and so on)."""
    msh = MSH.format(control=control, accept=accept, application=application).split("|")
    for name, value in fields.items():
        msh[int(name.removeprefix("f")) - 1] = value  # MSH-1 is the separator: MSH-n is item n-1
    return ("|".join(msh).rstrip("|") + BODY).encode()


def parsed(ack: bytes) -> hl7.Message:
    return hl7.parse(ack.decode())


def header(**kwargs: str) -> mllp.MessageHeader:
    return mllp.read_header(message(**kwargs))


# -- the ACK ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("code", ["AA", "AE", "AR", "CA", "CE", "CR"])
def test_the_ack_answers_the_sender_dated_by_our_clock_with_its_own_control_id(code: str) -> None:
    ack = parsed(mllp.build_ack(header(control="LAB-77"), code, [], NOW))
    msh, msa = ack.segment("MSH"), ack.segment("MSA")
    # MSH-3/4 ← the message's MSH-5/6, MSH-5/6 ← its MSH-3/4: the ACK goes back to whoever sent the message
    assert [str(msh(n)) for n in (3, 4, 5, 6)] == ["AIMASS", "AIMASS", "LABSYS", "KARD"]
    assert str(msh(7)) == "20261129123015"  # the injected clock, not the library's
    assert str(msh(9)) == "ACK^R01^ACK"
    assert (str(msh(11)), str(msh(12))) == ("P", "2.5.1")  # processing id and version as the sender's
    own = str(msh(10))
    assert own != "LAB-77" and len(own) <= 20 and own[0] == code[0]  # MSH-10 was ST(20) before v2.7
    assert (str(msa(1)), str(msa(2))) == (code, "LAB-77")  # MSA-2: the control id it answers
    assert "\rERR|" not in str(ack)
    assert len(msa) == 3  # no MSA-3 without an error


def test_the_err_segment_carries_the_table_0357_code_the_place_the_severity_and_the_reason() -> None:
    reason = "HL7 OBX[2]-5.2 not numeric for NM"
    error = AckError(mllp.DATA_TYPE_ERROR, reason, ("OBX", "2", "5", "", "2"))
    ack = parsed(mllp.build_ack(header(), "AE", [error], NOW))
    [err] = ack.segments("ERR")
    assert str(err(2)) == "OBX^2^5^^2"  # ERR-2 (ERL): segment, sequence, field, repetition, component
    assert str(err(3)) == "102^Data type error^HL70357"  # ERR-3 (CWE): table 0357
    assert str(err(4)) == "E"  # ERR-4: severity
    assert str(err(8)) == reason  # ERR-8: the sentence a person acts on
    assert str(err(1)) == "OBX^2^5^102&Data type error&HL70357"  # ERR-1 (ELD, v2.3 and before)
    assert str(ack.segment("MSA")(3)) == reason  # MSA-3: the text for receivers that read only MSA


@pytest.mark.parametrize(
    ("location", "legacy"),
    [
        (("OBR", "1"), "OBR^1^^100&Segment sequence error&HL70357"),
        ((), "^^^100&Segment sequence error&HL70357"),
        (("MSH", "1", "10"), "MSH^1^10^100&Segment sequence error&HL70357"),
    ],
)
def test_err_1_keeps_the_code_in_its_fourth_component_however_little_of_the_place_is_known(
    location: tuple[str, ...], legacy: str
) -> None:
    """ELD is segment ^ sequence ^ field ^ code: a receiver of v2.3 reads the code at component 4 only."""
    ack = parsed(mllp.build_ack(header(), "AE", [AckError(mllp.SEGMENT_SEQUENCE_ERROR, "why", location)], NOW))
    err = ack.segment("ERR")
    assert str(err(1)) == legacy
    assert str(err(1)(1)(4)) == "100&Segment sequence error&HL70357"


def test_one_err_per_error_in_order_with_warnings_marked_w_and_msa_3_at_most_80_characters() -> None:
    errors = [
        AckError(mllp.DATA_TYPE_ERROR, "HL7 OBX[1]-5 not numeric for NM " + "x" * 100, ("OBX", "1", "5"), "W"),
        AckError(mllp.REQUIRED_FIELD_MISSING, "HL7 OBX[3]-3: an observation needs an identifier", ("OBX", "3"), "W"),
    ]
    ack = parsed(mllp.build_ack(header(), "AA", errors, NOW))
    assert [str(e(3)(1)(1)) for e in ack.segments("ERR")] == ["102", "101"]
    assert [str(e(4)) for e in ack.segments("ERR")] == ["W", "W"]
    assert str(ack.segment("ERR")(8)) == errors[0].text  # ERR-8 whole
    assert str(ack.segment("MSA")(3)) == errors[0].text[:80]  # MSA-3 is ST(80)


def test_the_senders_own_separators_are_used_and_delimiters_in_a_reason_escaped() -> None:
    odd = message().decode().replace("|", "#").replace("^", "@").encode()  # MSH#@~\&#...: legal, unusual
    reason = "HL7 MSH-9: #@&~| are not a message type"
    ack = hl7.parse(mllp.build_ack(mllp.read_header(odd), "AR", [AckError("200", reason, ("MSH", "1", "9"))], NOW))
    assert str(ack.segment("MSH"))[3:8] == "#@~\\&"
    assert str(ack.segment("ERR")(2)) == "MSH@1@9"
    assert ack.unescape(str(ack.segment("ERR")(8))) == reason
    assert len(ack.segment("ERR")) == 9  # the reason's separators did not add fields


def test_without_a_readable_msh_the_ack_is_ingests_own_with_an_empty_msa_2() -> None:
    ack = parsed(mllp.build_ack(None, "AE", [AckError("100", "no MSH")], NOW))
    assert str(ack.segment("MSH")(9)) == "ACK" and str(ack.segment("MSH")(7)) == "20261129123015"
    assert (str(ack.segment("MSA")(1)), str(ack.segment("MSA")(2))) == ("AE", "")


def test_commit_and_application_acks_of_one_message_have_distinct_control_ids() -> None:
    commit, application = mllp.acknowledgements(Verdict(Outcome.STORED, header(accept="AL", application="AL")), NOW)
    ids = {str(parsed(a).segment("MSH")(10)) for a in (commit, application)}
    assert len(ids) == 2
    assert [str(parsed(a).segment("MSA")(1)) for a in (commit, application)] == ["CA", "AA"]


# -- MSH-15 / MSH-16 ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("accept", "application", "enhanced"),
    [("", "", False), ("AL", "", True), ("", "AL", True), ("NE", "NE", True)],
)
def test_either_msh_15_or_msh_16_valued_is_enhanced_mode(accept: str, application: str, enhanced: bool) -> None:
    assert header(accept=accept, application=application).enhanced is enhanced


@pytest.mark.parametrize(
    ("accept", "application", "outcome", "codes"),
    [
        ("", "AL", Outcome.STORED, ["CA", "AA"]),  # MSH-15 empty in enhanced mode: taken as AL
        ("al", "ne", Outcome.STORED, ["CA"]),  # the conditions are read case-blind
        ("XX", "??", Outcome.STORED, ["CA", "AA"]),  # unknown: answered (a sender waiting for nothing re-sends)
        ("SU", "SU", Outcome.NOT_STORED, []),  # SU asks for news of success only
        ("SU", "SU", Outcome.UNSUPPORTED, []),
        ("ER", "NE", Outcome.NOT_STORED, ["CE"]),
        ("ER", "NE", Outcome.UNSUPPORTED, ["CR"]),
        ("NE", "ER", Outcome.INVALID, ["AE"]),
        ("NE", "ER", Outcome.STORED, []),
        ("NE", "AL", Outcome.UNSUPPORTED, []),  # rejected at commit: no application ACK, even with AL
        ("AL", "AL", Outcome.NOT_STORED, ["CE"]),
    ],
)
def test_the_acknowledgements_msh_15_and_msh_16_ask_for(
    accept: str, application: str, outcome: Outcome, codes: list[str]
) -> None:
    verdict = Verdict(outcome, header(accept=accept, application=application))
    assert mllp.acknowledgement_codes(verdict) == codes
    assert [str(parsed(a).segment("MSA")(1)) for a in mllp.acknowledgements(verdict, NOW)] == codes


def test_an_unreadable_header_is_answered_in_original_mode() -> None:
    assert mllp.acknowledgement_codes(Verdict(Outcome.INVALID, None)) == ["AE"]


# -- the control id ------------------------------------------------------------------------------------------------
def test_a_control_id_of_199_printable_characters_is_taken_200_or_a_tab_is_not() -> None:
    longest = "C" * mllp.MAX_CONTROL_ID
    assert mllp.refusal(header(control=longest), mllp.segments_of(message(control=longest))) is None
    for control in ("C" * (mllp.MAX_CONTROL_ID + 1), "CTRL\t1"):
        verdict = mllp.refusal(header(control=control), mllp.segments_of(message(control=control)))
        assert verdict is not None and verdict.outcome is Outcome.INVALID
        [error] = verdict.errors
        assert (error.code, error.location) == (mllp.DATA_TYPE_ERROR, ("MSH", "1", "10"))


def test_the_event_id_is_the_control_id_and_without_one_the_bytes_digest() -> None:
    assert mllp.event_id("LAB-77") == mllp.event_id("LAB-77") == "mllp/LAB-77"  # a re-send: the same event
    first, again, other = message(control=""), message(control=""), message(control="", f7="20261101080001")
    assert mllp.unreadable_event_id(first) == mllp.unreadable_event_id(again)
    assert mllp.unreadable_event_id(first) != mllp.unreadable_event_id(other)
    assert mllp.unreadable_event_id(first).startswith("mllp/sha256-")


# -- what is refused before the reader is asked --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "outcome", "code", "place"),
    [
        ({"f9": "ORM^O01"}, Outcome.UNSUPPORTED, mllp.UNSUPPORTED_MESSAGE_TYPE, "9"),
        ({"f9": "ADT^A40"}, Outcome.UNSUPPORTED, mllp.UNSUPPORTED_EVENT_CODE, "9"),
        ({"f11": "T"}, Outcome.UNSUPPORTED, mllp.UNSUPPORTED_PROCESSING_ID, "11"),
        ({"f12": "3.0"}, Outcome.UNSUPPORTED, mllp.UNSUPPORTED_VERSION_ID, "12"),
        ({"f12": "2.10"}, Outcome.UNSUPPORTED, mllp.UNSUPPORTED_VERSION_ID, "12"),
    ],
)
def test_what_a_live_connection_refuses(fields: dict[str, str], outcome: Outcome, code: str, place: str) -> None:
    block = message(**fields)
    verdict = mllp.refusal(mllp.read_header(block), mllp.segments_of(block))
    assert verdict is not None and verdict.outcome is outcome
    assert (verdict.errors[0].code, verdict.errors[0].location) == (code, ("MSH", "1", place))
    assert mllp.acknowledgement_codes(verdict) == ["AR" if outcome is Outcome.UNSUPPORTED else "AE"]


@pytest.mark.parametrize("fields", [{"f11": "D"}, {"f12": "2.3.1"}, {"f12": "2.9"}, {"f12": ""}, {"f9": "adt^a08"}])
def test_what_it_takes(fields: dict[str, str]) -> None:
    block = message(**fields)
    assert mllp.refusal(mllp.read_header(block), mllp.segments_of(block)) is None


def test_two_messages_in_one_block_are_a_sequence_error() -> None:
    block = message(control="A") + message(control="B")
    verdict = mllp.refusal(mllp.read_header(block), mllp.segments_of(block))
    assert verdict is not None and verdict.errors[0].code == mllp.SEGMENT_SEQUENCE_ERROR


# -- garbled headers -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "block",
    [b"", b"\r\n", b"MSH", b"MSH|", b"MSH||^~\\&|X", b"PID|1||X\rMSH|^~\\&|A|B", b"\x00\x01\x02 binary", b"msh|^~\\&|"],
)
def test_a_block_without_a_readable_msh_is_rejected_as_such(block: bytes) -> None:
    with pytest.raises(RejectedInput) as refused:
        mllp.read_header(block)
    assert "MSH" in refused.value.reason


def test_a_header_is_read_through_framing_characters_lf_segments_and_latin_1() -> None:
    block = b"\x0b\n" + message(control="LF-1").replace(b"\r", b"\n").replace(b"OKI-1", b"OKI-\xe9") + b"\x1c"
    read = mllp.read_header(block)
    assert (read.control_id, read.message_type, read.version) == ("LF-1", ("ORU", "R01"), "2.5.1")
    assert mllp.segments_of(block)[1].startswith("PID|1||OKI-\u00e9")  # not UTF-8: decoded as ISO 8859-1


@pytest.mark.parametrize(
    ("reason", "reason_class", "code"),
    [
        ("anything", "unsupported", mllp.UNSUPPORTED_MESSAGE_TYPE),
        ("document of 9 bytes exceeds the limit", "oversized", mllp.VALUE_TOO_LONG),
        ("the document is empty", "empty", mllp.REQUIRED_FIELD_MISSING),
        ("HL7 OBX[1]-5 not numeric for NM", "schema", mllp.DATA_TYPE_ERROR),
        ("HL7 OBR: comes before any PID", "malformed", mllp.SEGMENT_SEQUENCE_ERROR),
        ("HL7: something else entirely", "malformed", mllp.SEGMENT_SEQUENCE_ERROR),
        ("HL7: something else entirely", "schema", mllp.DATA_TYPE_ERROR),
    ],
)
def test_the_table_0357_code_of_each_kind_of_reason(reason: str, reason_class: str, code: str) -> None:
    assert mllp.error_code(reason, reason_class) == code


def test_an_oversized_frame_is_answered_ae_value_too_long_naming_the_limit() -> None:
    registry = CollectorRegistry()
    intake = MllpIntake(cast(Door, None), DoorMetrics(registry), clock=lambda: NOW)  # oversized() writes nothing
    [ack] = [parsed(a) for a in intake.oversized("hungary", 4096)]
    assert (str(ack.segment("MSA")(1)), str(ack.segment("MSA")(2))) == ("AE", "")
    assert str(ack.segment("ERR")(3)).startswith("104^Value too long")
    assert "4096 bytes" in str(ack.segment("ERR")(8)) and "AIMASS_MAX_MESSAGE_BYTES" in str(ack.segment("ERR")(8))
    assert registry.get_sample_value("aimass_ingest_mllp_messages_total", {"hospital": "hungary", "ack": "AE"}) == 1


# -- the listener's framing, with a stand-in intake ---------------------------------------------------------------
class StandInIntake(MllpIntake):
    """Answers AA for every block (original mode) after ``delays[control id]`` seconds; records what it was handed,
    when, and how many blocks of one connection's hospital it held at once."""

    def __init__(self, delays: dict[str, float] | None = None) -> None:
        self.delays = delays or {}
        self.blocks: list[tuple[str, bytes]] = []
        self.busy: dict[str, int] = {}
        self.most_at_once: dict[str, int] = {}
        self.gate: dict[str, asyncio.Event] = {}

    async def receive(self, hospital: str, block: bytes) -> list[bytes]:
        self.blocks.append((hospital, block))
        self.busy[hospital] = self.busy.get(hospital, 0) + 1
        self.most_at_once[hospital] = max(self.most_at_once.get(hospital, 0), self.busy[hospital])
        try:
            read = mllp.read_header(block)
            if read.control_id in self.gate:
                await self.gate[read.control_id].wait()
            await asyncio.sleep(self.delays.get(read.control_id, 0))
            return mllp.acknowledgements(Verdict(Outcome.STORED, read), NOW)
        finally:
            self.busy[hospital] -= 1

    def oversized(self, hospital: str, limit: int) -> list[bytes]:
        self.blocks.append((hospital, b"<oversized>"))
        return [mllp.build_ack(None, "AE", [AckError(mllp.VALUE_TOO_LONG, f"over {limit}")], NOW)]


class Listening:
    def __init__(self, intake: StandInIntake, hospitals: tuple[str, ...] = ("hungary",), limit: int = 2048) -> None:
        self.ports = {hospital: free_port() for hospital in hospitals}
        self.listeners = MllpListeners(intake, self.ports, "127.0.0.1", limit, DoorMetrics(CollectorRegistry()))

    async def __aenter__(self) -> dict[str, int]:
        await self.listeners.start()
        return self.ports

    async def __aexit__(self, *exc: object) -> None:
        await self.listeners.stop()


def answered(ack: hl7.Message) -> tuple[str, str]:
    return str(ack.segment("MSA")(1)), str(ack.segment("MSA")(2))


async def test_a_slow_message_is_answered_before_the_next_one_is_read() -> None:
    """Strictly one at a time: were the second handed over while the first was held, its ACK would come first."""
    intake = StandInIntake({"SLOW": 0.3})
    async with Listening(intake) as ports:
        reader, writer = await open_hl7_connection("127.0.0.1", ports["hungary"])
        for control in ("SLOW", "FAST-1", "FAST-2"):
            writer.writemessage(hl7.parse(message(control=control).decode()))
        await writer.drain()
        answers = [answered(await asyncio.wait_for(reader.readmessage(), 5)) for _ in range(3)]
        writer.close()
        await writer.wait_closed()
    assert answers == [("AA", "SLOW"), ("AA", "FAST-1"), ("AA", "FAST-2")]
    assert intake.most_at_once["hungary"] == 1


async def test_one_held_connection_does_not_hold_another() -> None:
    intake = StandInIntake()
    intake.gate["HELD"] = asyncio.Event()
    async with Listening(intake, ("hungary", "cleveland")) as ports:
        held_reader, held_writer = await open_hl7_connection("127.0.0.1", ports["hungary"])
        held_writer.writemessage(hl7.parse(message(control="HELD").decode()))
        await held_writer.drain()
        reader, writer = await open_hl7_connection("127.0.0.1", ports["cleveland"])
        writer.writemessage(hl7.parse(message(control="OTHER").decode()))
        await writer.drain()
        assert answered(await asyncio.wait_for(reader.readmessage(), 5)) == ("AA", "OTHER")
        intake.gate["HELD"].set()
        assert answered(await asyncio.wait_for(held_reader.readmessage(), 5)) == ("AA", "HELD")
        for w in (held_writer, writer):
            w.close()
            await w.wait_closed()
    assert [h for h, _ in intake.blocks] == ["hungary", "cleveland"]  # each port is its hospital


async def test_a_frame_without_its_start_block_is_still_a_message_and_bytes_before_a_start_block_are_dropped() -> None:
    intake = StandInIntake()
    async with Listening(intake) as ports:
        reader, writer = await open_hl7_connection("127.0.0.1", ports["hungary"])
        writer.write(message(control="NO-START") + b"\x1c\r")  # an engine that forgot 0x0B
        writer.write(b"noise\x0b" + message(control="AFTER-NOISE") + b"\x1c\r")
        await writer.drain()
        answers = [answered(await asyncio.wait_for(reader.readmessage(), 5)) for _ in range(2)]
        writer.close()
        await writer.wait_closed()
    assert answers == [("AA", "NO-START"), ("AA", "AFTER-NOISE")]
    assert [block for _, block in intake.blocks] == [message(control="NO-START"), message(control="AFTER-NOISE")]


async def test_a_frame_many_times_the_limit_is_dropped_unread_answered_once_and_the_next_one_read() -> None:
    intake = StandInIntake()
    async with Listening(intake, limit=2048) as ports:
        reader, writer = await open_hl7_connection("127.0.0.1", ports["hungary"])
        huge = message(control="HUGE").rstrip(b"\r") + b"\rNTE|1||" + b"\x1cx" * 40_000 + b"\r"  # 1C alone: no end
        writer.writeblock(huge)
        writer.writemessage(hl7.parse(message(control="NEXT").decode()))
        await writer.drain()
        too_big = await asyncio.wait_for(reader.readmessage(), 10)
        after = await asyncio.wait_for(reader.readmessage(), 10)
        writer.close()
        await writer.wait_closed()
    assert str(too_big.segment("MSA")(1)) == "AE" and "over 2048" in str(too_big.segment("ERR")(8))
    assert answered(after) == ("AA", "NEXT")
    assert [block for _, block in intake.blocks] == [b"<oversized>", message(control="NEXT")]


async def test_a_connection_closed_in_the_middle_of_a_message_hands_nothing_over_and_the_port_goes_on() -> None:
    intake = StandInIntake()
    async with Listening(intake) as ports:
        _, writer = await open_hl7_connection("127.0.0.1", ports["hungary"])
        writer.write(b"\x0b" + message(control="HALF")[:60])  # no end block: the engine died mid-write
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        reader, writer = await open_hl7_connection("127.0.0.1", ports["hungary"])
        writer.writemessage(hl7.parse(message(control="WHOLE").decode()))
        await writer.drain()
        assert answered(await asyncio.wait_for(reader.readmessage(), 5)) == ("AA", "WHOLE")
        writer.close()
        await writer.wait_closed()
    assert [block for _, block in intake.blocks] == [message(control="WHOLE")]  # the half was never judged
