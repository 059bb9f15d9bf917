"""The other services' synchronous routes, over HTTP with the caller's token (``services.ingest.predict.Post``).

aiohttp rather than httpx here: a loopback request costs ~0.3 ms with it and ~2.3 ms with httpx's async client
(measured on this machine, docs/ingest.md), and a prediction makes three of them on a 20 ms budget."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from services.ingest.predict import StepFailed
from shared.settings import Settings

STEP_TIMEOUT_SECONDS = 5.0


class ServiceCalls:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None

    async def post(self, service: str, path: str, body: bytes, token: str) -> dict[str, Any]:
        if self._session is None:  # made on the event loop that serves the requests, then kept (connections pooled)
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=STEP_TIMEOUT_SECONDS))
        url = f"{self.settings.service_url(service)}{path}"
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        try:
            async with self._session.post(url, data=body, headers=headers) as answer:
                status, text = answer.status, await answer.read()
        except (aiohttp.ClientError, TimeoutError):
            raise StepFailed(service, 503, f"{service} does not answer at {url}") from None
        if status >= 400:
            raise StepFailed(service, status, _reason(text.decode("utf-8", "replace"))[:500])
        return _json(service, text)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _reason(text: str) -> str:
    try:
        said = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return str(said.get("error_description") or text) if isinstance(said, dict) else text


def _json(service: str, body: bytes) -> dict[str, Any]:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise StepFailed(service, 502, f"{service} answered something that is not JSON") from None
