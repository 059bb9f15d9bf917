"""The three admin requests the local stack needs and aiokafka's admin client lacks: ACLs (describe, create, delete)
and SCRAM users (describe, upsert, delete), on aiokafka's own wire protocol classes.

Kafka 4.1's own tools for these (kafka-acls, kafka-configs) start a JVM each: 2–3 s per user on a 2-core machine,
and ``kafka-acls`` lives in kafka-tools, which drags Connect and Jetty in. One Python process does all of it in well
under a second. Every request is a documented Kafka API version the 4.1 broker speaks (ApiVersions: CreateAcls,
DescribeAcls and DeleteAcls 1–3, DescribeUserScramCredentials and AlterUserScramCredentials 0).
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from collections.abc import Iterable, Sequence
from typing import Any, TypeAlias

from aiokafka import AIOKafkaClient
from aiokafka.protocol.admin import (
    CreateAclsRequest_v1,
    DeleteAclsRequest_v1,
    DescribeAclsRequest_v1,
)
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    CompactArray,
    CompactBytes,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

# Kafka's enum codes (org.apache.kafka.common.resource.ResourceType, PatternType, acl.AclOperation, AclPermissionType).
RESOURCE_TYPES = {"any": 1, "topic": 2, "group": 3, "cluster": 4, "transactional_id": 5}
PATTERN_TYPES = {"any": 1, "match": 2, "literal": 3, "prefixed": 4}
OPERATIONS = {
    "any": 1,
    "all": 2,
    "read": 3,
    "write": 4,
    "create": 5,
    "delete": 6,
    "alter": 7,
    "describe": 8,
    "cluster_action": 9,
    "describe_configs": 10,
    "alter_configs": 11,
    "idempotent_write": 12,
}
PERMISSION_ANY, PERMISSION_ALLOW = 1, 3
SCRAM_MECHANISMS = {"SCRAM-SHA-256": (1, "sha256"), "SCRAM-SHA-512": (2, "sha512")}
SCRAM_ITERATIONS = 8192  # Kafka accepts 4096..16384


class AdminError(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True, order=True)
class Binding:
    """One ACL as the broker holds it: ALLOW ``operation`` on a resource to ``principal`` (``User:name``) from
    ``host`` (``*``)."""

    resource_type: str
    name: str
    pattern: str
    principal: str
    operation: str
    host: str = "*"

    def wire(self) -> tuple[int, str, int, str, str, int, int]:
        return (
            RESOURCE_TYPES[self.resource_type],
            self.name,
            PATTERN_TYPES[self.pattern],
            self.principal,
            self.host,
            OPERATIONS[self.operation],
            PERMISSION_ALLOW,
        )


_NAMES = {
    kind: {code: name for name, code in table.items()}
    for kind, table in (("resource", RESOURCE_TYPES), ("pattern", PATTERN_TYPES), ("operation", OPERATIONS))
}


class _Batch(Request[Any]):
    """A request whose struct is built already (aiokafka's ACL request builders take one ACL each)."""

    API_KEY = -1

    def __init__(self, struct: RequestStruct) -> None:
        self._struct = struct

    def prepare(self, versions: dict[int, tuple[int, int]]) -> Any:
        low, high = versions.get(self._struct.API_KEY, (0, -1))
        if not low <= self._struct.API_VERSION <= high:
            raise AdminError(f"the broker does not speak {type(self._struct).__name__} (its versions: {low}..{high})")
        return self._struct

    def build(self, request_struct_class: type[Any]) -> Any:  # pragma: no cover - prepare() is overridden
        return self._struct


async def _send(client: AIOKafkaClient, struct: RequestStruct) -> Response:
    node = next(iter(client.cluster.brokers())).nodeId
    return await client.send(node, _Batch(struct))


async def describe_acls(client: AIOKafkaClient) -> set[Binding]:
    """Every ALLOW ACL on the broker (this stack sets no DENY rules)."""
    request = DescribeAclsRequest_v1(
        RESOURCE_TYPES["any"], None, PATTERN_TYPES["any"], None, None, OPERATIONS["any"], PERMISSION_ANY
    )
    response = (await _send(client, request)).to_object()
    if response["error_code"]:
        raise AdminError(f"DescribeAcls failed: error {response['error_code']} {response['error_message'] or ''}")
    found = set()
    for resource in response["resources"]:
        for acl in resource["acls"]:
            if acl["permission_type"] != PERMISSION_ALLOW:
                continue
            found.add(
                Binding(
                    _NAMES["resource"][resource["resource_type"]],
                    resource["resource_name"],
                    _NAMES["pattern"][resource["resource_pattern_type"]],
                    acl["principal"],
                    _NAMES["operation"][acl["operation"]],
                    acl["host"],
                )
            )
    return found


async def create_acls(client: AIOKafkaClient, bindings: Sequence[Binding]) -> None:
    if not bindings:
        return
    response = (await _send(client, CreateAclsRequest_v1([b.wire() for b in bindings]))).to_object()
    failed = [(b, r) for b, r in zip(bindings, response["creation_responses"], strict=True) if r["error_code"]]
    if failed:
        binding, result = failed[0]
        raise AdminError(
            f"CreateAcls refused {len(failed)} ACL(s), e.g. {binding}: error {result['error_code']} "
            f"{result['error_message'] or ''}"
        )


async def delete_acls(client: AIOKafkaClient, bindings: Sequence[Binding]) -> None:
    if not bindings:
        return
    response = (await _send(client, DeleteAclsRequest_v1([b.wire() for b in bindings]))).to_object()
    failed = [r for r in response["filter_responses"] if r["error_code"]]
    if failed:
        raise AdminError(f"DeleteAcls failed: error {failed[0]['error_code']} {failed[0]['error_message'] or ''}")


# -- SCRAM users (KIP-554) -----------------------------------------------------------------------------------------
class _DescribeScramResponse(Response):
    API_KEY = 50
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("error_message", CompactString("utf-8")),
        (
            "results",
            CompactArray(
                ("user", CompactString("utf-8")),
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                ("credential_infos", CompactArray(("mechanism", Int8), ("iterations", Int32), ("tags", TaggedFields))),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _DescribeScramRequest(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 50
    API_VERSION = 0
    RESPONSE_TYPE = _DescribeScramResponse
    SCHEMA = Schema(
        ("users", CompactArray(("name", CompactString("utf-8")), ("tags", TaggedFields))), ("tags", TaggedFields)
    )


class _AlterScramResponse(Response):
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            CompactArray(
                ("user", CompactString("utf-8")),
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _AlterScramRequest(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = _AlterScramResponse
    SCHEMA = Schema(
        ("deletions", CompactArray(("name", CompactString("utf-8")), ("mechanism", Int8), ("tags", TaggedFields))),
        (
            "upsertions",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("mechanism", Int8),
                ("iterations", Int32),
                ("salt", CompactBytes),
                ("salted_password", CompactBytes),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


ScramUpsert: TypeAlias = tuple[str, int, int, bytes, bytes, dict[int, bytes]]

RESOURCE_NOT_FOUND = 91  # DescribeUserScramCredentials: a user with no credential


async def scram_users(client: AIOKafkaClient, mechanism: str) -> set[str]:
    """The users that have a ``mechanism`` credential."""
    response = (await _send(client, _DescribeScramRequest(None, {}))).to_object()
    if response["error_code"]:
        raise AdminError(f"DescribeUserScramCredentials failed: error {response['error_code']}")
    code = SCRAM_MECHANISMS[mechanism][0]
    return {r["user"] for r in response["results"] if any(c["mechanism"] == code for c in r["credential_infos"])}


def _upsertion(user: str, password: str, mechanism: str) -> ScramUpsert:
    # The broker stores keys derived from the salted password (RFC 5802); the password itself never leaves here.
    code, digest = SCRAM_MECHANISMS[mechanism]
    salt = secrets.token_bytes(32)
    salted = hashlib.pbkdf2_hmac(digest, password.encode(), salt, SCRAM_ITERATIONS)
    return (user, code, SCRAM_ITERATIONS, salt, salted, {})


async def alter_scram_users(
    client: AIOKafkaClient, mechanism: str, upsert: dict[str, str], delete: Iterable[str] = ()
) -> None:
    """Set ``upsert``'s users' passwords (creating the users) and remove ``delete``'s ``mechanism`` credential."""
    code = SCRAM_MECHANISMS[mechanism][0]
    deletions = [(user, code, {}) for user in delete]
    upsertions = [_upsertion(user, password, mechanism) for user, password in upsert.items()]
    if not deletions and not upsertions:
        return
    response = (await _send(client, _AlterScramRequest(deletions, upsertions, {}))).to_object()
    failed = [r for r in response["results"] if r["error_code"]]
    if failed:
        raise AdminError(
            f"AlterUserScramCredentials refused {failed[0]['user']}: error {failed[0]['error_code']} "
            f"{failed[0]['error_message'] or ''}"
        )
