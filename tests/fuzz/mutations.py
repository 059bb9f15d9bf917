"""Hypothesis strategies that mutate real documents: bytes (flip, cut, insert a format's special tokens, delete,
splice another seed in, repeat a chunk), JSON trees (replace or drop a node) and Kafka headers (control characters,
CRLF, path traversal, invalid UTF-8, lengths past the limits)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

TOKENS: dict[str, tuple[bytes, ...]] = {
    "json": (
        b"{",
        b"}",
        b"[",
        b"]",
        b'"',
        b":",
        b",",
        b"null",
        b"true",
        b"-1e400",
        b"1e309",
        b"NaN",
        b"-0",
        b"\\u0000",
        b"\\ud800",
        b'"resourceType"',
        b'"Bundle"',
        b'"entry"',
        b'"valueQuantity"',
        b"99999999999999999999",
    ),
    "hl7": (
        b"|",
        b"^",
        b"~",
        b"\\",
        b"&",
        b"\r",
        b"\n",
        b"\x0b",
        b"\x1c",
        b"MSH|^~\\&|",
        b"\rPID|",
        b"\rOBX|1|NM|",
        b"\rOBR|",
        b"\rPV1|",
        b"ORU^R01",
        b"ADT^A01",
        b"\\X0D\\",
        b"99999999999999",
    ),
    "csv": (b",", b";", b'"', b"\r\n", b"\n", b"\x00", b"=cmd|' /C calc'!A0", b"1e309", b"NaN", b"-", b"\t"),
    "dicom": (
        b"\x00",
        b"\xff\xff\xff\xff",
        b"DICM",
        b"\xfe\xff\x00\xe0",
        b"\xfe\xff\xdd\xe0",
        b"UL",
        b"OB",
        b"SQ",
        b"\x10\x00\x10\x00",
        b"\x28\x00\x10\x00",
        b"1.2.840.10008.1.2.1.99",
    ),
    "zip": (b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06", b"\x00", b"\xff", b"<row>", b"</sheetData>"),
}
ALL_TOKENS = (*(t for tokens in TOKENS.values() for t in tokens), b"\xef\xbb\xbf", b"\xc3\x28", b"\xed\xa0\x80")
MAX_REPEAT_BYTES = 256 * 1024
ACTIONS = ("flip", "cut", "insert", "delete", "splice", "repeat", "overwrite")


@st.composite
def mutated_bytes(
    draw: st.DrawFn, seeds: Sequence[bytes], tokens: Sequence[bytes] = ALL_TOKENS, actions: Sequence[str] = ACTIONS
) -> bytes:
    body = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 8))):
        action = draw(st.sampled_from(actions))
        at = draw(st.integers(0, max(len(body) - 1, 0)))
        if action == "flip" and body:
            body[at] = draw(st.integers(0, 255))
        elif action == "cut":
            del body[at:]
        elif action == "insert":
            body[at:at] = draw(st.sampled_from(tokens))
        elif action == "delete":
            del body[at : at + draw(st.integers(1, 256))]
        elif action == "splice":
            other = draw(st.sampled_from(seeds))
            start = draw(st.integers(0, len(other)))
            body[at:at] = other[start : start + draw(st.integers(0, 2048))]
        elif action == "repeat":
            chunk = bytes(body[at : at + draw(st.integers(1, 64))])
            body[at:at] = chunk * min(draw(st.integers(2, 10_000)), MAX_REPEAT_BYTES // max(len(chunk), 1))
        else:
            value = draw(st.binary(min_size=1, max_size=16))
            body[at : at + len(value)] = value
    return bytes(body)


json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(
        [
            "",
            "2026-13-45",
            "1900-01-01T25:61:00Z",
            "urn:uuid:x",
            "Patient/../../etc",
            "mm[Hg]",
            "mg/dL",
            "%",
            "\u0000",
            "\ud7ff",
            "\r\n",
            "9" * 400,
        ]
    )
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=16), children, max_size=4),
    max_leaves=20,
)


def _nodes(tree: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(tree, dict):
        for key, value in tree.items():
            out += _nodes(value, (*path, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            out += _nodes(value, (*path, index))
    return out


def _replace(tree: Any, path: tuple, value: Any, drop: bool) -> Any:
    if not path:
        return value
    parent = tree
    for step in path[:-1]:
        parent = parent[step]
    if drop:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return tree


@st.composite
def mutated_json(draw: st.DrawFn, seeds: Sequence[bytes]) -> bytes:
    """A JSON seed with a few of its nodes replaced by other JSON values or dropped, then maybe byte-mutated."""
    tree = json.loads(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        nodes = _nodes(tree)
        path = draw(st.sampled_from(nodes))
        drop = bool(path) and draw(st.booleans())
        tree = _replace(tree, path, None if drop else draw(json_values), drop)
    body = json.dumps(tree, allow_nan=True).encode()
    if draw(st.integers(0, 3)) == 0:
        body = draw(mutated_bytes([body], TOKENS["json"]))
    return body


HOSTILE_HEADER_VALUES = (
    b"",
    b" ",
    b"cleveland\r\nX-Injected: 1",
    b"cleveland\x00",
    b"\x1b[31mred",
    b"../../../etc/passwd",
    b"..\\..\\windows",
    b"/absolute/path",
    b"cleveland/../hungary",
    b"\xff\xfe\xfd",
    b"\xc3\x28",
    b"A" * 129,
    b"A" * 100_000,
    b"application/json\r\ncontent-type: text/csv",
    b"text/csv; charset=\x00",
    b"APPLICATION/FHIR+JSON",
    b"x-application/hl7-v2+er7; charset=utf-8",
    b"application/dicom;;;",
    b"\t\n\x0b\x0c\r",
    b"%2e%2e%2f",
)
header_values = st.sampled_from(HOSTILE_HEADER_VALUES) | st.binary(max_size=64) | st.text(max_size=64).map(str.encode)


@st.composite
def hostile_headers(draw: st.DrawFn) -> list[tuple[str, bytes | None]]:
    """Kafka headers as bytes, the way they arrive: any of the three that matter, maybe repeated or null."""
    names = ["ce_source", "ce_id", "content-type", "ce_type", "aimass-error", "x-\r\n-injected"]
    headers = [(name, draw(header_values | st.none())) for name in draw(st.lists(st.sampled_from(names), max_size=6))]
    if draw(st.booleans()):
        headers.append(("ce_source", draw(st.sampled_from([b"cleveland", b"hungary", b"va-long-beach"]))))
    return headers
