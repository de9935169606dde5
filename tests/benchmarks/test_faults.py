"""A tiny run of benchmarks/faults.py: one job, one kill per mode; nothing lost, stuck or doubled."""

from __future__ import annotations

import faults
import pytest

pytestmark = pytest.mark.slow


def test_a_killed_worker_and_a_killed_serve_lose_no_job_and_publish_one_version(capsys):
    argv = ["--mode", "both", "--jobs", "1", "--kills", "1", "--embedded-kills", "1", "--epochs", "80",
            "--heartbeat-timeout", "4", "--pause", "2", "3", "--timeout", "300"]  # fmt: skip
    reports = faults.main(argv)
    assert [r.mode for r in reports] == ["production", "embedded"]
    for report in reports:
        assert list(report.statuses.values()) == ["succeeded"], report
        assert report.versions == 1 and len(report.faults) == 1
    printed = capsys.readouterr().out
    assert "jobs succeeded 1, failed 0, stuck 0; versions 1 (expected 1)" in printed
