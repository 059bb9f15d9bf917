"""Writes deploy/grafana/dashboards/aimass.json: a pipeline row, then one row per service.

The dashboard is generated so that every service row has the same shape and the metric names stay in one place;
run ``.venv/bin/python deploy/grafana/build_dashboard.py`` after changing a panel and commit the JSON.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent / "dashboards" / "aimass.json"
DATASOURCE = {"type": "prometheus", "uid": "aimass-prometheus"}
WIDTH = 24


@dataclass
class Panel:
    title: str
    queries: list[tuple[str, str]]  # (PromQL, legend)
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 8
    description: str = ""


@dataclass
class Row:
    title: str
    panels: list[Panel] = field(default_factory=list)


def quantiles(metric: str, label: str | None, unit: str = "s", title: str = "latency") -> Panel:
    """p50, p95 and p99 of a histogram, one line per value of ``label`` when given."""
    by = f"{label}, le" if label else "le"
    legend = f" {{{{{label}}}}}" if label else ""
    return Panel(
        title,
        [
            (f"histogram_quantile({q}, sum by ({by}) (rate({metric}_bucket[5m])))", f"p{round(q * 100)}{legend}")
            for q in (0.5, 0.95, 0.99)
        ],
        unit,
    )


def common(service: str) -> list[Panel]:
    """What every service shows: input throughput, handler latency, errors and dead letters, consumer lag."""
    return [
        Panel(
            "throughput (records received/s)",
            [
                (
                    f'sum by (handler) (rate(faststream_received_messages_total{{app_name="{service}"}}[1m]))',
                    "{{handler}}",
                ),
                (
                    f'sum by (destination) (rate(faststream_published_messages_total{{app_name="{service}"}}[1m]))',
                    "out {{destination}}",
                ),
            ],
            "ops",
        ),
        Panel(
            "handler latency",
            [
                (
                    f"histogram_quantile({q}, sum by (le) "
                    "(rate(faststream_received_processed_messages_duration_seconds_bucket"
                    f'{{app_name="{service}"}}[5m])))',
                    f"p{round(q * 100)}",
                )
                for q in (0.5, 0.95, 0.99)
            ],
            "s",
        ),
        Panel(
            "errors and dead letters",
            [
                (
                    f'sum by (status) (rate(faststream_received_processed_messages_total{{app_name="{service}",'
                    f'status=~"error|nacked|rejected"}}[5m]))',
                    "handler {{status}}",
                ),
                (
                    f'sum by (reason) (rate(aimass_deadletters_total{{service="{service}"}}[5m]))',
                    "dead letter: {{reason}}",
                ),
            ],
            "ops",
        ),
        Panel(
            "consumer lag",
            [
                (
                    f'max by (group, topic, partition) (aimass_consumer_lag{{service="{service}"}})',
                    "{{topic}}[{{partition}}] {{group}}",
                ),
            ],
            "short",
            width=12,
        ),
        Panel(
            "events by outcome",
            [
                (f'sum by (outcome) (rate(aimass_events_total{{service="{service}"}}[5m]))', "{{outcome}}"),
            ],
            "ops",
            width=12,
        ),
    ]


def rows() -> list[Row]:
    return [
        Row(
            "pipeline",
            [
                Panel("targets up", [('sum by (component) (up{job="aimass"})', "{{component}}")], kind="stat", width=6),
                Panel(
                    "records through each stage/s",
                    [
                        ("sum(rate(aimass_ingest_messages_total[1m]))", "ingested"),
                        ("sum(rate(aimass_clean_records_total[1m]))", "clean"),
                        ("sum(rate(aimass_infer_predictions_total[1m]))", "predictions"),
                        ("sum(rate(aimass_fuse_results_total[1m]))", "fused"),
                        ("sum(rate(aimass_report_rendered_total[1m]))", "reports"),
                    ],
                    "ops",
                    width=18,
                ),
                Panel("dead letters/s by service", [("aimass:deadletters:rate5m", "{{service}}")], "ops"),
                Panel("consumer lag by group and topic", [("aimass:consumer_lag:sum", "{{group}} {{topic}}")]),
                Panel(
                    "dependencies",
                    [("min by (service, dependency) (aimass_dependency_up)", "{{service}} → {{dependency}}")],
                    kind="stat",
                ),
            ],
        ),
        Row(
            "ingest",
            [
                *common("ingest"),
                Panel(
                    "documents by hospital and format",
                    [("sum by (hospital, format) (rate(aimass_ingest_messages_total[5m]))", "{{hospital}} {{format}}")],
                    "ops",
                ),
                quantiles("aimass_ingest_parse_seconds", "format", title="parse time"),
                Panel(
                    "parse failures",
                    [("sum by (reason) (rate(aimass_ingest_parse_failures_total[5m]))", "{{reason}}")],
                    "ops",
                ),
                Panel(
                    "bytes in by hospital",
                    [("sum by (hospital) (rate(aimass_ingest_bytes_total[5m]))", "{{hospital}}")],
                    "Bps",
                ),
                Panel(
                    "free-text values dropped (Safe Harbor)",
                    [
                        (
                            "sum by (hospital, format) (rate(aimass_ingest_free_text_dropped_total[5m]))",
                            "{{hospital}} {{format}}",
                        )
                    ],
                    "ops",
                ),
                Panel(
                    "MLLP messages by hospital and ACK",
                    [("sum by (hospital, ack) (rate(aimass_ingest_mllp_messages_total[5m]))", "{{hospital}} {{ack}}")],
                    "ops",
                    description="AA/CA written to ingest.raw; AE content refused and dead-lettered; AR/CR unsupported "
                    "(dead-lettered) or not stored (the sender re-sends); CE not stored",
                ),
                Panel(
                    "MLLP connections and listeners",
                    [
                        ("sum by (hospital) (aimass_ingest_mllp_connections)", "{{hospital}} connections"),
                        ("min by (hospital) (aimass_ingest_mllp_listening)", "{{hospital}} listening"),
                    ],
                    description="listening 0: the hospital's port could not be bound (ingest's log says why)",
                ),
                Panel(
                    "FHIR REST documents",
                    [
                        (
                            "sum by (hospital, outcome) (rate(aimass_ingest_fhir_documents_total[5m]))",
                            "{{hospital}} {{outcome}}",
                        )
                    ],
                    "ops",
                ),
            ],
        ),
        Row(
            "clean",
            [
                *common("clean"),
                Panel(
                    "clean records by hospital",
                    [("sum by (hospital) (rate(aimass_clean_records_total[5m]))", "{{hospital}}")],
                    "ops",
                ),
                Panel(
                    "quality",
                    [
                        (
                            "sum by (hospital, feature) (rate(aimass_clean_implausible_total[5m]))",
                            "implausible {{feature}}",
                        ),
                        (
                            "sum by (hospital) (rate(aimass_clean_unmapped_codes_total[5m]))",
                            "unmapped codes {{hospital}}",
                        ),
                        (
                            "sum by (from_unit, to_unit) (rate(aimass_clean_unit_conversions_total[5m]))",
                            "{{from_unit}} → {{to_unit}}",
                        ),
                    ],
                    "ops",
                ),
                Panel("duplicates", [("sum by (kind) (rate(aimass_clean_duplicates_total[5m]))", "{{kind}}")], "ops"),
            ],
        ),
        Row(
            "train",
            [
                *common("train"),
                Panel(
                    "training runs",
                    [
                        (
                            "sum by (task, site, outcome) (increase(aimass_train_runs_total[1h]))",
                            "{{task}}/{{site}} {{outcome}}",
                        ),
                    ],
                ),
                quantiles("aimass_train_duration_seconds", "task", title="training time"),
                Panel(
                    "training store records",
                    [("sum by (task, hospital) (aimass_train_store_records)", "{{task}} {{hospital}}")],
                ),
            ],
        ),
        Row(
            "infer",
            [
                *common("infer"),
                Panel("predictions/s", [("aimass:infer_predictions:rate5m", "{{task}}/{{site}}")], "ops"),
                quantiles("aimass_infer_latency_seconds", "task", title="inference latency (one onnxruntime call)"),
                quantiles("aimass_infer_batch_size", None, unit="short", title="batch size"),
                Panel(
                    "cache",
                    [
                        ("aimass:infer_cache_hit:ratio5m", "hit ratio"),
                    ],
                    "percentunit",
                    width=6,
                ),
                Panel(
                    "cache lookups/s",
                    [("sum by (result) (rate(aimass_infer_cache_total[5m]))", "{{result}}")],
                    "ops",
                    width=6,
                ),
                Panel(
                    "model versions loaded",
                    [
                        (
                            "max by (task, site, version, instance) (aimass_infer_model_loaded) == 1",
                            "{{task}}/{{site}} v{{version}} @ {{instance}}",
                        )
                    ],
                    kind="table",
                    width=6,
                ),
                Panel(
                    "execution provider",
                    [
                        (
                            "max by (provider, instance) (aimass_infer_execution_provider) == 1",
                            "{{provider}} @ {{instance}}",
                        )
                    ],
                    kind="table",
                    width=6,
                ),
            ],
        ),
        Row(
            "fuse",
            [
                *common("fuse"),
                Panel("fused results/s", [("aimass:fuse_results:rate5m", "{{task}} {{method}}")], "ops"),
                quantiles("aimass_fuse_join_wait_seconds", None, title="join wait"),
                Panel(
                    "incomplete joins",
                    [
                        ("sum by (task) (rate(aimass_fuse_timeouts_total[5m]))", "timeout {{task}}"),
                        ("sum by (task) (rate(aimass_fuse_missing_models_total[5m]))", "missing model {{task}}"),
                        ("sum by (task) (rate(aimass_fuse_late_predictions_total[5m]))", "late {{task}}"),
                        ("sum by (task) (rate(aimass_fuse_needs_review_total[5m]))", "needs review {{task}}"),
                    ],
                    "ops",
                ),
            ],
        ),
        Row(
            "report",
            [
                *common("report"),
                Panel("reports rendered/s", [("aimass:reports:rate5m", "{{task}} {{format}}")], "ops"),
                quantiles("aimass_report_render_seconds", "format", title="render time"),
                Panel(
                    "rest-hook deliveries",
                    [
                        (
                            "sum by (hospital, outcome) (rate(aimass_report_deliveries_total[5m]))",
                            "{{hospital}} {{outcome}}",
                        ),
                        ("sum by (result) (rate(aimass_report_delivery_attempts_total[5m]))", "POST {{result}}"),
                    ],
                    "ops",
                    description="deadlettered: a delivery gave up after AIMASS_REPORT_DELIVERY_RETRY_SECONDS; "
                    "fix the endpoint, then aimass replay --service report --reason delivery",
                ),
                Panel(
                    "rest-hook deliveries pending",
                    [("sum(aimass_report_deliveries_pending)", "pending")],
                    description="grows while a subscriber's endpoint is down; falls when it is back",
                ),
                quantiles("aimass_report_delivery_seconds", None, title="rest-hook POST time"),
                Panel(
                    "CDS Hooks calls",
                    [("sum by (hook, outcome) (rate(aimass_report_cds_calls_total[5m]))", "{{hook}} {{outcome}}")],
                    "ops",
                ),
            ],
        ),
    ]


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, object]:
    height = 8
    body: dict[str, object] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": expr,
                "legendFormat": legend,
                **({"format": "table", "instant": True} if panel.kind == "table" else {}),
            }
            for i, (expr, legend) in enumerate(panel.queries)
        ],
    }
    if panel.kind == "table":
        body["transformations"] = [{"id": "labelsToFields", "options": {}}]
    return body


def dashboard() -> dict[str, object]:
    panels: list[dict[str, object]] = []
    panel_id, y = 1, 0
    for row in rows():
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id, y, x = panel_id + 1, y + 1, 0
        for panel in row.panels:
            if x + panel.width > WIDTH:
                x, y = 0, y + 8
            panels.append(_panel_json(panel, panel_id, x, y))
            panel_id, x = panel_id + 1, x + panel.width
        y += 8
    return {
        "uid": "aimass-overview",
        "title": "AI Mass",
        "description": "The pipeline, then one row per service. Metrics: docs/operations.md.",
        "tags": ["aimass"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    if "--check" in sys.argv[1:]:
        sys.exit(0 if OUTPUT.read_text() == render() else f"{OUTPUT} is stale: run {__file__}")
    OUTPUT.write_text(render())
