"""Rest-hook subscriptions to a hospital's results (pure), in the shape of the FHIR Subscriptions R5 Backport for R4
(http://hl7.org/fhir/uv/subscriptions-backport): what a hospital may subscribe to, the notification each result
becomes, and when a failed delivery is tried again or given up.

A subscription is a FHIR R4 ``Subscription`` whose ``criteria`` is the platform's topic (``TOPIC``, the backport's
way) or plain ``RiskAssessment`` (classic R4), optionally narrowed to one task (``RiskAssessment?code=<task>``,
in the criteria or in the backport's ``backport-filter-criteria`` extension); its channel is a ``rest-hook`` to an
http(s) endpoint with ``application/fhir+json`` and the full resources. The hospital is the token's: a subscription
receives the RiskAssessments of that hospital's patients published after it was made.

A notification is a ``history`` Bundle: first the status (in R4 a ``Parameters`` resource with the
``backport-subscription-status-r4`` profile: the subscription, the topic, the event number), then the
RiskAssessment. Delivery is at least once: the Bundle's id and the event number are stable per (subscription,
result), so a receiver that gets one twice can tell.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.errors import describe_validation_error
from shared.schemas.reports import ReportMessage
from shared.tasks import TaskSpec
from shared.topics import derived_event_id

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
SUBSCRIPTION_PROFILE = f"{BACKPORT}/backport-subscription"
STATUS_PROFILE = f"{BACKPORT}/backport-subscription-status-r4"
FILTER_CRITERIA = f"{BACKPORT}/backport-filter-criteria"
PAYLOAD_CONTENT = f"{BACKPORT}/backport-payload-content"
TOPIC = "urn:aimass:SubscriptionTopic:risk-assessment"
"""The one topic: a new RiskAssessment (a report) of one of the hospital's patients."""
FHIR_JSON = "application/fhir+json"
HEADER = re.compile(r"^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\r\n]*)$")
RESERVED_HEADERS = {"content-type", "content-length", "host", "transfer-encoding", "connection"}
MAX_HEADERS = 10
MASK = "***"

RETRY_FIRST_SECONDS = 1.0
RETRY_CAP_SECONDS = 30.0
PARALLEL_PER_SUBSCRIPTION = 4
"""Deliveries in flight at once to one healthy endpoint; a failing one gets a single probe at a time."""


class SubscriptionRejected(ValueError):
    """A Subscription the platform cannot serve: a 400 with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StoredSubscription(BaseModel):
    """What is kept of a subscription (``headers`` are the EHR's secrets: kept, never shown)."""

    model_config = ConfigDict(frozen=True)

    id: str
    hospital: str
    client_id: str
    created_at: datetime
    endpoint: str
    headers: list[str]
    task: str | None = None
    reason: str
    status: Literal["active", "error"] = "active"
    error: str | None = None
    end: datetime | None = None


def new_subscription(
    body: bytes, tasks: Mapping[str, TaskSpec], hospital: str, client_id: str, now: datetime
) -> StoredSubscription:
    """The Subscription in ``body`` as the platform keeps it; ``SubscriptionRejected`` saying what to change."""
    from fhir.resources.R4B.subscription import Subscription  # a heavy module: loaded when a subscription comes

    try:
        resource = json.loads(body)
    except ValueError:
        raise SubscriptionRejected("the body is not JSON; send a FHIR R4 Subscription") from None
    if not isinstance(resource, dict) or resource.get("resourceType") != "Subscription":
        raise SubscriptionRejected("send a FHIR R4 Subscription (resourceType Subscription)")
    try:
        subscription = Subscription.model_validate(resource)
    except ValidationError as invalid:
        raise SubscriptionRejected("not a valid FHIR R4 Subscription: " + describe_validation_error(invalid)) from None
    channel = subscription.channel
    if channel.type != "rest-hook":
        raise SubscriptionRejected(f"channel.type {channel.type!r}: only rest-hook is served")
    endpoint = channel.endpoint or ""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SubscriptionRejected("channel.endpoint must be an absolute http(s) URL (https in production)")
    if (channel.payload or FHIR_JSON) != FHIR_JSON:
        raise SubscriptionRejected(f"channel.payload {channel.payload!r}: notifications are {FHIR_JSON}")
    content = _extension(resource.get("channel", {}).get("_payload"), PAYLOAD_CONTENT, "valueCode")
    if content not in (None, "full-resource"):
        raise SubscriptionRejected(f"payload content {content!r}: only full-resource is served")
    headers = [_header(h) for h in channel.header or []]
    if len(headers) > MAX_HEADERS:
        raise SubscriptionRejected(f"at most {MAX_HEADERS} channel.header values")
    filters = [
        f for f in [_extension(resource.get("_criteria"), FILTER_CRITERIA, "valueString")] if f is not None
    ] + _criteria_filter(subscription.criteria)
    task = _task(filters, tasks)
    if subscription.end is not None and subscription.end <= now:
        raise SubscriptionRejected("end is in the past")
    return StoredSubscription(
        id=uuid.uuid4().hex,
        hospital=hospital,
        client_id=client_id,
        created_at=now,
        endpoint=endpoint,
        headers=headers,
        task=task,
        reason=subscription.reason,
        end=subscription.end,
    )


def _extension(element: Any, url: str, value: str) -> str | None:
    if not isinstance(element, dict):
        return None
    for extension in element.get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") == url:
            return str(extension.get(value))
    return None


def _header(header: str) -> str:
    match = HEADER.match(header)
    if not match:
        raise SubscriptionRejected("each channel.header is 'Name: value' (one HTTP header, no line breaks)")
    if match.group(1).lower() in RESERVED_HEADERS:
        raise SubscriptionRejected(f"channel.header {match.group(1)!r} is set by the platform")
    return f"{match.group(1)}: {match.group(2)}"


def _criteria_filter(criteria: str) -> list[str]:
    """The filter a classic ``RiskAssessment?...`` criteria carries; none for the topic or a bare resource type."""
    if criteria == TOPIC or criteria == "RiskAssessment":
        return []
    if criteria.startswith("RiskAssessment?"):
        return [criteria]
    raise SubscriptionRejected(
        f"criteria {criteria!r}: subscribe to {TOPIC} (or RiskAssessment), optionally filtered by "
        "RiskAssessment?code=<task>"
    )


def _task(filters: Sequence[str], tasks: Mapping[str, TaskSpec]) -> str | None:
    chosen: set[str] = set()
    for text in filters:
        resource, _, query = text.partition("?")
        if resource != "RiskAssessment":
            raise SubscriptionRejected(f"filter {text!r}: the topic's resource is RiskAssessment")
        params = parse_qs(query, keep_blank_values=True)
        if set(params) - {"code"}:
            raise SubscriptionRejected(f"filter {text!r}: only code=<task> is supported")
        for value in params.get("code", []):
            chosen.add(value.rpartition("|")[2])  # urn:aimass:task|heart_disease or heart_disease
    if len(chosen) > 1:
        raise SubscriptionRejected("filter on one task per subscription")
    task = next(iter(chosen), None)
    if task is not None and task not in tasks:
        raise SubscriptionRejected(f"no task {task!r}; the tasks are {', '.join(sorted(tasks))}")
    return task


def as_fhir(subscription: StoredSubscription, base_url: str) -> dict[str, Any]:
    """The subscription as a FHIR R4 (backport) Subscription, its headers' values masked: they are the EHR's
    secrets, and whoever lists the subscriptions need not see them."""
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "id": subscription.id,
        "meta": {"profile": [SUBSCRIPTION_PROFILE]},
        "status": subscription.status,
        "reason": subscription.reason,
        "criteria": TOPIC,
        "channel": {
            "type": "rest-hook",
            "endpoint": subscription.endpoint,
            "payload": FHIR_JSON,
            "_payload": {"extension": [{"url": PAYLOAD_CONTENT, "valueCode": "full-resource"}]},
            "header": [f"{h.split(':', 1)[0]}: {MASK}" for h in subscription.headers] or None,
        },
        "error": subscription.error,
        "end": subscription.end.isoformat() if subscription.end else None,
    }
    if subscription.task:
        resource["_criteria"] = {
            "extension": [{"url": FILTER_CRITERIA, "valueString": f"RiskAssessment?code={subscription.task}"}]
        }
    resource["channel"] = {k: v for k, v in resource["channel"].items() if v is not None}
    return {k: v for k, v in resource.items() if v is not None}


def wants(subscription: StoredSubscription, message: ReportMessage, published_ms: int, now: datetime) -> bool:
    """Whether ``message`` (published at ``published_ms``) is for this subscription: its task, published after
    the subscription was made, before its end."""
    if subscription.task is not None and subscription.task != message.task:
        return False
    if subscription.end is not None and subscription.end <= now:
        return False
    return published_ms >= int(subscription.created_at.timestamp() * 1000)


def notification_id(subscription_id: str, report_id: str) -> str:
    """The notification Bundle's id: the same for every attempt and re-delivery of one result to one subscription."""
    return derived_event_id("report-delivery", subscription_id, report_id)


def notification(
    subscription: StoredSubscription, message: ReportMessage, event_number: int, base_url: str, now: datetime
) -> dict[str, Any]:
    """The R4 backport notification: a ``history`` Bundle of the status ``Parameters`` and the RiskAssessment."""
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.parameters import Parameters

    base = base_url.rstrip("/")
    focus = f"{base}/fhir/RiskAssessment/{message.report_id}"
    subscription_url = f"{base}/fhir/Subscription/{subscription.id}"
    status = {
        "resourceType": "Parameters",
        "id": derived_event_id("report-delivery-status", subscription.id, message.report_id),
        "meta": {"profile": [STATUS_PROFILE]},
        "parameter": [
            {"name": "subscription", "valueReference": {"reference": subscription_url}},
            {"name": "topic", "valueCanonical": TOPIC},
            {"name": "status", "valueCode": subscription.status},
            {"name": "type", "valueCode": "event-notification"},
            {"name": "events-since-subscription-start", "valueString": str(event_number)},
            {
                "name": "notification-event",
                "part": [
                    {"name": "event-number", "valueString": str(event_number)},
                    {"name": "timestamp", "valueInstant": now.astimezone(UTC).isoformat()},
                    {"name": "focus", "valueReference": {"reference": focus}},
                ],
            },
        ],
    }
    status = json.loads(Parameters.model_validate(status).model_dump_json(exclude_none=True))
    placeholder = {"resourceType": "Basic", "code": {"text": "placeholder"}}
    entries = [
        {
            "fullUrl": f"urn:uuid:{status['id']}",
            "request": {"method": "GET", "url": f"{subscription_url}/$status"},
            "response": {"status": "200"},
        },
        {
            "fullUrl": focus,
            "request": {"method": "PUT", "url": f"RiskAssessment/{message.report_id}"},
            "response": {"status": "200"},
        },
    ]
    # The RiskAssessment was validated when the report was made: the Bundle is validated around a placeholder, as
    # render/fhir.py's transaction does, and the resources put in.
    bundle = {
        "resourceType": "Bundle",
        "id": notification_id(subscription.id, message.report_id),
        "type": "history",
        "timestamp": now.astimezone(UTC).isoformat(),
        "entry": [{**e, "resource": placeholder} for e in entries],
    }
    checked = json.loads(Bundle.model_validate(bundle).model_dump_json(exclude_none=True))
    checked["entry"][0]["resource"] = status
    checked["entry"][1]["resource"] = message.risk_assessment
    return checked


class PendingDelivery(BaseModel):
    """One result for one subscription, with what a dead letter of it needs (the ``reports`` record as consumed)."""

    model_config = ConfigDict(frozen=True)

    subscription_id: str
    hospital: str
    report_id: str
    event_number: int
    first_at: float  # epoch seconds: first due
    due_at: float
    attempts: int = 0
    last_error: str | None = None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: str | None
    value: str  # the ReportMessage JSON as it was on the topic
    headers: list[tuple[str, str]]


# -- retries ----------------------------------------------------------------------------------------------------
def backoff(failures: int) -> float:
    """Seconds before the next try after ``failures`` failed ones: 1, 2, 4, ... capped at 30."""
    return min(RETRY_CAP_SECONDS, RETRY_FIRST_SECONDS * 2 ** max(0, failures - 1))


@dataclass(frozen=True)
class Decision:
    retry_at: float | None  # epoch seconds; None: give up (dead-letter)


def after_failure(first_at: float, failures: int, now: float, budget_seconds: float) -> Decision:
    """When to try again after the ``failures``-th failed try of a delivery first tried at ``first_at``; give up
    once the budget since the first try is spent (the next try would come after it)."""
    if now - first_at >= budget_seconds:
        return Decision(None)
    return Decision(min(now + backoff(failures), first_at + budget_seconds))


def give_up_reason(
    endpoint: str, subscription_id: str, attempts: int, seconds: float, last_error: str, service: str = "report"
) -> str:
    return (
        f"delivery to {endpoint} for subscription {subscription_id} failed {attempts} times over {seconds:.0f} s: "
        f"{last_error}; fix the endpoint, then `aimass replay --service {service} --reason delivery`"
    )


class EndpointHealth:
    """Per subscription: a healthy endpoint takes ``PARALLEL_PER_SUBSCRIPTION`` deliveries at once; after a failure
    it gets one probe at a time, each after the backoff of the failures in a row, so an endpoint that is down is not
    hammered with every pending delivery and holds no more than one of the sender's slots."""

    def __init__(self) -> None:
        self.failures = 0
        self.not_before = 0.0

    def allows(self, in_flight: int, now: float) -> bool:
        if self.failures == 0:
            return in_flight < PARALLEL_PER_SUBSCRIPTION
        return in_flight == 0 and now >= self.not_before

    def failed(self, now: float, probe: bool) -> None:
        """A try failed. Only a failed probe doubles the wait: the deliveries that were in flight together when the
        endpoint went down fail together, and count as one failure."""
        self.failures = self.failures + 1 if probe else max(self.failures, 1)
        self.not_before = now + backoff(self.failures)

    @property
    def failing(self) -> bool:
        return self.failures > 0

    def succeeded(self) -> None:
        self.failures = 0
        self.not_before = 0.0
