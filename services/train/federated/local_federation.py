"""A federation of real Flower processes on one machine: a SuperLink, one SuperNode per site, ``flwr run``.

For measurements (research/federated) and tests; a deployment starts the same commands on the hub and at each
site instead. Every process runs in its own session so that stopping it stops what it started (the SuperExec, the
ServerApp, the ClientApps), and nothing outlives the ``with`` block.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

APP_DIR = Path(__file__).parent / "flower"
CONNECTION = "aimass-local"
STARTUP_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def run_config_arg(config: Mapping[str, object]) -> str:
    return " ".join(f"{key}={toml_value(value)}" for key, value in config.items())


class LocalFederation:
    """``sites``: site name → the file of its rows (``flower_app.save_site``); each gets its own SuperNode."""

    def __init__(self, directory: Path, sites: Mapping[str, Path]) -> None:
        self.directory = directory
        self.sites = dict(sites)
        self.port = free_port()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        bin_dir = str(Path(sys.executable).parent)
        self.env = {
            **os.environ,
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            "FLWR_HOME": str(directory / "flwr-home"),
            "PYTHONUNBUFFERED": "1",
        }

    def _start(self, name: str, command: list[str]) -> None:
        log = (self.directory / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.directory, start_new_session=True
        )

    def __enter__(self) -> LocalFederation:
        self.directory.mkdir(parents=True, exist_ok=True)
        home = self.directory / "flwr-home"
        home.mkdir(exist_ok=True)
        (home / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n'
            f'[superlink.{CONNECTION}]\naddress = "127.0.0.1:{self.port}"\ninsecure = true\n'
        )
        self._start(
            "superlink",
            ["flower-superlink", "--insecure", "--port", str(self.port), "--disable-runtime-dependency-installation"],
        )
        wait_for_port(self.port, STARTUP_SECONDS)
        for site, data in self.sites.items():
            self._start(
                f"supernode-{site}",
                [
                    "flower-supernode",
                    "--insecure",
                    "--superlink",
                    f"127.0.0.1:{self.port}",
                    "--port",
                    str(free_port()),
                    "--node-config",
                    f"site={toml_value(site)} data={toml_value(str(data))}",
                ],
            )
        return self

    def run(self, run_config: Mapping[str, object], timeout: float) -> Path:
        """One ``flwr run`` to its end; the ServerApp's output folder (``summary.json``, ``model.onnx``)."""
        output = Path(str(run_config["output-dir"]))
        command = ["flwr", "run", str(APP_DIR), CONNECTION, "--stream", "--run-config", run_config_arg(run_config)]
        with (self.directory / "flwr-run.log").open("ab") as log:
            subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=self.env, timeout=timeout, check=True)
        deadline = time.monotonic() + 30
        while not (output / "summary.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        if not (output / "summary.json").exists():
            raise RuntimeError(f"the run ended without {output / 'summary.json'}; see {self.directory}/*.log")
        return output

    def stop(self, name: str) -> None:
        """Kill one process and everything it started (``supernode-<site>`` kills a site mid-run)."""
        process = self.processes.pop(name)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        for name in list(self.processes):
            self.stop(name)
