"""Markers by folder: tests/integration and tests/e2e need the real Kafka and Redis that `make test` starts.

Under `make test` (``AIMASS_TEST_NO_SKIPS=1``, set by deploy/test.sh) a skipped test fails the run: everything a
test could skip for (kcat, prometheus, the UCI data) is installed by `make deps`, so a skip there would hide a broken
install rather than spare a developer one.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NO_SKIPS = "AIMASS_TEST_NO_SKIPS"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        elif "e2e" in parts:
            item.add_marker(pytest.mark.e2e)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if os.environ.get(NO_SKIPS) != "1" or not skipped or exitstatus != pytest.ExitCode.OK:
        return
    reporter.write("\n")
    reporter.write_line(f"{len(skipped)} test(s) skipped, which `make test` does not allow ({NO_SKIPS}=1):", red=True)
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reporter.write_line(f"  {report.nodeid}: {reason}", red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
