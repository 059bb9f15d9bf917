"""Services as real processes for integration and end-to-end tests: own ports, own topic prefix, no leftovers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import httpx

from shared.principals import hospital_ids
from shared.settings import PROJECT_ROOT, SERVICE_NAMES, Settings
from tests.support.identity import local_identity


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_settings(var_dir: Path, prefix: str) -> Settings:
    """Free ports, the run's own prefix and var dir, and the test identity provider as the token issuer."""
    ports = {f"{name}_port": free_port() for name in (*SERVICE_NAMES, "issuer")}
    return Settings(
        topic_prefix=prefix,
        var_dir=var_dir,
        pseudonym_key="integration-test-key-0123456789",
        **ports,
        **local_identity().settings(),
    )


def environment(settings: Settings, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIMASS_")}
    env.update(
        {
            "AIMASS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "AIMASS_TOPIC_PREFIX": settings.topic_prefix,
            "AIMASS_REDIS_URL": settings.redis_url.get_secret_value(),
            "AIMASS_VAR_DIR": str(settings.var_dir),
            "AIMASS_PSEUDONYM_KEY": settings.pseudonym_key.get_secret_value() if settings.pseudonym_key else "",
            "AIMASS_LOG_LEVEL": "INFO",
            "AIMASS_AUTH_ISSUER": settings.auth_issuer,
            "AIMASS_AUTH_JWKS_URL": settings.auth_jwks_url or "",
            "AIMASS_AUTH_AUDIENCE": settings.auth_audience,
            "PYTHONUNBUFFERED": "1",
        }
    )
    for name in (*SERVICE_NAMES, "issuer"):
        env[f"AIMASS_{name.upper()}_PORT"] = str(settings.port_for(name))
    # Free MLLP ports, not the hospital files' 2575-2578: those belong to a `make up` stack, and two ingest
    # processes of one test run would contend for them.
    mllp = {hospital: free_port() for hospital in hospital_ids(settings.hospitals_dir)}
    env["AIMASS_INGEST_MLLP_PORTS"] = json.dumps(mllp)
    env.update(overrides)
    return env


class ServiceProcess:
    """``aimass run NAME`` in its own process group, its log in the test's var dir."""

    def __init__(self, name: str, settings: Settings, **env: str) -> None:
        self.name = name
        self.settings = settings
        self.env = environment(settings, **env)
        self.port = int(self.env[f"AIMASS_{name.upper()}_PORT"])
        self.log_path = settings.var_dir / "log" / f"{name}-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, hospital: str | None = None, timeout: float = 5.0) -> httpx.Response:
        """``path`` with a real token: an operator's (``ops/metrics.read``), or ``hospital``'s backend client's."""
        return httpx.get(f"{self.url}{path}", headers=local_identity().headers(hospital), timeout=timeout)

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "run", self.name],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200 and self._consuming():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready within {timeout} s; see {self.log_path}")

    def _consuming(self) -> bool:
        # Ready for a test means the consumer group has its partitions, or the first records may be missed.
        if self.name == "issuer":  # it consumes nothing
            return True
        return "assigned to partitions" in self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def wait_answering(url: str, timeout: float) -> httpx.Response:
    """The first HTTP answer from ``url``, whatever its status."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=3)
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def log_tails(processes: Iterable[ServiceProcess], lines: int = 12) -> str:
    """The last lines of each service's log, for a failure message read where the logs are gone (CI)."""
    parts = []
    for process in processes:
        text = process.log_path.read_text(errors="replace") if process.log_path.exists() else ""
        tail = "\n".join(f"    {line[:300]}" for line in text.splitlines()[-lines:])
        parts.append(f"--- {process.log_path.name} (last {lines} lines)\n{tail}")
    return "\n".join(parts)


def start_all(names: Iterable[str], settings: Settings, **env: str) -> dict[str, ServiceProcess]:
    processes = {name: ServiceProcess(name, settings, **env).start() for name in names}
    try:
        for process in processes.values():
            process.wait_ready()
    except Exception:
        for process in processes.values():
            process.stop()
        raise
    return processes
