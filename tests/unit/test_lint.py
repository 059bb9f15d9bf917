"""`make lint`'s two checks run in CI too (CI runs `make test`): a lint finding or formatting drift fails the suite,
and `make lint` itself fails on a file that is not formatted."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from shared.settings import PROJECT_ROOT

RUFF = str(Path(sys.executable).with_name("ruff"))


def ruff(*args: str, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RUFF, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_tree_passes_ruff_check() -> None:
    result = ruff("check", "--quiet", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_tree_is_formatted() -> None:
    result = ruff("format", "--check", ".")
    assert result.returncode == 0, f"run `make format`:\n{result.stdout}{result.stderr}"


def test_make_lint_fails_on_a_file_that_is_not_formatted(tmp_path: Path) -> None:
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(PROJECT_ROOT / name, tmp_path / name)
    (tmp_path / ".venv").symlink_to(PROJECT_ROOT / ".venv")
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "deps.sh").write_text("#!/bin/sh\n")  # deps are installed: the real one runs first
    (tmp_path / "deploy" / "deps.sh").chmod(0o755)
    (tmp_path / "tidy.py").write_text('VALUE = {"a": 1}\n')
    environment = {**os.environ, "MAKEFLAGS": ""}
    tidy = subprocess.run(["make", "-s", "lint"], cwd=tmp_path, capture_output=True, text=True, env=environment)
    assert tidy.returncode == 0, tidy.stdout + tidy.stderr

    (tmp_path / "drifted.py").write_text("VALUE = { 'a':1 }\n")
    drifted = subprocess.run(["make", "-s", "lint"], cwd=tmp_path, capture_output=True, text=True, env=environment)
    assert drifted.returncode != 0
    assert "drifted.py" in drifted.stdout + drifted.stderr and "make format" in drifted.stdout + drifted.stderr
