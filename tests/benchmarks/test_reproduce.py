"""benchmarks/reproduce.py end to end on a toy corpus with a tiny random BERT: cells cached and skipped on
rerun, the JSON of every cell, the report and its plots, and the same mAP from the same seed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import reproduce
from reproduce_cells import Cell, Settings, plan_cells

PNG = b"\x89PNG\r\n\x1a\n"


def _args(toy_data: Path, tiny_bert: str, cache: Path, docs: Path, *extra: str) -> list[str]:
    return ["--data-dir", str(toy_data), "--corpus", "toy", "--seeds", "0", "--ratios", "0.5", "--epochs", "1",
            "--min-steps", "0",
            "--max-tokens", "16", "--batch-size", "8", "--lr", "5e-3", "--base", tiny_bert, "--device", "cpu",
            "--cache", str(cache), "--docs-dir", str(docs), *extra]


@pytest.fixture(scope="module")
def first_run(toy_data: Path, tiny_bert: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("run")
    args = _args(toy_data, tiny_bert, root / "cache", root / "docs", "--ablations", "random_sampler")
    assert reproduce.main(args) == 0
    files = sorted((root / "cache" / "cells").glob("*.json"))
    return {"root": root, "args": args, "files": files, "mtimes": [f.stat().st_mtime_ns for f in files]}


def test_plan_covers_table_2_and_ablations() -> None:
    cells = plan_cells(["pubmed"], ratios=[0.5, 0.3, 0.1], seeds=[0, 1, 2], methods=["none", "bce", "dallmi", "upper"],
                       ablations=["mixup_encoder", "mixup_pooled", "log_loss", "random_sampler"], settings=Settings())
    assert len(cells) == 3 * (1 + 1 + 3 * 2) + 3 * (3 * 3 + 1)
    assert Cell("pubmed", "bce", 1.0, 0) in cells
    assert {c.ratio for c in cells if c.variant == "random_sampler"} == {0.5}
    assert len({c.key({"x": "y"}) for c in cells}) == len(cells)


def test_every_cell_is_cached_as_json(first_run: dict) -> None:
    names = {json.loads(f.read_text())["name"] for f in first_run["files"]}
    baselines = {f"toy-{m}-default-r{r}-s0" for m in ("tfidf", "probe") for r in ("0", "0.5", "1")}
    assert names == {"toy-source-default-r1-s0", "toy-none-default-r1-s0", "toy-bce-default-r1-s0",
                     "toy-bce-default-r0.5-s0", "toy-dallmi-default-r0.5-s0", "toy-dallmi-random_sampler-r0.5-s0",
                     *baselines}
    record = json.loads(next(f for f in first_run["files"] if "dallmi-default" in f.name).read_text())
    assert record["train_config"]["selection"] == "auto" and record["cell"]["seed"] == 0  # validation split only
    assert {"mAP", "micro_AP", "macro_F1", "roc_auc"} <= set(record["metrics"])
    assert [h["epoch"] for h in record["history"]] == [1] and "mAP" in record["history"][0]
    assert record["wall_s"] > 0 and record["hardware"]["torch_threads"] >= 1
    assert record["known_positives"] and record["settings"]["max_length"] == 16
    results = json.loads((first_run["root"] / "cache" / "results.json").read_text())
    assert len(results) == len(first_run["files"])
    assert not any((first_run["root"] / "cache" / "work").glob("*"))  # scratch checkpoints removed


def test_rerun_skips_cached_cells(first_run: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert reproduce.main(first_run["args"]) == 0
    out = capsys.readouterr().out
    assert out.count(": cached") == 5 + 6 and "mAP" not in out  # 6 baseline cells
    assert [f.stat().st_mtime_ns for f in first_run["files"]] == first_run["mtimes"]


def test_report_writes_tables_and_plots(first_run: dict) -> None:
    docs = first_run["root"] / "docs"
    assert reproduce.main([*first_run["args"], "--report"]) == 0
    text = (docs / "results.md").read_text()
    for heading in ("Table 2", "Table 3", "Table 4", "How our figures differ", "torch_threads"):
        assert heading in text
    assert "| toy | ours |" in text and "--report" in text
    for png in ("epochs_toy.png", "ratios_toy.png"):
        assert (docs / "img" / png).read_bytes()[:8] == PNG
    # hand-written commentary survives a regeneration
    marked = text.replace("_To be written by a person", "Our own words. _To be written by a person")
    (docs / "results.md").write_text(marked)
    assert reproduce.main([*first_run["args"], "--report"]) == 0
    assert "Our own words." in (docs / "results.md").read_text()


def test_same_seed_same_map(first_run: dict, toy_data: Path, tiny_bert: str, tmp_path: Path) -> None:
    args = _args(toy_data, tiny_bert, tmp_path / "cache", tmp_path / "docs", "--methods", "dallmi", "--ablations")
    assert reproduce.main(args) == 0
    again = json.loads(next((tmp_path / "cache" / "cells").glob("toy-dallmi-default-*.json")).read_text())
    first = json.loads(next(f for f in first_run["files"] if "dallmi-default" in f.name).read_text())
    assert again["key"] == first["key"]
    assert again["metrics"]["mAP"] == pytest.approx(first["metrics"]["mAP"], abs=1e-9)
    assert again["history"][0]["train_loss"] == pytest.approx(first["history"][0]["train_loss"], rel=1e-6)


def test_source_cap_per_corpus(capsys: pytest.CaptureFixture[str]) -> None:
    args = reproduce.parse_args(["--max-source-rows", "100", "reuters=2000"])
    assert reproduce.source_cap(args, "reuters") == 2000 and reproduce.source_cap(args, "pubmed") == 100
    assert reproduce.settings_of(args, "reuters")[0].max_source_rows == 2000
    assert reproduce.source_cap(reproduce.parse_args([]), "reuters") == 0
    with pytest.raises(SystemExit):
        reproduce.parse_args(["--max-source-rows", "reuters=many"])
    assert "expected N or CORPUS=N" in capsys.readouterr().err


def test_a_neural_cell_of_an_older_recipe_is_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    import reproduce_cells

    neural, baseline = Cell("pubmed", "dallmi", 0.3, 0), Cell("pubmed", "tfidf", 0.3, 0)
    before = (neural.key({"x": "y"}), baseline.key({"x": "y"}))
    monkeypatch.setattr(reproduce_cells, "RECIPE", reproduce_cells.RECIPE + 1)
    assert neural.key({"x": "y"}) != before[0]  # retrained, never reported as current
    assert baseline.key({"x": "y"}) == before[1]  # the baselines' code did not change: kept
