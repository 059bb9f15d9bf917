"""Who may do what on the broker and in Redis: one table that the local stack applies (``deploy/lib/secure.py``),
docs/security.md shows and the tests check against the services' own declarations and the real broker.

Kafka principals (SCRAM-SHA-512 users; ``User:<name>`` in ACLs):

- ``svc-<service>`` per service: reads exactly what it consumes, in its consumer group, writes exactly what it
  produces plus ``deadletter`` and ``audit``. It may CREATE only the literal names of the topics it consumes, which the
  admin has made already: FastStream declares what a subscriber reads at start, and the broker then answers "exists"
  instead of an authorization failure that every start would log as a warning. No service may make any other topic,
  delete or reconfigure anything.
- ``operator``: the command line (publish, simulate, tail, replay, quality, train, models): reads and writes every
  topic of the deployment, and replay's consumer group. Internal, like the services.
- ``svc-issuer``: the local token issuer; writes ``audit`` only.
- ``hospital-<id>`` per file in deploy/hospitals/: writes its own input topic ``ingest.raw.<id>`` and nothing else.
- ``admin``: the broker's own user and the super user that creates topics, users and ACLs (never a client's).

Kafka lets READ and WRITE imply DESCRIBE on the same resource, and WRITE on any topic imply IDEMPOTENT_WRITE on the
cluster (the idempotent producers' InitProducerId), so neither is listed separately.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path

from shared.settings import SERVICE_NAMES
from shared.topics import HOSPITAL_ID, Topic, group_id, hospital_input_topic, topic_name

ADMIN = "admin"
OPERATOR = "operator"
ISSUER = "svc-issuer"
REPLAY_GROUP = "aimass-replay"
"""``aimass replay``'s consumer group (services/cli/replay.py): one name whatever the prefix."""
SCRAM_MECHANISM = "SCRAM-SHA-512"


def service_principal(service: str) -> str:
    return f"svc-{service}"


def hospital_principal(hospital: str) -> str:
    return f"hospital-{hospital}"


def hospital_ids(directory: Path) -> list[str]:
    """The hospitals of the deployment: the stems of ``<directory>/*.yaml`` (deploy/hospitals)."""
    ids = sorted(path.stem for path in directory.glob("*.yaml"))
    for hospital in ids:
        if not HOSPITAL_ID.fullmatch(hospital):
            raise ValueError(f"{directory / hospital}.yaml: a hospital id may hold letters, digits, '-' and '_' only")
    return ids


class Resource(StrEnum):
    TOPIC = "topic"
    GROUP = "group"


class Pattern(StrEnum):
    LITERAL = "literal"
    PREFIXED = "prefixed"


class Operation(StrEnum):
    READ = "read"
    WRITE = "write"
    CREATE = "create"


@dataclasses.dataclass(frozen=True, order=True)
class KafkaAcl:
    """One ALLOW rule for ``User:<principal>`` from any host. Nothing is allowed that no rule names."""

    principal: str
    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation


@dataclasses.dataclass(frozen=True)
class ServiceAccess:
    consumes: tuple[Topic, ...]
    produces: tuple[Topic, ...]
    hospital_inputs: bool = False
    """Reads every hospital's input topic too (``<prefix>ingest.raw.*``): ingest."""
    groups: tuple[str, ...] = ()
    """Consumer groups beside its own, named as ``group_id`` names them: report's rest-hook delivery reads
    ``reports`` in ``<prefix>-report-delivery``."""


# Every service also writes deadletter (shared/events.DeadLetters) and audit (access auditing): added below.
SERVICE_ACCESS: dict[str, ServiceAccess] = {
    # ingest writes ingest.raw too: its front doors (MLLP, FHIR REST) put a hospital's document there for the stream.
    "ingest": ServiceAccess((Topic.INGEST_RAW,), (Topic.RECORDS_INGESTED, Topic.INGEST_RAW), hospital_inputs=True),
    "clean": ServiceAccess((Topic.RECORDS_INGESTED,), (Topic.RECORDS_CLEAN,)),
    "train": ServiceAccess((Topic.RECORDS_CLEAN, Topic.TRAIN_REQUESTS), (Topic.MODELS_RELEASED, Topic.TRAIN_REQUESTS)),
    "infer": ServiceAccess((Topic.RECORDS_CLEAN, Topic.MODELS_RELEASED), (Topic.PREDICTIONS,)),
    "fuse": ServiceAccess((Topic.PREDICTIONS, Topic.MODELS_RELEASED), (Topic.PREDICTIONS_FUSED,)),
    # report reads its own reports too: the rest-hook delivery to the hospitals' subscribers, in a group of its own;
    # it writes ingest.raw as a door: a clinician's answer on the questioning page, as that clinician's hospital.
    "report": ServiceAccess(
        (Topic.PREDICTIONS_FUSED, Topic.REPORTS), (Topic.REPORTS, Topic.INGEST_RAW), groups=("report-delivery",)
    ),
}
EVERY_SERVICE_WRITES = (Topic.DEADLETTER, Topic.AUDIT)
ISSUER_WRITES = (Topic.AUDIT,)


def kafka_principals(hospitals: Iterable[str]) -> list[str]:
    """Every SCRAM user of the deployment (not ``admin``, whose login is the broker's own)."""
    return [
        *(service_principal(s) for s in SERVICE_NAMES),
        OPERATOR,
        ISSUER,
        *(hospital_principal(h) for h in hospitals),
    ]


def service_writes(service: str) -> tuple[Topic, ...]:
    return tuple(dict.fromkeys((*SERVICE_ACCESS[service].produces, *EVERY_SERVICE_WRITES)))


def kafka_acls(prefix: str, hospitals: Iterable[str]) -> list[KafkaAcl]:
    """The whole ACL set of a deployment (topic prefix ``prefix``), sorted; the broker holds exactly these for it."""
    hospitals = list(hospitals)
    acls: set[KafkaAcl] = set()

    def topic(principal: str, t: Topic, operation: Operation) -> None:
        acls.add(KafkaAcl(principal, Resource.TOPIC, topic_name(t, prefix), Pattern.LITERAL, operation))

    for service in SERVICE_NAMES:
        principal, access = service_principal(service), SERVICE_ACCESS[service]
        for t in access.consumes:
            topic(principal, t, Operation.READ)
            topic(principal, t, Operation.CREATE)
        for t in service_writes(service):
            topic(principal, t, Operation.WRITE)
        if access.hospital_inputs:
            name = f"{topic_name(Topic.INGEST_RAW, prefix)}."
            acls.add(KafkaAcl(principal, Resource.TOPIC, name, Pattern.PREFIXED, Operation.READ))
            for hospital in hospitals:
                name = hospital_input_topic(hospital, prefix)
                acls.add(KafkaAcl(principal, Resource.TOPIC, name, Pattern.LITERAL, Operation.CREATE))
        for group in (service, *access.groups):
            acls.add(KafkaAcl(principal, Resource.GROUP, group_id(group, prefix), Pattern.LITERAL, Operation.READ))
    for t in ISSUER_WRITES:
        topic(ISSUER, t, Operation.WRITE)
    # The operator acts for the platform (replay re-publishes to whatever topic a dead letter came from); an empty
    # prefix cannot be a PREFIXED pattern, the literal '*' is Kafka's every-topic wildcard.
    every, pattern = (prefix, Pattern.PREFIXED) if prefix else ("*", Pattern.LITERAL)
    for operation in (Operation.READ, Operation.WRITE):
        acls.add(KafkaAcl(OPERATOR, Resource.TOPIC, every, pattern, operation))
    acls.add(KafkaAcl(OPERATOR, Resource.GROUP, REPLAY_GROUP, Pattern.LITERAL, Operation.READ))
    for hospital in hospitals:
        name = hospital_input_topic(hospital, prefix)
        acls.add(KafkaAcl(hospital_principal(hospital), Resource.TOPIC, name, Pattern.LITERAL, Operation.WRITE))
    return sorted(acls)


def deployment_topics(prefix: str, hospitals: Iterable[str]) -> list[str]:
    """Every topic the admin creates at start: the contract's and one input topic per hospital."""
    return [*(topic_name(t, prefix) for t in Topic), *(hospital_input_topic(h, prefix) for h in hospitals)]


# -- Redis ---------------------------------------------------------------------------------------------------------
REDIS_ADMIN = "admin"
_CONNECTION = "+@connection"  # AUTH, HELLO, PING, SELECT, CLIENT SETINFO (CLIENT KILL and LIST are @dangerous)
# Reads and writes of one's own keys and the project's Lua scripts; every command a script calls is checked against
# the same rules and key pattern. SCAN and RANDOMKEY name keys without a key argument, so the pattern cannot bound
# them: left out, as is everything @dangerous or @admin (KEYS, FLUSHALL, FLUSHDB, CONFIG, DEBUG, MONITOR, ACL, ...).
_DATA = "+@read +@write +eval +evalsha +script|load +script|exists -scan -randomkey"


@dataclasses.dataclass(frozen=True)
class RedisUser:
    name: str
    keys: str
    """Key pattern (``~...``), or empty for none."""
    commands: str

    def command_rules(self) -> str:
        """``-@dangerous -@admin`` last: no category granted before them brings one of those commands back."""
        return f"-@all {self.commands} -@dangerous -@admin"

    def rules(self) -> str:
        """The ACL rules after ``user <name> on <password>``."""
        keys = f"resetkeys {self.keys}" if self.keys else "resetkeys"
        return f"{keys} resetchannels {self.command_rules()}"


# Each service's keys live under aimass:<service>: (shared.redis.redis_key): clean's dedup, infer's prediction cache,
# fuse's joins. The other three only answer readiness checks (PING).
REDIS_KEYS = {"clean": "~aimass:clean:*", "infer": "~aimass:infer:*", "fuse": "~aimass:fuse:*"}


def redis_users() -> list[RedisUser]:
    """One user per service; ``default`` is switched off and ``admin`` (all commands) is the operator's."""
    users = []
    for service in SERVICE_NAMES:
        keys = REDIS_KEYS.get(service, "")
        commands = f"{_CONNECTION} {_DATA}" if keys else _CONNECTION
        users.append(RedisUser(service_principal(service), keys, commands))
    return users


# -- the table as docs/security.md shows it ------------------------------------------------------------------------
def _names(acls: Iterable[KafkaAcl], resource: Resource, operation: Operation) -> str:
    names = [
        f"`{a.name}*`" if a.pattern is Pattern.PREFIXED else f"`{a.name}`"
        for a in acls
        if a.resource is resource and a.operation is operation
    ]
    return ", ".join(names) or "—"


def markdown_tables(prefix: str = "aimass.", hospitals: Iterable[str] = ()) -> str:
    """The ACL and Redis tables of docs/security.md (``python -m shared.principals`` prints them; a test checks
    that the document holds exactly these)."""
    hospitals = list(hospitals)
    acls = kafka_acls(prefix, hospitals)
    principals = [ADMIN, *kafka_principals(hospitals)]
    lines = [
        "| principal | reads (topics) | consumer groups | writes (topics) | may create (existing names) |",
        "|---|---|---|---|---|",
    ]
    for principal in principals:
        if principal == ADMIN:
            lines.append("| `admin` | every topic (super user) | every group | every topic | topics, users, ACLs |")
            continue
        own = [a for a in acls if a.principal == principal]
        lines.append(
            f"| `{principal}` | {_names(own, Resource.TOPIC, Operation.READ)} "
            f"| {_names(own, Resource.GROUP, Operation.READ)} | {_names(own, Resource.TOPIC, Operation.WRITE)} "
            f"| {_names(own, Resource.TOPIC, Operation.CREATE)} |"
        )
    lines += ["", "| Redis user | keys | commands |", "|---|---|---|"]
    lines.append(f"| `{REDIS_ADMIN}` | every key | every command (operators only; no service has it) |")
    lines.append("| `default` | — | none: switched off, a client without a name and password gets nothing |")
    for user in redis_users():
        commands = user.command_rules().replace("|", "\\|")  # a bare | ends a markdown table cell
        lines.append(f"| `{user.name}` | {f'`{user.keys[1:]}`' if user.keys else '—'} | `{commands}` |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from shared.settings import PROJECT_ROOT

    print(markdown_tables("aimass.", hospital_ids(PROJECT_ROOT / "deploy" / "hospitals")), end="")
