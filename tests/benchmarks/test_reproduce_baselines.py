"""The baselines of benchmarks/reproduce.py (tfidf, probe) and the floors: planning and keys, a cell end to
end, the constant score of a label without positives, thresholds that never see evaluation labels, the
embedding cache, and the rows of docs/results.md and docs/tuning.md."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import reproduce
import reproduce_baselines as rb
from reproduce_cells import BASELINES, Cell, CellCache, Settings, data_hashes, load_corpora, plan_cells

from dallmi_core import Corpus, evaluate_scores

HASHES = {"source": "a", "target_train": "b", "target_test": "c"}


def _args(toy_data: Path, tiny_bert: str, root: Path, *extra: str) -> list[str]:
    return ["--data-dir", str(toy_data), "--corpus", "toy", "--seeds", "0", "1", "--ratios", "0.5", "--epochs", "1",
            "--min-steps", "0",
            "--max-tokens", "16", "--base", tiny_bert, "--device", "cpu", "--cache", str(root / "cache"),
            "--docs-dir", str(root / "docs"), "--methods", "tfidf", "probe", "--ablations", *extra]


def _toy(toy_data: Path, settings: Settings) -> dict[str, Corpus]:
    return load_corpora(toy_data, "toy", settings)


def test_plan_baselines_at_every_training_set() -> None:
    grid = [Settings(epochs=4, max_length=64, mixup_weight=w) for w in (0.3, 1.0)]
    neural = plan_cells(["pubmed"], ratios=[0.5, 0.3, 0.1], seeds=[0, 1], methods=["none", "bce", "dallmi"],
                        ablations=[], settings=grid)
    cells = plan_cells(["pubmed"], ratios=[0.5, 0.3, 0.1], seeds=[0, 1], methods=["none", "bce", "dallmi", *BASELINES],
                       ablations=[], settings=grid)
    baselines = [c for c in cells if c.method in BASELINES]
    assert [c for c in cells if c.method not in BASELINES] == neural  # the other cells, their keys unchanged
    assert len(baselines) == 2 * 2 * 5 and len(set(baselines)) == len(baselines)  # a lambda grid plans them once
    assert {c.ratio for c in baselines} == {0.0, 0.5, 0.3, 0.1, 1.0}
    tfidf = next(c for c in baselines if c.method == "tfidf")
    probe = next(c for c in baselines if c.method == "probe")
    assert tfidf.settings == Settings()  # no training budget: the same cell whatever the epochs
    assert (probe.settings.max_length, probe.settings.epochs) == (64, Settings().epochs)
    spec = tfidf.spec(HASHES)
    assert "train_config" not in spec and spec["baseline"]["logreg"]["class_weight"] == "balanced"
    assert not {"adapt_lr", "mixup_weight", "split"} & set(spec["settings"])
    held = Settings(split="holdout").for_method("tfidf")
    assert Cell("pubmed", "tfidf", 0.0, 0, settings=held).name == "pubmed-tfidf-default-r0-s0-holdout"
    assert len({c.key(HASHES) for c in cells}) == len(cells)


def test_floors_match_evaluate_scores_on_constant_scores() -> None:
    y = np.array([[1, 0, 0, 1], [0, 0, 1, 1], [1, 0, 0, 1], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=np.uint8)  # (5, 4)
    labels = ["a", "b", "c", "d"]  # b has no positive: left out, as in evaluate_scores
    floor = rb.floors(y)
    yes = evaluate_scores(y, np.ones(y.shape), labels, thresholds=np.full(4, 0.5))
    assert floor["all_positive_macro_F1"] == pytest.approx(yes["macro_F1"], abs=1e-12)
    assert floor["label_prior_mAP"] == pytest.approx(evaluate_scores(y, np.full(y.shape, 0.3), labels)["mAP"])
    assert floor["label_prior_mAP"] == pytest.approx(np.mean([0.4, 0.4, 0.8]))
    assert np.isnan(rb.floors(np.zeros((3, 2)))["label_prior_mAP"])


def test_label_without_positive_gets_a_constant_score() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)).astype(np.float32)  # (N, H)
    y = np.stack([x[:, 0] > 0, np.zeros(40, bool), np.ones(40, bool), x[:, 1] > 0], axis=1).astype(np.uint8)
    scores = rb.fit_predict("probe", x[:30], y[:30], x[30:], seed=0)  # (10, 4)
    assert scores.shape == (10, 4)
    assert np.all(scores[:, 1] == 0.0) and np.all(scores[:, 2] == 1.0)
    assert 0 < scores[:, 0].std() and 0 <= scores.min() and scores.max() <= 1
    single = rb.fit_predict("probe", x[:30], y[:30, :2], x[30:], seed=0)  # one fitted column: a binary target
    assert np.allclose(single[:, 0], scores[:, 0]) and np.all(single[:, 1] == 0.0)
    thresholds = rb.cv_thresholds("probe", x, y, seed=0)
    assert thresholds.shape == (4,) and thresholds[1] == 0.5


def test_tfidf_cell_learns_the_signal(toy_data: Path, tmp_path: Path) -> None:
    settings = Settings().for_method("tfidf")
    corpora, hashes = _toy(toy_data, settings), data_hashes(toy_data, "toy")
    cache = CellCache(tmp_path)
    for ratio in (0.0, 0.5, 1.0):
        cell = Cell("toy", "tfidf", ratio, 0, settings=settings)
        record = rb.run_baseline_cell(cell, cache, hashes, corpora)
        m = record["metrics"]
        assert m["mAP"] > m["label_prior_mAP"] + 0.2 and m["n_rows"] == corpora["target_test"].n_rows
        assert {"macro_F1", "macro_F1_at_0.5", "all_positive_macro_F1", "roc_auc"} <= set(m)
        target = 0 if ratio == 0.0 else corpora["target_train"].n_rows
        assert record["rows"]["train"] == corpora["source"].n_rows + target
        assert len(record["thresholds"]) == 3 and cache.load(cell, hashes) is not None
    hidden = json.loads(cache.path(Cell("toy", "tfidf", 0.5, 0, settings=settings), hashes).read_text())
    full = json.loads(cache.path(Cell("toy", "tfidf", 1.0, 0, settings=settings), hashes).read_text())
    assert sum(hidden["known_positives"].values()) < sum(full["known_positives"].values())
    assert hidden["baseline"]["cv_folds"] == 5 and "train_config" not in hidden


def test_thresholds_never_see_evaluation_labels(toy_data: Path, tmp_path: Path) -> None:
    settings = Settings().for_method("tfidf")
    corpora, hashes = _toy(toy_data, settings), data_hashes(toy_data, "toy")
    test = corpora["target_test"]
    flipped = {**corpora, "target_test": replace(test, y=(1 - test.y).astype(np.uint8))}
    cell = Cell("toy", "tfidf", 0.5, 0, settings=settings)
    first = rb.run_baseline_cell(cell, CellCache(tmp_path / "a"), hashes, corpora)
    second = rb.run_baseline_cell(cell, CellCache(tmp_path / "b"), hashes, flipped)
    assert first["thresholds"] == second["thresholds"]
    assert first["metrics"]["mAP"] != second["metrics"]["mAP"]


def test_embeddings_are_cached_across_cells(toy_data: Path, tiny_bert: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    embed = rb.sentence_embeddings

    def counting(texts: list[str], *args: object) -> np.ndarray:
        calls.append(len(texts))
        return embed(texts, *args)

    monkeypatch.setattr(rb, "sentence_embeddings", counting)
    settings = Settings(base=tiny_bert, max_length=16, device="cpu").for_method("probe")
    corpora, hashes = _toy(toy_data, settings), data_hashes(toy_data, "toy")
    rb.run_baseline_cell(Cell("toy", "probe", 0.0, 0, settings=settings), CellCache(tmp_path), hashes, corpora)
    assert calls == [32, 16]  # source and target_test
    for ratio, seed in ((0.5, 0), (1.0, 1)):  # a new cache object on the same folder: a later run
        record = rb.run_baseline_cell(Cell("toy", "probe", ratio, seed, settings=settings), CellCache(tmp_path),
                                      hashes, corpora)
        assert 0 <= record["metrics"]["mAP"] <= 1
    assert calls == [32, 16, 32]  # target_train once
    files = sorted(p.name for p in (tmp_path / "embeddings").glob("*.npy"))
    assert [f.rsplit("-", 1)[0] for f in files] == ["toy-source", "toy-target_test", "toy-target_train"]
    vectors = np.load(tmp_path / "embeddings" / files[0])
    assert vectors.shape == (32, 32) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_padding_does_not_change_an_embedding(tiny_bert: str) -> None:
    short = "heart cell gene"
    alone = rb.sentence_embeddings([short], tiny_bert, 32)  # (1, H)
    padded = rb.sentence_embeddings([short, " ".join(["blood liver skin"] * 8)], tiny_bert, 32)  # (2, H)
    assert np.allclose(alone[0], padded[0], atol=1e-5) and not np.allclose(padded[0], padded[1])


def test_report_shows_baselines_and_floors(toy_data: Path, tiny_bert: str, tmp_path: Path) -> None:
    assert reproduce.main(_args(toy_data, tiny_bert, tmp_path)) == 0
    assert len(list((tmp_path / "cache" / "cells").glob("*.json"))) == 2 * 2 * 3  # no source model trained
    assert reproduce.main(_args(toy_data, tiny_bert, tmp_path, "--report")) == 0
    text = (tmp_path / "docs" / "results.md").read_text()
    for row in ("tfidf (source only)", "tfidf (source + 50% target)", "tfidf (source + 100% target)",
                "probe (source only)", "probe (source + 100% target)"):
        assert f"| {row} |" in text
    assert "| toy | tfidf |" in text and "| toy | probe |" in text
    assert "Floors of target_test (no training): label prior mAP" in text and "(n=2)" in text
    line = next(li for li in text.splitlines() if li.startswith("| tfidf (source + 50% target) |"))
    assert "–" not in line  # every figure, both macro F1s included
    published = {r["name"] for r in json.loads((tmp_path / "docs" / "results.json").read_text())}
    assert "toy-tfidf-default-r0-s1" in published and not any("source-" in n for n in published)


def test_tuning_report_shows_baselines_on_held_out_rows(toy_data: Path, tiny_bert: str, tmp_path: Path) -> None:
    args = _args(toy_data, tiny_bert, tmp_path, "--split", "holdout")
    assert reproduce.main(args) == 0 and reproduce.main([*args, "--report"]) == 0
    records = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "cells").glob("*holdout*.json")]
    assert len(records) == 12
    for record in records:
        assert record["metrics"]["n_rows"] == record["rows"]["holdout"] != 16  # never the toy target_test.csv
        assert 0 <= record["metrics"]["PU_mAP"] <= 1
    text = (tmp_path / "docs" / "tuning.md").read_text()
    assert "Baselines on the same held-out rows" in text and "| toy | tfidf |" in text
    assert "Floors of the held-out rows (no training)" in text
