"""Fixtures of the benchmark tests: a toy corpus folder in the shared-data layout and a tiny random BERT."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from dallmi_core import Corpus, make_tiny_bert

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:  # benchmarks/ holds scripts, not a package
    sys.path.insert(0, str(BENCHMARKS))

WORDS = ["heart", "cell", "gene", "drug", "brain", "bone", "virus", "trial", "dose", "blood", "liver", "skin"]
LABELS = ["A", "B", "C"]


def _toy(n: int, seed: int) -> Corpus:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, len(LABELS))) < 0.4).astype(np.uint8)  # (N, L)
    y[np.arange(n) % len(LABELS) == 0, 0] = 1  # every label has positives
    y[:3] = np.eye(len(LABELS), dtype=np.uint8)
    texts = [" ".join(rng.choice(WORDS, size=12)) + " " + " ".join(LABELS[j].lower() * 3 for j in np.flatnonzero(row))
             for row in y]
    return Corpus(ids=[f"r{seed}-{i}" for i in range(n)], texts=texts, labels=list(LABELS), y=y)


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<dir>/toy/{source,target_train,target_test}.csv`` with 3 labels."""
    root = tmp_path_factory.mktemp("data")
    (root / "toy").mkdir()
    for name, n, seed in (("source", 32, 1), ("target_train", 32, 2), ("target_test", 16, 3)):
        _toy(n, seed).to_wide_csv(root / "toy" / f"{name}.csv")
    return root


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_tiny_bert(tmp_path_factory.mktemp("tiny-bert")))
