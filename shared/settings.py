"""Settings from the environment (prefix ``AIMASS_``), with defaults that work on a developer's machine."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

SERVICE_NAMES: tuple[str, ...] = ("ingest", "clean", "train", "infer", "fuse", "report")
ServiceName = Literal["ingest", "clean", "train", "infer", "fuse", "report"]


class Settings(BaseSettings):
    """Everything a service reads from its environment. Secrets are ``SecretStr``: they never print."""

    model_config = SettingsConfigDict(env_prefix="AIMASS_", extra="ignore", frozen=True)

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-256"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle that signed the brokers' certificates")
    kafka_ssl_certfile: Path | None = Field(None, description="client certificate, for mutual TLS")
    kafka_ssl_keyfile: Path | None = None
    topic_prefix: str = "aimass."
    topic_partitions: int = Field(3, ge=1, description="partitions of each topic the project creates")
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    redis_password: SecretStr | None = Field(None, description="Redis AUTH password, if not in the URL")
    redis_ssl_cafile: Path | None = Field(None, description="CA bundle for a rediss:// URL")

    var_dir: Path = PROJECT_ROOT / "var"
    data_dir: Path | None = None
    log_level: str = "INFO"

    ingest_port: int = 8101
    clean_port: int = 8102
    train_port: int = 8103
    infer_port: int = 8104
    fuse_port: int = 8105
    report_port: int = 8106
    http_host: str = "127.0.0.1"
    service_urls: dict[str, str] = Field(
        default_factory=dict,
        description='service -> base URL the others call it at, e.g. \'{"clean": "http://clean:8102"}\' '
        "(synchronous predictions); default http://<http_host>:<port>",
    )

    pseudonym_key: SecretStr | None = None
    max_message_bytes: int = Field(2_000_000, ge=1, description="ingest dead-letters larger documents")
    ingest_claim_check_bytes: int = Field(
        16_384,
        ge=0,
        description="ingest stores DICOM pixel data larger than "
        "this under the data dir and references it (claim check)",
    )
    ingest_mllp_host: str = Field("127.0.0.1", description="interface ingest's MLLP listeners bind")
    ingest_mllp_ports: dict[str, int] = Field(
        default_factory=dict,
        description="hospital -> MLLP port, e.g. '{\"cleveland\": 2575}'; empty: each hospitals_dir file's mllp_port",
    )
    hospitals_dir: Path = Field(
        PROJECT_ROOT / "deploy" / "hospitals", description="per-hospital files (<id>.yaml): CSV/XLSX column mappings"
    )
    dedup_ttl_seconds: int = Field(7 * 24 * 3600, ge=1)
    codes_dir: Path = Field(PROJECT_ROOT / "deploy" / "codes", description="clean's per-hospital code tables")

    tasks_dir: Path = Field(PROJECT_ROOT / "tasks", description="folder of task files (<name>.yaml)")
    train_retrain_after: int = Field(
        0, ge=0, description="train retrains a task after this many new labelled records in its store; 0 = off"
    )

    auth_issuer: str = Field(
        "http://127.0.0.1:8107", description="OAuth2 issuer whose access tokens the HTTP endpoints accept (iss)"
    )
    auth_jwks_url: str | None = Field(None, description="the issuer's JWKS; default <issuer>/.well-known/jwks.json")
    auth_audience: str = Field("aimass", description="the audience (aud) every access token must name")
    auth_leeway_seconds: int = Field(30, ge=0, description="clock skew allowed on exp, nbf and iat")
    link_key: SecretStr | None = Field(
        None, description="HMAC key of signed report links; generated once in var/secrets/link.key"
    )
    link_ttl_seconds: int = Field(900, ge=1, description="how long a signed report link stays valid")
    issuer_port: int = 8107
    issuer_token_ttl_seconds: int = Field(300, ge=1, description="lifetime of the local issuer's access tokens")

    report_delivery_retry_seconds: int = Field(
        600, ge=1, description="how long report retries a rest-hook delivery before dead-lettering it"
    )
    report_delivery_timeout_seconds: float = Field(5.0, gt=0, description="one rest-hook POST's time limit")

    infer_batch_max_records: int = Field(2000, ge=1, description="records infer takes from Kafka per batch")
    infer_batch_timeout_ms: int = Field(20, ge=0, description="how long infer waits to fill a batch")
    infer_cache_ttl_seconds: int = Field(3600, ge=0, description="Redis prediction cache TTL; 0 = no cache")
    infer_intra_op_threads: int = Field(1, ge=0, description="onnxruntime intra-op threads; 0 = one per core")
    infer_device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = CUDA when available")

    @property
    def data_path(self) -> Path:
        return self.data_dir or self.var_dir / "data"

    def port_for(self, service: str) -> int:
        return int(getattr(self, f"{service}_port"))

    def public_url(self, service: str) -> str:
        return f"http://{self.http_host}:{self.port_for(service)}"

    def service_url(self, service: str) -> str:
        """Where another service reaches ``service``'s HTTP routes: ``AIMASS_SERVICE_URLS`` (a container's DNS name),
        else its public URL on this host."""
        return self.service_urls.get(service) or self.public_url(service)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
