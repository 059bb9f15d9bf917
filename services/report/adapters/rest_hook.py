"""The rest-hook POST of one notification to a subscriber's endpoint (httpx): its own headers, the platform's
time limit, no redirects followed (a redirect is a failure the hospital fixes, not a hop to another host)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import httpx

from services.report.ports import Attempt

FHIR_JSON = "application/fhir+json"


class RestHookSender:
    def __init__(self, timeout_seconds: float, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.timeout = timeout_seconds
        self._client = httpx.AsyncClient(
            timeout=timeout_seconds,
            follow_redirects=False,
            transport=transport,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )

    async def post(self, endpoint: str, headers: Sequence[str], body: bytes) -> Attempt:
        sent = {"content-type": FHIR_JSON}
        for header in headers:
            name, _, value = header.partition(":")
            sent[name.strip()] = value.strip()
        started = time.perf_counter()
        try:
            # httpx's timeout bounds each phase (connect, write, every read), not the whole request: an endpoint
            # that trickles its answer would hold the try past its claim's lease, and another replica would send it
            # again. The whole POST gets the time limit.
            async with asyncio.timeout(self.timeout):
                answer = await self._client.post(endpoint, content=body, headers=sent)
        except httpx.ConnectError:
            return Attempt(False, "refused", "cannot connect (connection refused or no route)", _since(started))
        except (httpx.TimeoutException, TimeoutError):
            return Attempt(False, "timeout", f"no answer within {self.timeout:g} s", _since(started))
        except httpx.HTTPError as error:
            return Attempt(False, "error", f"the request failed ({type(error).__name__})", _since(started))
        if 200 <= answer.status_code < 300:
            return Attempt(True, "ok", f"answered {answer.status_code}", _since(started))
        return Attempt(False, "status", f"answered {answer.status_code}", _since(started))

    async def close(self) -> None:
        await self._client.aclose()


def _since(started: float) -> float:
    return time.perf_counter() - started
