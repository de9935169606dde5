"""Tuning grids of benchmarks/reproduce.py: keys of earlier cells kept, shared cells planned once, the
holdout split scored on target_train's held-out rows, docs/tuning.md, a published results.json restored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import reproduce
from reproduce_cells import Cell, CellCache, Settings, plan_cells

HASHES = {"source": "a", "target_train": "b", "target_test": "c"}


def _args(toy_data: Path, tiny_bert: str, root: Path, *extra: str) -> list[str]:
    return ["--data-dir", str(toy_data), "--corpus", "toy", "--seeds", "0", "--ratios", "0.5", "--epochs", "1",
            "--min-steps", "0",
            "--max-tokens", "16", "--batch-size", "8", "--lr", "5e-3", "--base", tiny_bert, "--device", "cpu",
            "--cache", str(root / "cache"), "--docs-dir", str(root / "docs"), "--ablations", *extra]


def test_protocol_cells_keep_their_keys() -> None:
    cell = Cell("pubmed", "dallmi", 0.5, 0)
    spec = cell.spec(HASHES)
    assert not {"adapt_lr", "mixup_weight", "split"} & set(spec["settings"])  # left out at their defaults
    named = Cell("pubmed", "dallmi", 0.5, 0, settings=Settings(adapt_lr=5e-5, mixup_weight=1.0))
    assert named == cell and named.key(HASHES) == cell.key(HASHES)  # the protocol's lr, named explicitly
    tuned = Cell("pubmed", "dallmi", 0.5, 0, settings=Settings(adapt_lr=1e-4, mixup_weight=0.3))
    assert tuned.key(HASHES) != cell.key(HASHES)
    config = tuned.spec(HASHES)["train_config"]
    assert config["lr"] == 1e-4 and config["mixup_weight"] == 0.3
    # a tuned adaptation starts from the same source model, trained at the protocol's lr
    assert tuned.source() == cell.source() and tuned.source().key(HASHES) == cell.source().key(HASHES)
    assert cell.source().spec(HASHES)["train_config"]["lr"] == 5e-5
    assert tuned.name == "pubmed-dallmi-default-r0.5-s0-lr1e-04-lambda0.3"
    assert tuned.label == "default, lr=1e-04 lambda=0.3"


def test_grid_plans_shared_cells_once() -> None:
    grid = [Settings(mixup_weight=w) for w in (0.0, 0.3, 1.0)]
    cells = plan_cells(["pubmed"], ratios=[0.5, 0.1], seeds=[0], methods=["none", "bce", "dallmi", "upper"],
                       ablations=[], settings=grid)
    by_method = {m: [c for c in cells if c.method == m] for m in ("none", "bce", "dallmi")}
    assert len(by_method["none"]) == 1 and len(by_method["bce"]) == 3  # r = 1.0, 0.5, 0.1, whatever lambda
    assert sorted({c.settings.mixup_weight for c in by_method["dallmi"]}) == [0.0, 0.3, 1.0]
    assert len(by_method["dallmi"]) == 6 and len(set(cells)) == len(cells)


@pytest.fixture(scope="module")
def tuned(toy_data: Path, tiny_bert: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tune")
    grid = ["--split", "holdout", "--mixup-weight", "0", "1", "--adapt-lr", "5e-3", "1e-2", "--ratios", "0.5", "0.3"]
    assert reproduce.main(_args(toy_data, tiny_bert, root, *grid)) == 0
    assert reproduce.main(_args(toy_data, tiny_bert, root, *grid, "--report")) == 0
    return root


def test_holdout_cells_score_held_out_target_train(tuned: Path) -> None:
    records = [json.loads(p.read_text()) for p in (tuned / "cache" / "cells").glob("*holdout*.json")]
    # none; bce r=1, .5, .3 per lr; dallmi per lr, lambda, ratio; tfidf and probe r=0, .5, .3, 1 once
    assert len(records) == 1 + 2 * 3 + 2 * 2 * 2 + 2 * 4
    for record in records:
        held = record["rows"]["holdout"]
        assert record["metrics"]["n_rows"] == held != 16  # 16 = the rows of the toy target_test.csv
        assert held + record["rows"]["target_train"] == 32 and 0 <= record["metrics"]["PU_mAP"] <= 1
    dallmi = [r for r in records if r["cell"]["method"] == "dallmi"]
    assert {(r["train_config"]["lr"], r["train_config"]["mixup_weight"]) for r in dallmi} == {
        (5e-3, 0.0), (5e-3, 1.0), (1e-2, 0.0), (1e-2, 1.0)}
    assert len(dallmi) == 8


def test_tuning_report_picks_a_setting_per_method(tuned: Path) -> None:
    text = (tuned / "docs" / "tuning.md").read_text()
    assert "target_test is never scored" in text and "--split holdout" in text
    rows = [line for line in text.splitlines() if line.startswith("| bce") or line.startswith("| dallmi")]
    assert len(rows) == 2 + 4  # one row per setting, both ratios in it
    assert all("–" not in row.split("|")[4] for row in rows)  # mAP at 50% filled in every row
    assert sum("by mAP" in row for row in rows) == 2  # one pick per method
    assert "Picked by held-out mAP: bce lr=" in text and ", dallmi lr=" in text
    assert len(json.loads((tuned / "docs" / "tuning.json").read_text())) == 15 + 8  # with the baselines
    assert not (tuned / "docs" / "results.md").exists()


def test_restore_puts_published_cells_back(tuned: Path, tmp_path: Path) -> None:
    published = [json.loads(p.read_text()) for p in sorted((tuned / "cache" / "cells").glob("*.json"))]
    cache = CellCache(tmp_path / "cache")
    assert cache.restore(published) == len(published) and cache.restore(published) == 0
    restored = cache.records()
    assert len(restored) == len(published)
    for cell, record in restored.items():  # the same cell, hence the same file name and key
        assert cache.path(cell, record["data"]).name == f"{record['name']}-{record['key']}.json"
        assert cell.key(record["data"]) == record["key"]


def test_via_api_refuses_the_holdout_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--corpus", "pubmed", "--split", "holdout", "--via-api", "http://127.0.0.1:9", "--cache", str(tmp_path)]
    assert reproduce.main(args) == 2
    assert "dallmi_core only" in capsys.readouterr().err


def test_report_shows_a_tuned_setting_beside_the_protocol(tuned: Path, toy_data: Path, tiny_bert: str) -> None:
    assert reproduce.main(_args(toy_data, tiny_bert, tuned, "--methods", "dallmi", "--mixup-weight", "0")) == 0
    assert reproduce.main(_args(toy_data, tiny_bert, tuned, "--methods", "dallmi", "--report")) == 0
    text = (tuned / "docs" / "results.md").read_text()
    assert "| toy | ours |" in text and "| toy | ours, lambda=0 |" in text
    published = json.loads((tuned / "docs" / "results.json").read_text())
    names = {r["name"] for r in published}
    assert "toy-dallmi-default-r0.5-s0-lambda0" in names
    assert not any(name.endswith("holdout") for name in names)  # tuning cells stay in docs/tuning.json
