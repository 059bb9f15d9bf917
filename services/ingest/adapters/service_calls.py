"""The other services' synchronous routes, over HTTP with the caller's token (``services.ingest.predict.Post``)."""

from __future__ import annotations

from typing import Any

import httpx

from services.ingest.predict import StepFailed
from shared.settings import Settings

STEP_TIMEOUT_SECONDS = 5.0


class ServiceCalls:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: httpx.AsyncClient | None = None

    async def post(self, service: str, path: str, body: bytes, token: str) -> dict[str, Any]:
        if self._client is None:  # made on the event loop that serves the requests, then kept (connections pooled)
            self._client = httpx.AsyncClient(timeout=STEP_TIMEOUT_SECONDS)
        url = f"{self.settings.service_url(service)}{path}"
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        try:
            answer = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError:
            raise StepFailed(service, 503, f"{service} does not answer at {url}") from None
        if answer.status_code >= 400:
            try:
                said = answer.json().get("error_description") or answer.text
            except ValueError:
                said = answer.text
            raise StepFailed(service, answer.status_code, str(said)[:500])
        return answer.json()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
