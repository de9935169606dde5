"""A job shows what its result version's metrics say the user should check (issue #8's guard)."""

from __future__ import annotations

from app.jobs.schemas import JobPublic, _warnings


def test_warnings_come_from_the_result_versions_metrics() -> None:
    metrics = {"warnings": ["label 'Drama': 97% of target rows score >= 0.5"], "labels_not_adapted": ["Western"]}
    out = _warnings(metrics)
    assert out[0].startswith("label 'Drama'")
    assert "Western" in out[1] and "not adapted" in out[1]
    assert _warnings(None) == [] and _warnings({"mAP": 0.5}) == []
    assert "warnings" in JobPublic.model_json_schema()["properties"]
