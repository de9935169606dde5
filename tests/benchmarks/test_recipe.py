"""benchmarks/recipe.py: source and adaptation variants scored on held-out target_train rows, cached and
resumed, with the PU threshold rules compared on the same scores."""

from __future__ import annotations

import json
from pathlib import Path

import recipe


def test_recipe_scores_variants_on_held_out_rows_and_resumes(toy_data: Path, tiny_bert: str, tmp_path: Path,
                                                              capsys) -> None:
    args = ["--data-dir", str(toy_data), "--corpus", "toy", "--ratios", "0.5", "--epochs", "1", "--max-tokens", "16",
            "--min-steps", "0", "--base", tiny_bert, "--cache", str(tmp_path), "--variants", "default", "paper"]
    assert recipe.main(args) == 0
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [(r["method"], r.get("variant")) for r in records] == [("none", None), ("dallmi", "default"),
                                                                  ("dallmi", "paper")]
    for r in records:
        for key in ("mAP", "micro_AP", "macro_F1", "macro_F1_prior", "macro_F1_lee_liu"):
            assert 0.0 <= r[key] <= 1.0, key
        assert r["macro_F1_oracle"] >= r["macro_F1_prior"] - 1e-9  # tuned on the held-out labels: a ceiling
    assert 0.0 < records[0]["label_prior_mAP"] < 1.0 and 0.0 < records[0]["all_positive_macro_F1"] < 1.0
    capsys.readouterr()
    assert recipe.main(args) == 0  # everything cached: nothing trains, nothing is logged again
    assert capsys.readouterr().out == ""
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 3
