"""Writes docs/asyncapi.yaml: one AsyncAPI 3.0 document for the platform, merged from the six services.

Each service is built with ``services.<name>.app.create_service`` (nothing connects: building only declares), and
FastStream describes its publishers and subscribers; this script merges those documents by topic, names each
message after the CloudEvents type its publisher stamps, and adds the headers of the contract.

    .venv/bin/python deploy/asyncapi.py           # regenerate after changing a topic, publisher or schema
    .venv/bin/python deploy/asyncapi.py --check   # exit 1 when docs/asyncapi.yaml differs from the code
"""

from __future__ import annotations

import difflib
import importlib
import sys
import tempfile
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from shared.asyncapi import SPEC_VERSION, service_document
from shared.service import Service
from shared.settings import PROJECT_ROOT, SERVICE_NAMES, Settings
from shared.topics import (
    CE_ID,
    CE_SOURCE,
    CE_SPECVERSION,
    CE_TIME,
    CE_TYPE,
    CONTENT_TYPE,
    DLQ_ERROR,
    DLQ_ORIGINAL_OFFSET,
    DLQ_ORIGINAL_PARTITION,
    DLQ_ORIGINAL_TOPIC,
    DLQ_SERVICE,
    JSON,
    Topic,
    hospital_of_input_topic,
)

OUTPUT = PROJECT_ROOT / "docs" / "asyncapi.yaml"
KAFKA_BINDING = "0.5.0"
# The contract's formats on ingest.raw (CONTRACT.md, "What hospitals publish"); no project code publishes there.
HOSPITAL_CONTENT_TYPES = [
    "application/fhir+json",
    "x-application/hl7-v2+er7",
    "text/csv",
    "application/json",
    "application/dicom",
]
HOSPITAL_DOCUMENT = "hospital.document"
DEAD_LETTER = "aimass.deadletter"
ANY_BYTES = {"type": "string", "format": "binary"}


def reference_settings(var_dir: Path) -> Settings:
    """Defaults spelled out, so the document does not depend on the environment it is generated in."""
    return Settings(
        kafka_bootstrap="127.0.0.1:9092",
        kafka_security_protocol="PLAINTEXT",
        topic_prefix="aimass.",
        topic_partitions=3,
        var_dir=var_dir,
        pseudonym_key="asyncapi-generation-only",
    )


def build_services(settings: Settings) -> list[Service]:
    return [importlib.import_module(f"services.{name}.app").create_service(settings) for name in SERVICE_NAMES]


# -- headers ----------------------------------------------------------------------------------------------------
def _object(properties: dict[str, Any], required: Iterable[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required)}


def cloudevent_headers(ce_type: str, sources: list[str]) -> dict[str, Any]:
    return _object(
        {
            CE_SPECVERSION: {"const": "1.0"},
            CE_ID: {"type": "string", "description": "unique per event; consumers de-duplicate on it"},
            CE_SOURCE: {"enum": sources},
            CE_TYPE: {"const": ce_type},
            CE_TIME: {"type": "string", "format": "date-time"},
            CONTENT_TYPE: {"const": JSON},
        },
        [CE_SPECVERSION, CE_ID, CE_SOURCE, CE_TYPE, CE_TIME, CONTENT_TYPE],
    )


def dead_letter_headers() -> dict[str, Any]:
    headers = _object(
        {
            DLQ_ERROR: {"type": "string", "description": "why, in words a person can act on"},
            DLQ_SERVICE: {"enum": list(SERVICE_NAMES)},
            DLQ_ORIGINAL_TOPIC: {"type": "string"},
            DLQ_ORIGINAL_PARTITION: {"type": "string", "pattern": "^[0-9]+$"},
            DLQ_ORIGINAL_OFFSET: {"type": "string", "pattern": "^[0-9]+$"},
        },
        [DLQ_ERROR, DLQ_SERVICE, DLQ_ORIGINAL_TOPIC, DLQ_ORIGINAL_PARTITION, DLQ_ORIGINAL_OFFSET],
    )
    headers["additionalProperties"] = {"type": "string", "description": "the original message's headers"}
    return headers


def hospital_headers() -> dict[str, Any]:
    return _object(
        {
            CE_SOURCE: {"type": "string", "description": "the hospital's id"},
            CE_ID: {"type": "string", "description": "the hospital's message id; ingest assigns one if absent"},
            CONTENT_TYPE: {"enum": HOSPITAL_CONTENT_TYPES, "description": "selects the parser; sniffed when absent"},
        },
        [CE_SOURCE],
    )


# -- merging ----------------------------------------------------------------------------------------------------
class Merger:
    def __init__(self, prefix: str, partitions: int) -> None:
        self.prefix = prefix
        self.partitions = partitions
        self.schemas: dict[str, Any] = {}
        self.messages: dict[str, Any] = {
            DEAD_LETTER: {
                "name": DEAD_LETTER,
                "title": "Dead letter",
                "summary": "Original value and headers of a message a service could not process, plus "
                "why. Holds raw input: restricted.",
                "headers": dead_letter_headers(),
                "payload": ANY_BYTES,
            },
            HOSPITAL_DOCUMENT: {
                "name": HOSPITAL_DOCUMENT,
                "title": "Hospital document",
                "summary": "A document as the hospital has it (FHIR, HL7 v2, CSV, canonical JSON, "
                "DICOM); content-type selects the parser.",
                "headers": hospital_headers(),
                "payload": ANY_BYTES,
            },
        }
        self.channel_messages: dict[str, list[str]] = {
            Topic.DEADLETTER: [DEAD_LETTER],
            Topic.INGEST_RAW: [HOSPITAL_DOCUMENT],
        }
        # What a topic carries, in its publishers' words; its consumers' words where no project code publishes it.
        self.sent_descriptions: dict[str, list[str]] = {}
        self.received_descriptions: dict[str, list[str]] = {}
        self.operations: dict[str, Any] = {}
        self.sources: dict[str, list[str]] = {}

    def topic_of(self, address: str) -> str:
        """The contract topic of ``address``; each hospital's own input topic is described as ``ingest.raw``."""
        if hospital_of_input_topic(address, self.prefix) is not None:
            return Topic.INGEST_RAW.value
        return Topic(address.removeprefix(self.prefix)).value

    def add_schemas(self, document: dict[str, Any]) -> None:
        for name, schema in document.get("components", {}).get("schemas", {}).items():
            if name == "EmptyPayload" or ":" in name:  # FastStream's placeholders for raw-record handlers
                continue
            if self.schemas.setdefault(name, schema) != schema:
                raise ValueError(f"two different schemas are named {name!r}; rename one of the models")

    def add_publishers(self, service: Service) -> None:
        for event in service.published:
            topic = self.topic_of(event.topic)
            name = event.schema.__name__
            if name not in self.schemas:
                raise ValueError(f"{service.name}: FastStream did not describe {name} for {event.topic}")
            self.sources.setdefault(event.type, []).append(f"aimass/{service.name}")
            self.messages[event.type] = {
                "name": event.type,
                "title": name,
                "summary": event.description,
                "contentType": JSON,
                "payload": {"$ref": f"#/components/schemas/{name}"},
            }
            if event.type not in self.channel_messages.setdefault(topic, []):
                self.channel_messages[topic].append(event.type)

    def add_operations(self, service: Service, document: dict[str, Any]) -> None:
        groups = {name: sub.group_id for sub in service.broker.subscribers for name in sub.topic_names}
        published: dict[str, list[str]] = {}
        for event in service.published:  # a topic may carry two kinds of event (audit: ingest's and access)
            published.setdefault(self.topic_of(event.topic), []).append(event.type)
        for operation, channel in self._in_topic_order(document):
            topic = self.topic_of(channel["address"])
            receive = operation["action"] == "receive"
            messages = published.get(topic) if not receive else None
            entry: dict[str, Any] = {
                "action": operation["action"],
                "channel": {"$ref": f"#/channels/{topic}"},
                "summary": channel.get("description", ""),
                "messages": messages or topic,
            }
            if receive:
                group = groups.get(channel["address"])
                entry["bindings"] = {
                    "kafka": {
                        "groupId": {"type": "string", "enum": [group]}
                        if group
                        else {"type": "null", "description": "no consumer group: every replica reads every message"},
                        "bindingVersion": KAFKA_BINDING,
                    }
                }
            operation_id = f"{service.name}.{'consume' if receive else 'publish'}.{topic}"
            if operation_id in self.operations:
                if receive and hospital_of_input_topic(channel["address"], self.prefix) is not None:
                    continue  # a hospital's input topic: ingest.raw's operation speaks for it
                if receive:
                    raise ValueError(f"{service.name} declares {operation_id} twice")
                # The topic's second publisher: one operation sends both kinds of message; both descriptions count.
                first = self.operations[operation_id]
                first["summary"] = " ".join(sorted({first["summary"], entry["summary"]} - {""}))
            else:
                self.operations[operation_id] = entry
            self.channel_messages.setdefault(topic, [])
            if channel.get("description"):
                descriptions = self.received_descriptions if receive else self.sent_descriptions
                descriptions.setdefault(topic, []).append(channel["description"])

    def _in_topic_order(self, document: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(operation, its channel) pairs, consumed before produced, each in the contract's topic order: FastStream
        lists publishers in no stable order, and the document must not change between two runs."""
        topics = [t.value for t in Topic]
        pairs = [
            (operation, document["channels"][operation["channel"]["$ref"].rsplit("/", 1)[-1]])
            for operation in document.get("operations", {}).values()
        ]
        return sorted(
            pairs, key=lambda pair: (pair[0]["action"] != "receive", topics.index(self.topic_of(pair[1]["address"])))
        )

    def channels(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for topic in (t.value for t in Topic if t.value in self.channel_messages):
            address = self.prefix + topic
            descriptions = sorted(set(self.sent_descriptions.get(topic) or self.received_descriptions.get(topic, [])))
            result[topic] = {
                "address": address,
                "title": topic,
                "description": " ".join(descriptions),
                "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in self.channel_messages[topic]},
                "bindings": {
                    "kafka": {"topic": address, "partitions": self.partitions, "bindingVersion": KAFKA_BINDING}
                },
            }
        return result

    def resolved_operations(self) -> dict[str, Any]:
        for entry in self.operations.values():
            topic = entry["channel"]["$ref"].rsplit("/", 1)[-1]
            names = self.channel_messages[topic] if entry["messages"] == topic else entry["messages"]
            entry["messages"] = [{"$ref": f"#/channels/{topic}/messages/{name}"} for name in names]
        return self.operations

    def finished_messages(self) -> dict[str, Any]:
        for ce_type, sources in self.sources.items():
            self.messages[ce_type]["headers"] = cloudevent_headers(ce_type, sorted(set(sources)))
        return dict(sorted(self.messages.items()))


def project_version() -> str:
    return str(tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"])


def project_document(services: list[Service]) -> dict[str, Any]:
    settings = services[0].settings
    merger = Merger(settings.topic_prefix, settings.topic_partitions)
    documents = [service_document(s.name, s.broker) for s in services]
    for document in documents:
        merger.add_schemas(document)
    for service, document in zip(services, documents, strict=True):
        merger.add_publishers(service)
        merger.add_operations(service, document)
    return {
        "asyncapi": SPEC_VERSION,
        "info": {
            "title": "AI Mass",
            "version": project_version(),
            "description": (
                "Topics, messages and schemas of the AI Mass platform, generated from the code by "
                "deploy/asyncapi.py. Topic names carry the deployment's prefix (AIMASS_TOPIC_PREFIX, shown with "
                "its default `aimass.`). Every message the project produces has CloudEvents 1.0 binary-mode "
                "headers, is keyed by the patient pseudonym where one is known, and is delivered at least once: "
                "consumers de-duplicate on ce_id. Each service serves its own part at GET /asyncapi."
            ),
        },
        "defaultContentType": JSON,
        "servers": {
            "kafka": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "The Kafka cluster (AIMASS_KAFKA_BOOTSTRAP).",
                "variables": {"bootstrap": {"default": settings.kafka_bootstrap}},
            }
        },
        "channels": merger.channels(),
        "operations": merger.resolved_operations(),
        "components": {"messages": merger.finished_messages(), "schemas": dict(sorted(merger.schemas.items()))},
    }


class _PlainDumper(yaml.SafeDumper):
    """No YAML anchors: AsyncAPI readers (and people) expect every value spelled out."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(document: dict[str, Any]) -> str:
    return yaml.dump(
        document, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, width=120, default_flow_style=False
    )


def generate() -> str:
    with tempfile.TemporaryDirectory() as var_dir:
        return render(project_document(build_services(reference_settings(Path(var_dir)))))


def main(argv: list[str]) -> int:
    text = generate()
    if "--check" in argv:
        committed = OUTPUT.read_text() if OUTPUT.exists() else ""
        if committed == text:
            return 0
        sys.stdout.writelines(
            difflib.unified_diff(
                committed.splitlines(True),
                text.splitlines(True),
                "docs/asyncapi.yaml (committed)",
                "generated from the code",
            )
        )
        print(f"\n{OUTPUT} does not match the code: run .venv/bin/python deploy/asyncapi.py", file=sys.stderr)
        return 1
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
