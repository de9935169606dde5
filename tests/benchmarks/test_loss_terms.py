"""benchmarks/loss_terms.py on the toy corpus: every term measured for both samplers, and the label-balanced
sampler's batches hold a known positive of every label."""

from __future__ import annotations

import json
import math
from pathlib import Path

import loss_terms


def test_probe_measures_terms_and_batches(toy_data: Path, tiny_bert: str, tmp_path: Path) -> None:
    out = tmp_path / "terms.json"
    args = ["--data-dir", str(toy_data), "--corpus", "toy", "--ratios", "0.5", "--epochs", "1", "--max-tokens", "16",
            "--batch-size", "8", "--base", tiny_bert, "--cache", str(tmp_path / "cache"), "--batches", "3",
            "--json", str(out)]
    assert loss_terms.main(args) == 0
    figures = json.loads(out.read_text())
    assert set(figures) == {"r0.5-balanced", "r0.5-random"}
    balanced = figures["r0.5-balanced"]
    assert balanced["labels_with_positive"] == 1.0 and balanced["min_positives"] >= 1  # B = 8 > L = 3
    for row in figures.values():
        assert all(math.isfinite(v) for v in row.values())
        assert row["grad_var"] > 0 and row["grad_mixup"] > 0 and row["grad_bce"] > 0
        assert row["mixup"] >= 0 and 0 < row["score_pos"] < 1
    assert list((tmp_path / "cache" / "cells").glob("toy-source-*.json"))  # the source model was cached
