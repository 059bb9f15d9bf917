"""The demo's closing summary as text (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.cli.quality import render as render_quality
from services.cli.quality import summarize
from services.cli.scenario.observed import Observed, percentile
from shared.schemas.models import ModelCard

REPORT_LINKS = 3


@dataclass(frozen=True)
class Timings:
    total: float
    training_phase: float  # publish of the training messages until clean has them all
    training_models: float
    held_out_phase: float  # publish of the held-out messages until every report exists


def table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    """Names left-aligned, numbers right-aligned."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return (
            indent
            + "  ".join(
                str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _auc(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def sent(outcome: Observed) -> str:
    rows = [[h, f, str(m), str(r), str(d), str(c)] for h, f, m, r, d, c in outcome.per_hospital_and_format()]
    total = [sum(int(row[i]) for row in rows) for i in range(2, 6)]
    rows.append(["all", "", *map(str, total)])
    text = "What the hospitals sent\n" + table(
        ["hospital", "format", "messages", "records", "dead-lettered", "clean"], rows
    )
    if total[3] < total[1]:
        text += (
            "\n  records missing from records.clean carry the same content as an earlier record (clean keeps the "
            "first;\n  pydicom's sample files are the same every run) or were dead-lettered by clean"
        )
    return text


def dead_letters(outcome: Observed) -> str:
    broken = outcome.scenario.broken
    lines = [
        f"Dead letters: {outcome.broken_answered()} of {len(broken)} broken messages answered with a reason "
        f"on aimass.deadletter ({len(outcome.deadletters)} dead letters in all)"
    ]
    for letter in outcome.deadletters:
        lines.append(f"  {letter.message.hospital:<14} {letter.message.format:<6} {letter.service:<7} {letter.reason}")
        if letter.message.expect:
            lines.append(f"  {'':<14} {'':<6} {'':<7} (sent: {letter.message.expect})")
    missing = [m for m in broken if m.ce_id not in {d.message.ce_id for d in outcome.deadletters}]
    lines += [f"  NOT dead-lettered: {m.hospital} {m.format}: {m.expect}" for m in missing]
    return "\n".join(lines)


def quality(outcome: Observed) -> str:
    records = [outcome.clean[r] for r in outcome.phase_of_record if r in outcome.clean]
    text = render_quality(summarize(records), only_task=outcome.task).rstrip()
    return "Data quality of this run's records (aimass quality shows the whole topic)\n" + "\n".join(
        "  " + line if line else line for line in text.splitlines()
    )


def models(cards: Sequence[ModelCard], refused: dict[str, str]) -> str:
    active = [c for c in cards if c.status == "active"]
    rows = [
        [
            c.site,
            c.version,
            str(c.data.get("train", c.data.get("rows", ""))),
            _auc(c.metrics.get("auc")),
            f"{c.metrics.get('f1', float('nan')):.3f}",
            f"{c.metrics.get('brier', float('nan')):.3f}",
        ]
        for c in active
    ]
    parts = [
        "Models (each hospital's own records; pooled = all four), metrics on train's own test split\n"
        + table(["site", "version", "rows", "AUC", "F1", "Brier"], rows)
    ]
    parts += [f"  not trained: {site}: {why}" for site, why in refused.items()]
    scored_on = sorted({s for c in active for s in c.cross_site})
    if scored_on:
        matrix = [[c.site, *(_auc(c.cross_site.get(s)) for s in scored_on)] for c in active]
        parts.append(
            "Cross-site AUC (row: trained at; column: scored on that site's data)\n"
            + table(["trained at", *scored_on], matrix)
        )
    return "\n\n".join(parts)


def fused_vs_single(outcome: Observed) -> str:
    columns, rows, counts = outcome.auc_table()
    body = [[name, *(_auc(values[c]) for c in columns)] for name, values in rows]
    body.append(["patients (diseased)", *(f"{counts[c + ' n']} ({counts[c + ' positive']})" for c in columns)])
    best_single = max((v["all"] for n, v in rows if n != "fused" and v["all"] is not None), default=None)
    fused = next((v["all"] for n, v in rows if n == "fused"), None)
    verdict = ""
    if fused is not None and best_single is not None:
        verdict = (
            f"\n  fused {fused:.3f} vs best single model {best_single:.3f} over all held-out patients; "
            f"{100 * outcome.review_rate():.0f}% of fused results flagged needs_review"
        )
    return (
        "Held-out patients (never trained on): AUC of each model and of the fused result\n"
        + table(["model", *columns], body)
        + verdict
    )


def throughput(outcome: Observed, timings: Timings, models: int) -> str:
    training = len(outcome.records_of("training"))
    held_out = outcome.reported()
    latencies = outcome.latencies()
    lines = [
        "Throughput",
        f"  {training} training records through ingest and clean in {timings.training_phase:.1f} s "
        f"({training / max(timings.training_phase, 1e-9):.0f} records/s)",
        f"  {models} models trained in {timings.training_models:.1f} s (torch, exported to ONNX, checked for parity)",
        f"  {held_out} held-out records published, scored by every model, fused and reported in "
        f"{timings.held_out_phase:.1f} s",
    ]
    if latencies:
        lines.append(
            f"  publish → report latency: p50 {1000 * percentile(latencies, 50):.0f} ms, "
            f"p95 {1000 * percentile(latencies, 95):.0f} ms (all sent at once, so queueing included)"
        )
    lines.append(f"  whole demo: {timings.total:.0f} s")
    return "\n".join(lines)


def where_next(
    outcome: Observed, report_url: str, metrics_url: str, links: Mapping[str, str], timeline: str | None = None
) -> str:
    """Signed links to a few of the run's reports, a browser opens them for the next minutes without a token; with
    ``timeline``, the first one's patient's timeline (whose questioning pages may answer)."""
    reports = outcome.own_reports()[:REPORT_LINKS]
    lines = ["Where to look next"]
    for r in reports:
        link = links.get(r.report_id)
        summary = r.summary if len(r.summary) <= 70 else r.summary[:69] + "…"
        hospital = outcome.hospital_of(r)
        if link:
            lines.append(f"  {link}")
            lines.append(
                f"      {summary} · valid for minutes; another: aimass link {r.report_id} --hospital {hospital}"
            )
        else:
            lines.append(f"  {r.url}   {summary} · needs a token: aimass token --hospital {hospital}")
    if reports and timeline:
        lines.append(f"  {timeline}")
        lines.append(
            '      that patient\'s timeline; its "Ask for missing inputs" page asks what the record lacks, and each '
            "answer goes through the whole pipeline"
        )
    if reports:
        first = reports[0]
        lines.append(
            f"  {report_url}/patients/{first.patient}/reports   every report of one patient (JSON; "
            f'curl -H "Authorization: Bearer $(.venv/bin/aimass token --hospital {outcome.hospital_of(first)})")'
        )
    lines += [
        f"  {metrics_url}/metrics   Prometheus metrics (each service: ports 8101-8106; an operator's token, "
        "ops/metrics.read: deploy/prometheus/prometheus.yml fetches one)",
        "  deploy/grafana/dashboards/   the Grafana dashboard (import it; Prometheus config in deploy/prometheus/)",
        "  .venv/bin/aimass tail predictions.fused --from-beginning --max 1",
        "  .venv/bin/aimass tail audit --from-beginning              who read which report, every refusal",
        "  .venv/bin/aimass tail deadletter --from-beginning        .venv/bin/aimass quality",
        "  .venv/bin/aimass models list                             make status · make logs · make down",
    ]
    return "\n".join(lines)


def render(
    outcome: Observed,
    cards: Sequence[ModelCard],
    refused: dict[str, str],
    timings: Timings,
    report_url: str,
    metrics_url: str,
    links: Mapping[str, str] | None = None,
    timeline: str | None = None,
) -> str:
    sections = [
        "AI Mass demo — four hospitals, real UCI heart-disease records, end to end",
        sent(outcome),
        dead_letters(outcome),
        quality(outcome),
        models(cards, refused),
        fused_vs_single(outcome),
        throughput(outcome, timings, sum(c.status == "active" for c in cards)),
        where_next(outcome, report_url, metrics_url, links or {}, timeline),
    ]
    return "\n\n".join(sections) + "\n"
