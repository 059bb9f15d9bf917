"""CDS Hooks 2.0 (pure): the discovery document, the shapes of a hook call and of its answer, and the cards a
patient's newest report makes.

The models follow the specification (https://cds-hooks.hl7.org/2.0/): what a CDS client sends is read leniently
(unknown fields, the spec's ``extension`` among them, are ignored) and checked where the service relies on it; what
the service answers is built from models that forbid anything the spec does not define, so an answer that validates
here is one a CDS client can read.

Each task file gives two services: ``patient-view`` (the task's newest result for the patient, with its review flags,
drivers, models, a signed link to the report and an order suggestion per missing input that has a LOINC code) and
``order-select`` (a card when a selected draft order is for one of the task's inputs: how the newest result used it,
or that it was computed without it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.report.view import InputLine, ReportView
from shared.errors import describe_validation_error
from shared.schemas.records import LOINC
from shared.tasks import TaskSpec
from shared.topics import derived_event_id

PATIENT_VIEW = "patient-view"
ORDER_SELECT = "order-select"
PREFETCH = {"patient": "Patient/{{context.patientId}}"}
"""The one thing the service reads from the EHR: the Patient, whose identifiers say which pseudonym is the patient's
(the same rule as ingest's, ``patient_identifier``)."""
MR = "MR"  # HL7 v2 table 0203: medical record number
SUMMARY_MAX = 140
HIGH_RISK = 0.8
TASK_SYSTEM = "urn:aimass:task"
REFERENCE = re.compile(r"^[A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")
USER_TYPES = {
    PATIENT_VIEW: ("Practitioner", "PractitionerRole", "Patient", "RelatedPerson"),
    ORDER_SELECT: ("Practitioner", "PractitionerRole"),
}


def _absolute(url: str) -> str:
    if not re.match(r"^https?://[^/\s]+", url):
        raise ValueError("an absolute http(s) URL")
    return url


AbsoluteUrl = Annotated[str, AfterValidator(_absolute)]
"""Kept as given (a signed link's query must not be re-encoded), checked to be absolute."""


class CdsRequestError(ValueError):
    """A hook call the service cannot answer: a 400 with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- what the service answers (strict: nothing the spec does not define) --------------------------------------------
class _Answer(BaseModel):
    """Field names are the spec's (camelCase)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Coding(_Answer):
    system: str | None = None
    code: str
    display: str | None = None


class Source(_Answer):
    label: str = Field(min_length=1)
    url: AbsoluteUrl | None = None
    icon: AbsoluteUrl | None = None
    topic: Coding | None = None


class Action(_Answer):
    type: Literal["create", "update", "delete"]
    description: str = Field(min_length=1)
    resource: dict[str, Any] | None = None
    resourceId: str | None = None

    @model_validator(mode="after")
    def _what(self) -> Action:
        if self.type in ("create", "update") and self.resource is None:
            raise ValueError(f"a {self.type} action carries the resource")
        if self.type == "delete" and not self.resourceId:
            raise ValueError("a delete action names the resource (resourceId)")
        return self


class Suggestion(_Answer):
    label: str = Field(min_length=1)
    uuid: str | None = None
    isRecommended: bool | None = None
    actions: list[Action] | None = None


class Link(_Answer):
    label: str = Field(min_length=1)
    url: AbsoluteUrl
    type: Literal["absolute", "smart"]
    appContext: str | None = None

    @model_validator(mode="after")
    def _context_for_smart(self) -> Link:
        if self.appContext is not None and self.type != "smart":
            raise ValueError("appContext is for SMART app links only")
        return self


class Card(_Answer):
    uuid: str | None = None
    summary: str = Field(min_length=1, max_length=SUMMARY_MAX)
    detail: str | None = None  # GitHub Flavored Markdown
    indicator: Literal["info", "warning", "critical"]
    source: Source
    suggestions: list[Suggestion] | None = None
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    overrideReasons: list[Coding] | None = None
    links: list[Link] | None = None

    @model_validator(mode="after")
    def _selection(self) -> Card:
        if self.suggestions and self.selectionBehavior is None:
            raise ValueError("a card with suggestions says how many may be chosen (selectionBehavior)")
        return self


class CdsResponse(_Answer):
    cards: list[Card]
    systemActions: list[Action] | None = None


class CdsService(_Answer):
    hook: str
    id: str = Field(pattern=r"^[A-Za-z0-9\-._]+$")
    title: str | None = None
    description: str
    prefetch: dict[str, str] | None = None
    usageRequirements: str | None = None


class CdsDiscovery(_Answer):
    services: list[CdsService]


# -- what a CDS client sends (lenient: extensions and unknown fields are ignored) ------------------------------------
class _Sent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class FhirAuthorization(_Sent):
    access_token: str = Field(min_length=1)
    token_type: Literal["Bearer"]
    expires_in: int
    scope: str
    subject: str
    patient: str | None = None


class PatientViewContext(_Sent):
    userId: str
    patientId: str = Field(min_length=1, max_length=256)
    encounterId: str | None = None


class OrderSelectContext(PatientViewContext):
    selections: list[str] = Field(min_length=1)
    draftOrders: dict[str, Any]

    @field_validator("draftOrders")
    @classmethod
    def _bundle(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("resourceType") != "Bundle":
            raise ValueError("draftOrders is a FHIR Bundle of the draft orders")
        return value


class CdsRequest(_Sent):
    hook: str
    hookInstance: str = Field(min_length=1)
    fhirServer: AbsoluteUrl | None = None
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _authorization_needs_server(self) -> CdsRequest:
        if self.fhirAuthorization is not None and self.fhirServer is None:
            raise ValueError("fhirAuthorization is for a fhirServer, and none is given")
        return self


# -- the services -------------------------------------------------------------------------------------------------
def service_id(task: str, hook: str) -> str:
    """``aimass-heart-disease`` (patient-view) and ``aimass-heart-disease-orders`` (order-select)."""
    base = f"aimass-{task.replace('_', '-')}"
    return base if hook == PATIENT_VIEW else f"{base}-orders"


def discovery(tasks: Mapping[str, TaskSpec]) -> CdsDiscovery:
    services = []
    for name in sorted(tasks):
        task = tasks[name]
        title = task.description or name
        services.append(
            CdsService(
                hook=PATIENT_VIEW,
                id=service_id(name, PATIENT_VIEW),
                title=f"AI Mass: {task.label.positive_label} risk",
                description=f"The fused risk of the patient's newest AI Mass result for {title}: review flags, the "
                "inputs that drove it, the models that answered, a link to the report, and an order suggestion for "
                "each missing input with a LOINC code.",
                prefetch=dict(PREFETCH),
                usageRequirements="A token of the platform's issuer for the EHR's hospital with "
                "system/RiskAssessment.read; the patient's Patient resource in prefetch (its MRN names the patient).",
            )
        )
        services.append(
            CdsService(
                hook=ORDER_SELECT,
                id=service_id(name, ORDER_SELECT),
                title=f"AI Mass: orders that inform the {task.label.positive_label} risk",
                description=f"When a selected draft ServiceRequest is for an input of the {title} models: how the "
                "patient's newest result used it, or that it was computed without it.",
                prefetch=dict(PREFETCH),
                usageRequirements="As for patient-view.",
            )
        )
    return CdsDiscovery(services=services)


def hook_of(service: str, tasks: Mapping[str, TaskSpec]) -> tuple[str, TaskSpec] | None:
    """``(hook, task)`` of a service id; ``None`` for an id the discovery does not list."""
    for name, task in tasks.items():
        for hook in (PATIENT_VIEW, ORDER_SELECT):
            if service_id(name, hook) == service:
                return hook, task
    return None


def read_request(body: bytes, hook: str) -> tuple[CdsRequest, PatientViewContext]:
    """The call and its context, checked against the hook the service is for; ``CdsRequestError`` otherwise."""
    try:
        request = CdsRequest.model_validate_json(body)
    except ValidationError as invalid:
        raise CdsRequestError("not a CDS Hooks request: " + describe_validation_error(invalid)) from None
    if request.hook != hook:
        raise CdsRequestError(f"this service answers the {hook} hook, and the request is for {request.hook!r}")
    shape = OrderSelectContext if hook == ORDER_SELECT else PatientViewContext
    try:
        context = shape.model_validate(request.context)
    except ValidationError as invalid:
        raise CdsRequestError(f"{hook} context: " + describe_validation_error(invalid)) from None
    kind, _, _ = context.userId.partition("/")
    if not REFERENCE.match(context.userId) or kind not in USER_TYPES[hook]:
        raise CdsRequestError(f"context.userId must be a reference to a {' or '.join(USER_TYPES[hook])}")
    return request, context


def prefetched_patient(request: CdsRequest, context: PatientViewContext) -> dict[str, Any] | None:
    """The Patient the EHR prefetched, checked to be the one in context; ``None`` when it sent none."""
    patient = (request.prefetch or {}).get("patient")
    if patient is None:
        return None
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        raise CdsRequestError("prefetch.patient must be the Patient resource (or null when the EHR has none)")
    if patient.get("id") not in (None, context.patientId):
        raise CdsRequestError("prefetch.patient is not the patient in context.patientId")
    return patient


def patient_identifier(patient: Mapping[str, Any]) -> str | None:
    """The id ingest pseudonymized for this patient: the identifier typed MR, else the first identifier, else the
    resource id -- ingest's rule for a FHIR Patient (services/ingest/fhir_values.py), kept equal by a test."""
    identifiers = [i for i in patient.get("identifier") or [] if isinstance(i, dict) and i.get("value")]
    for identifier in identifiers:
        codings = (identifier.get("type") or {}).get("coding") or []
        if any(isinstance(c, dict) and c.get("code") == MR for c in codings):
            return str(identifier["value"])
    if identifiers:
        return str(identifiers[0]["value"])
    return str(patient["id"]) if patient.get("id") else None


# -- cards --------------------------------------------------------------------------------------------------------
def source(base_url: str, task: TaskSpec) -> Source:
    title = task.description or task.name
    return Source(
        label="AI Mass risk models",
        url=base_url,
        topic=Coding(system=TASK_SYSTEM, code=task.name, display=title),
    )


def indicator(view: ReportView) -> Literal["info", "warning", "critical"]:
    """critical: a positive result of high risk that the models agree on; warning: a positive result, or one that
    needs review; info otherwise."""
    if view.label and view.probability >= HIGH_RISK and not view.needs_review:
        return "critical"
    if view.label or view.needs_review:
        return "warning"
    return "info"


def _short(text: str, limit: int = SUMMARY_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def summary(view: ReportView) -> str:
    review = ", needs review" if view.needs_review else ""
    verdict = "positive" if view.label else "negative"
    return _short(f"AI Mass: {view.probability:.0%} risk of {view.positive_label} ({verdict}){review}")


def _points(delta: float) -> str:
    return f"{delta * 100:+.1f} pts"


def detail(view: ReportView) -> str:
    """The card's markdown: the result, each review reason, what drove it, what was not measured, the models."""
    lines = [
        f"**{view.probability:.0%} risk of {view.positive_label}** ({view.verdict}): {view.method.replace('_', ' ')} "
        f"of {len(view.models)} model(s), agreement {view.agreement:.2f}; result of "
        f"{view.created_at.strftime('%Y-%m-%d %H:%M %Z').strip()}.",
    ]
    if view.needs_review:
        lines += ["", "**Needs review**", *(f"- {_md(r)}" for r in view.review_reasons or ["flagged by the fusion"])]
    if view.drivers:
        explained = view.attribution_model
        by = f" (occlusion on the {explained.site} model)" if explained else ""
        lines += [
            "",
            f"**What drove it**{by}",
            *(f"- {_md(d.label)}: {_md(d.value)}, {_points(d.delta)}" for d in view.drivers),
        ]
        if view.drivers_not_shown:
            lines.append(f"- and {view.drivers_not_shown} input(s) with smaller effects")
    else:
        lines += ["", "No attribution: the models' inputs were not available to explain this result."]
    if view.not_measured:
        lines += ["", f"**Not measured** (each model used its training reference): {_md(', '.join(view.not_measured))}"]
    if view.quality_flags:
        lines += [
            "",
            "**Data quality**",
            *(f"- {_md(f.kind)} {_md(f.field)}: {_md(f.detail)}" for f in view.quality_flags),
        ]
    models = "; ".join(
        f"{m.site} {m.version} (weight {m.weight:.2f}, {m.probability:.0%}"
        + (f", AUC {m.auc:.2f})" if m.auc is not None else ")")
        for m in view.models
    )
    lines += ["", f"**Models:** {_md(models)}", "", f"_{view.disclaimer}_"]
    return "\n".join(lines)


def _md(text: str) -> str:
    """Text from task files and models shown as text: markdown's link, emphasis and HTML characters escaped."""
    return re.sub(r"([\\`*_\[\]<>|#])", r"\\\1", text)


def order_suggestions(view: ReportView, patient_reference: str, uuid_of: Callable[[str], str]) -> list[Suggestion]:
    """An order per missing input that has a LOINC code: a draft ``ServiceRequest`` for the EHR's patient."""
    missing = set(view.not_measured)
    out = []
    for line in view.inputs:
        if line.label not in missing or line.system != LOINC or not line.code:
            continue
        resource = service_request(line, patient_reference)
        out.append(
            Suggestion(
                label=f"Order {line.label.lower()}",
                uuid=uuid_of(line.code),
                actions=[
                    Action(
                        type="create",
                        description=f"Order {line.label.lower()} (LOINC {line.code}): the {view.positive_label} risk "
                        "was computed without it.",
                        resource=resource,
                    )
                ],
            )
        )
    return out


def service_request(line: InputLine, patient_reference: str) -> dict[str, Any]:
    """A draft order for one input, validated as FHIR R4."""
    from fhir.resources.R4B.servicerequest import ServiceRequest  # imported when a card needs one: a heavy module

    resource = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "proposal",
        "code": {"coding": [{"system": line.system, "code": line.code, "display": line.label}], "text": line.label},
        "subject": {"reference": patient_reference},
    }
    ServiceRequest.model_validate(resource)
    return resource


def patient_view_card(
    view: ReportView,
    task: TaskSpec,
    base_url: str,
    report_link: str,
    patient_reference: str,
    hook_instance: str,
    questioning_link: str | None = None,
) -> Card:
    """The card of the patient's newest result of ``task``; with ``questioning_link``, a link to the questioning page
    when the result lacks inputs (the clinician answers there what the record does not say)."""
    suggestions = order_suggestions(
        view, patient_reference, lambda code: derived_event_id("cds", hook_instance, view.report_id, code)
    )
    return Card(
        uuid=derived_event_id("cds", hook_instance, view.report_id),
        summary=summary(view),
        detail=detail(view),
        indicator=indicator(view),
        source=source(base_url, task),
        suggestions=suggestions or None,
        selectionBehavior="any" if suggestions else None,
        links=[
            Link(label="Open the AI Mass report", url=report_link, type="absolute"),
            *(
                [Link(label="Answer what the record lacks", url=questioning_link, type="absolute")]
                if questioning_link and view.not_measured
                else []
            ),
        ],
    )


def no_report_card(task: TaskSpec, base_url: str, hook_instance: str) -> Card:
    return Card(
        uuid=derived_event_id("cds", hook_instance, task.name, "none"),
        summary=_short(f"AI Mass: no {task.label.positive_label} result for this patient yet"),
        detail="AI Mass has no result of this task for the patient at this hospital: no record of the patient has "
        "reached it, or the records lack the task's inputs. Results appear once the hospital's documents are "
        "ingested and scored.",
        indicator="info",
        source=source(base_url, task),
    )


def selected_codes(context: OrderSelectContext) -> list[tuple[str, str]]:
    """``(system, code)`` of each selected draft ``ServiceRequest`` in ``draftOrders``."""
    chosen = set(context.selections)
    codes = []
    for entry in context.draftOrders.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") != "ServiceRequest":
            continue
        if f"ServiceRequest/{resource.get('id')}" not in chosen:
            continue
        for coding in (resource.get("code") or {}).get("coding") or []:
            if isinstance(coding, dict) and coding.get("system") and coding.get("code"):
                codes.append((str(coding["system"]), str(coding["code"])))
    return codes


def order_select_cards(
    view: ReportView,
    task: TaskSpec,
    codes: Sequence[tuple[str, str]],
    base_url: str,
    report_link: str,
    hook_instance: str,
) -> list[Card]:
    """A card per task input a selected order measures: how the newest result used that input, or that it was
    computed without it."""
    cards = []
    seen: set[str] = set()
    drivers = {d.label: d for d in view.drivers}
    for line in view.inputs:
        if (line.system, line.code) not in codes or line.label in seen:
            continue
        seen.add(line.label)
        risk = f"{view.probability:.0%} risk of {view.positive_label}"
        if line.text is None:
            title = f"AI Mass: the {risk} was computed without {line.label.lower()}"
            text = (
                f"The newest result ({risk}) had no {_md(line.label.lower())}: each model used its own training "
                "reference for it. Once the result of this order reaches AI Mass, a new result follows."
            )
        else:
            driver = drivers.get(line.label)
            effect = f", which moved it by {_points(driver.delta)}" if driver else ""
            title = f"AI Mass: the {risk} already used {line.label.lower()} {line.text}"
            text = (
                f"The newest result ({risk}) used {_md(line.label.lower())} {_md(line.text)}{effect} (occlusion on "
                "the explained model). A new measurement gives a new result."
            )
        cards.append(
            Card(
                uuid=derived_event_id("cds", hook_instance, view.report_id, line.label),
                summary=_short(title),
                detail=text,
                indicator="info",
                source=source(base_url, task),
                links=[Link(label="Open the AI Mass report", url=report_link, type="absolute")],
            )
        )
    return cards
