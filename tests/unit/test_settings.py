from shared.settings import Settings


def test_defaults_match_the_contract(monkeypatch) -> None:
    for name in ("AIMASS_KAFKA_BOOTSTRAP", "AIMASS_TOPIC_PREFIX", "AIMASS_REDIS_URL", "AIMASS_INGEST_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.topic_prefix == "aimass."
    assert settings.redis_url.get_secret_value() == "redis://127.0.0.1:6379/0"
    assert [settings.port_for(s) for s in ("ingest", "clean", "train", "infer", "fuse", "report")] == list(
        range(8101, 8107)
    )


def test_environment_overrides_with_the_aimass_prefix(monkeypatch) -> None:
    monkeypatch.setenv("AIMASS_INFER_PORT", "9104")
    monkeypatch.setenv("AIMASS_TOPIC_PREFIX", "test.")
    settings = Settings()
    assert settings.port_for("infer") == 9104
    assert settings.topic_prefix == "test."


def test_secrets_never_print(monkeypatch) -> None:
    monkeypatch.setenv("AIMASS_PSEUDONYM_KEY", "super-secret-key-material")
    monkeypatch.setenv("AIMASS_REDIS_URL", "redis://:hunter2@127.0.0.1:6379/0")
    text = repr(Settings()) + str(Settings().model_dump())
    assert "super-secret-key-material" not in text
    assert "hunter2" not in text
