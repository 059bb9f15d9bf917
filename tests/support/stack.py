"""A private Kafka + Redis for tests that break things (restart the broker, stop Redis) or need another security
profile: own ports, own var dir, started with the project's own deploy scripts, always stopped afterwards.

``PrivateStack(..., secured=True)`` starts what ``make up`` starts: Kafka ``sasl-ssl`` (TLS, SCRAM users, ACLs for
the stack's topic prefix) and Redis ``acl``; ``principal_env`` / ``principal_settings`` are what deploy/services.sh
hands each process (var/secrets/<principal>.env)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

from pydantic import SecretStr

from shared.settings import PROJECT_ROOT, Settings
from tests.support.processes import free_port, test_settings

DEPLOY = PROJECT_ROOT / "deploy"


class PrivateStack:
    def __init__(self, var_dir: Path, prefix: str, *, secured: bool = False, **kafka_env: str) -> None:
        self.var_dir = var_dir
        self.secured = secured
        self.kafka_port, self.controller_port, self.redis_port = free_port(), free_port(), free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not secured or not k.startswith("AIMASS_")},
            "AIMASS_VAR_DIR": str(var_dir),
            "KAFKA_PORT": str(self.kafka_port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "REDIS_PORT": str(self.redis_port),
            "KAFKA_HEAP": "384m",
            **(
                {"KAFKA_SECURITY": "sasl-ssl", "REDIS_SECURITY": "acl", "AIMASS_TOPIC_PREFIX": prefix}
                if secured
                else {}
            ),
            **kafka_env,
        }
        settings = test_settings(var_dir, prefix)
        self.settings = settings.model_copy(
            update={
                "kafka_bootstrap": f"127.0.0.1:{self.kafka_port}",
                "redis_url": type(settings.redis_url)(f"redis://127.0.0.1:{self.redis_port}/0"),
            }
        )
        self._share_kafka_jars()

    def _share_kafka_jars(self) -> None:
        # The broker jars are fetched once into the project's var/; link them instead of copying 43 MB again.
        libs = Path(os.environ.get("AIMASS_VAR_DIR", PROJECT_ROOT / "var")) / "kafka" / "libs"
        target = self.var_dir / "kafka" / "libs"
        if libs.exists() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(libs)

    def principal_env(self, principal: str) -> dict[str, str]:
        """The environment of a process running as ``principal`` on this (secured) stack."""
        from services.cli.credentials import read_env_file

        return read_env_file(self.var_dir / "secrets" / f"{principal}.env")

    def principal_settings(self, principal: str) -> Settings:
        """``service_settings`` as ``principal`` sees them: its Kafka login, its Redis user where it has one."""
        env = self.principal_env(principal)
        update: dict[str, object] = {
            "kafka_bootstrap": env["AIMASS_KAFKA_BOOTSTRAP"],
            "kafka_security_protocol": env["AIMASS_KAFKA_SECURITY_PROTOCOL"],
            "kafka_sasl_mechanism": env["AIMASS_KAFKA_SASL_MECHANISM"],
            "kafka_sasl_username": env["AIMASS_KAFKA_SASL_USERNAME"],
            "kafka_sasl_password": SecretStr(env["AIMASS_KAFKA_SASL_PASSWORD"]),
            "kafka_ssl_cafile": Path(env["AIMASS_KAFKA_SSL_CAFILE"]),
        }
        if "AIMASS_REDIS_URL" in env:
            update["redis_url"] = SecretStr(env["AIMASS_REDIS_URL"])
        return self.settings.model_copy(update=update)

    def secure_again(self) -> None:
        """deploy/kafka/kafka.sh secure: users, ACLs and topics set again from the table and the password files."""
        self._run("kafka/kafka.sh", "secure")

    def _run(self, script: str, command: str) -> None:
        result = subprocess.run(
            [str(DEPLOY / script), command], env=self.env, capture_output=True, text=True, timeout=180
        )
        if result.returncode != 0:
            raise RuntimeError(f"{script} {command} failed: {result.stderr.strip()} (logs in {self.var_dir}/log)")

    def start_kafka(self) -> None:
        self._run("kafka/kafka.sh", "start")

    def stop_kafka(self) -> None:
        self._run("kafka/kafka.sh", "stop")

    def start_redis(self) -> None:
        self._run("redis/redis.sh", "start")

    def stop_redis(self) -> None:
        self._run("redis/redis.sh", "stop")

    def __enter__(self) -> PrivateStack:
        self.start_kafka()
        self.start_redis()
        return self

    def __exit__(self, *_: object) -> None:
        for stop in (self.stop_redis, self.stop_kafka):
            with contextlib.suppress(RuntimeError):  # stop the other one even if this one failed
                stop()

    @property
    def service_settings(self) -> Settings:
        return self.settings
