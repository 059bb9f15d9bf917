import json
import logging

import httpx

from shared.logging import JsonFormatter
from shared.service import Service
from shared.settings import Settings


async def get(service: Service, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=service.http)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path)


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


async def test_health_metrics_and_unknown_paths(tmp_path) -> None:
    service = Service("report", Settings(var_dir=tmp_path))
    assert (await get(service, "/healthz")).json() == {"status": "alive", "service": "report"}
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
