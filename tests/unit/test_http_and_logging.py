import json
import logging

import httpx

from shared.logging import JsonFormatter
from shared.service import Service
from shared.settings import Settings
from tests.support.identity import local_identity


async def get(service: Service, path: str, hospital: str | None = None, token: bool = True) -> httpx.Response:
    """``path`` as an operator (or as ``hospital``'s client) with a real token; ``token=False`` sends none."""
    service.gate.verifier = local_identity().verifier()
    headers = local_identity().headers(hospital) if token else {}
    transport = httpx.ASGITransport(app=service.http)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, headers=headers)


async def test_readyz_is_503_with_the_failing_dependency_named(tmp_path) -> None:
    service = Service("fuse", Settings(var_dir=tmp_path))

    async def fails() -> bool:
        raise ConnectionError("refused")

    async def answers() -> bool:
        return True

    service.checks = {"kafka": answers, "redis": fails}
    response = await get(service, "/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"kafka": "ok", "redis": "down"}
    service.checks["redis"] = answers
    assert (await get(service, "/readyz")).status_code == 200
    assert "aimass_dependency_up" in (await get(service, "/metrics")).text
    service.details["models"] = lambda: ["heart_disease/pooled/v1"]
    assert (await get(service, "/readyz")).json()["models"] == ["heart_disease/pooled/v1"]  # an operator sees why
    probe = await get(service, "/readyz", token=False)
    assert probe.status_code == 200 and "models" not in probe.json()  # a probe sends no token and learns no more


async def test_health_is_open_metrics_are_for_operators_and_unknown_paths_are_404(tmp_path) -> None:
    service = Service("report", Settings(var_dir=tmp_path))
    assert (await get(service, "/healthz", token=False)).json() == {"status": "alive", "service": "report"}
    assert (await get(service, "/metrics", token=False)).status_code == 401
    hospital = await get(service, "/metrics", hospital="cleveland")
    assert hospital.status_code == 403 and "ops/metrics.read" in hospital.json()["error_description"]
    metrics = await get(service, "/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'aimass_service_info{service="report"' in metrics.text
    assert (await get(service, "/nope")).status_code == 404


def test_log_lines_are_json_and_never_carry_exception_messages() -> None:
    formatter = JsonFormatter("ingest")
    try:
        raise ValueError("patient Jane Roe, MRN-0042")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "parse failed", None, __import__("sys").exc_info())
    line = formatter.format(record)
    entry = json.loads(line)
    assert entry["msg"] == "parse failed" and entry["exc_type"] == "ValueError" and entry["service"] == "ingest"
    assert "Jane" not in line and "MRN-0042" not in line
