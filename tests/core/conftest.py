"""Fixtures shared by the dallmi_core tests: the real corpora and a tiny random BERT."""

from __future__ import annotations

from pathlib import Path

import pytest

from dallmi_core import Corpus, make_tiny_bert, read_corpus

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "pubmed" / "source.csv").is_file():
        raise FileNotFoundError(f"the shared corpora are expected at {DATA}")
    return DATA


@pytest.fixture(scope="session")
def pubmed(data_dir: Path) -> dict[str, Corpus]:
    return {name: read_corpus(data_dir / "pubmed" / f"{name}.csv")
            for name in ("source", "target_train", "target_test")}


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_tiny_bert(tmp_path_factory.mktemp("tiny-bert")))
