"""Shared fixtures: a registry with real models trained on the UCI data, and fused results of real records."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.schemas.predictions import FusedPrediction
from shared.settings import Settings
from tests.support.factories.report import fused_for, install_models, record_from

SITES = ("cleveland", "hungary", "va-long-beach")


@pytest.fixture(scope="session")
def registry_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(var_dir=tmp_path_factory.mktemp("report-var"))
    install_models(settings.data_path / "models", SITES)
    return settings


@pytest.fixture(scope="session")
def swiss_fused() -> FusedPrediction:
    """A Switzerland record: its cholesterol is recorded as 0 (implausible) and it lacks major vessels."""
    return fused_for(record_from("switzerland", 5), SITES)


@pytest.fixture
def fresh_settings(tmp_path: Path, registry_settings: Settings) -> Settings:
    """An empty data dir whose registry is the shared one (models are read-only here)."""
    settings = Settings(var_dir=tmp_path)
    (settings.data_path).mkdir(parents=True)
    (settings.data_path / "models").symlink_to(registry_settings.data_path / "models")
    return settings
