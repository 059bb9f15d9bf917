"""The three synchronous steps of a prediction, each its service's own domain code behind the gate: clean one record,
score it with every active model, fuse what answered and say what did not."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from services.clean.cleaning import Cleaner
from services.clean.code_files import load_code_book
from services.clean.routes import CleanRoutes
from services.fuse.directory import ModelDirectory
from services.fuse.routes import FuseRoutes
from services.infer.adapters.onnx_runtime import OnnxLoader
from services.infer.catalog import ModelCatalog
from services.infer.ports import Scorer
from services.infer.routes import ScoreRoutes
from shared.auth import SCOPE_PREDICT, Gate
from shared.http import Handler, HttpApp
from shared.schemas import CanonicalRecord, CleanRecord
from shared.settings import PROJECT_ROOT, Settings
from shared.tasks import load_tasks
from tests.support.factories.clean import heart_document, record_of
from tests.support.identity import local_identity
from tests.support.models import heart_task, write_model

TASK = "heart_disease"


def client(route: str, handler: Handler) -> httpx.AsyncClient:
    http = HttpApp(None)  # type: ignore[arg-type]
    http.post(route, handler, guard=Gate(local_identity().verifier()).scoped(SCOPE_PREDICT))
    return httpx.AsyncClient(transport=httpx.ASGITransport(http), base_url="http://unit")


@pytest.fixture
def cleveland_record() -> CanonicalRecord:
    return record_of(heart_document(), "cleveland")


async def test_one_record_cleaned_scored_and_fused_with_the_streams_own_code(
    tmp_path: Path, cleveland_record: CanonicalRecord
) -> None:
    settings = Settings(var_dir=tmp_path)
    cleaner = Cleaner(load_tasks(), load_code_book(PROJECT_ROOT / "deploy" / "codes"))
    cards = [
        write_model(settings, TASK, site, heart_task().feature_names, seed=n)[0]
        for n, site in enumerate(("cleveland", "hungary", "pooled"))
    ]
    catalog: ModelCatalog[Scorer] = ModelCatalog()
    for card in cards[:2]:  # the pooled model is expected but does not serve: it must be named missing
        catalog.put(card, OnnxLoader(settings).load(card))
    headers = local_identity().headers("cleveland", SCOPE_PREDICT)

    async with client("/records/$clean", CleanRoutes(cleaner).clean) as clean:
        answer = await clean.post("/records/$clean", content=cleveland_record.model_dump_json(), headers=headers)
    assert answer.status_code == 200
    cleaned = CleanRecord.model_validate_json(answer.content)
    assert cleaned == cleaner.clean(cleveland_record).record  # what the stream would put on records.clean

    async with client("/records/$score", ScoreRoutes(catalog).score) as infer:
        scored = await infer.post("/records/$score", content=answer.content, headers=headers)
    predictions = scored.json()["predictions"]
    assert {p["model"]["site"] for p in predictions} == {"cleveland", "hungary"}
    assert all(0 <= p["probability"] <= 1 and p["record_id"] == cleaned.record_id for p in predictions)

    routes = FuseRoutes(load_tasks(), ModelDirectory(cards))
    async with client("/predictions/$fuse", routes.fuse) as fuse:
        fused = (await fuse.post("/predictions/$fuse", json={"predictions": predictions}, headers=headers)).json()
    assert {m["site"] for m in fused["answered"]} == {"cleveland", "hungary"}
    assert fused["missing"] == [f"{TASK}/pooled/{cards[2].version}"]
    assert fused["fused"]["needs_review"] and 0 <= fused["fused"]["probability"] <= 1


async def test_each_step_refuses_another_hospital_s_record_and_says_what_is_wrong_with_a_bad_one(
    tmp_path: Path, cleveland_record: CanonicalRecord
) -> None:
    cleaner = Cleaner(load_tasks(), load_code_book(PROJECT_ROOT / "deploy" / "codes"))
    async with client("/records/$clean", CleanRoutes(cleaner).clean) as clean:
        hungary = local_identity().headers("hungary", SCOPE_PREDICT)
        other = await clean.post("/records/$clean", content=cleveland_record.model_dump_json(), headers=hungary)
        assert other.status_code == 403
        bad = await clean.post("/records/$clean", content=b'{"record_id": "r"}', headers=hungary)
        assert bad.status_code == 400 and "patient" in bad.json()["error_description"]
        anonymous = await clean.post("/records/$clean", content=cleveland_record.model_dump_json())
        assert anonymous.status_code == 401
    routes = FuseRoutes(load_tasks(), ModelDirectory())
    async with client("/predictions/$fuse", routes.fuse) as fuse:
        headers = local_identity().headers("cleveland", SCOPE_PREDICT)
        empty = await fuse.post("/predictions/$fuse", json={"predictions": []}, headers=headers)
        assert empty.status_code == 400
