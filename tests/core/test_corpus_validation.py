"""The one set of corpus and config rules that the API and the worker share (issue 9, finding 5)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dallmi_core import Corpus, CorpusError, TrainConfig, read_corpus

WIDE = b"id,text,A,B\n1,first text,1,0\n2,second text,0,1\n3,third text,1,1\n"


@pytest.mark.parametrize("newline", [b"\n", b"\r", b"\r\n"])
def test_every_line_ending_reads_the_same_corpus(newline):
    corpus = read_corpus(WIDE.replace(b"\n", newline))
    assert corpus.content_hash == read_corpus(WIDE).content_hash
    labels_csv = b"text,labels\nfirst,A|B\nsecond,B\n".replace(b"\n", newline)
    assert read_corpus(labels_csv).labels == ["A", "B"]


@pytest.mark.parametrize(
    ("labels", "problem"),
    [(["text"], "reserved"), (["id"], "reserved"), ([""], "empty"), ([" x"], "whitespace"), (["x "], "whitespace"),
     (["a\tb"], "control"), (["A", "A"], "duplicate"), (["x" * 201], "longer than 200")],
)
def test_label_names_the_stored_csv_cannot_keep_are_refused(labels, problem):
    with pytest.raises(CorpusError, match=problem):
        Corpus(ids=["0"], texts=["a text"], labels=labels, y=np.ones((1, len(labels))))


@pytest.mark.parametrize(
    ("ids", "texts", "problem"),
    [
        (["a", "a"], ["x", "y"], "duplicate id"),
        ([" a", "b"], ["x", "y"], "whitespace"),
        (["", "b"], ["x", "y"], "empty id"),
        (["a", "b"], ["x", "y" * 100_001], "the limit is 100000"),
        (["a", "b"], ["x", "y\x00"], "NUL"),
    ],
)
def test_rows_the_stored_csv_cannot_keep_are_refused_with_their_row(ids, texts, problem):
    with pytest.raises(CorpusError, match=problem) as info:
        Corpus(ids=ids, texts=texts, labels=["A"], y=np.ones((2, 1)))
    assert info.value.row is not None


def test_jsonl_ids_are_trimmed_like_csv_ids_so_duplicates_show():
    lines = [{"id": "a", "text": "x", "labels": ["A"]}, {"id": " a", "text": "y", "labels": ["A"]}]
    with pytest.raises(CorpusError, match="duplicate id 'a'"):
        read_corpus("\n".join(map(json.dumps, lines)).encode(), format="jsonl")


_names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    labels=st.lists(_names, min_size=1, max_size=4, unique=True),
    rows=st.lists(st.tuples(_names, _names), min_size=1, max_size=5, unique_by=lambda r: r[0]),
    data=st.data(),
)
def test_every_accepted_corpus_reads_back_unchanged_from_its_stored_form(tmp_path_factory, labels, rows, data):
    """What the API accepts (any valid Corpus) is exactly what the worker reads back from the wide CSV."""
    y = np.array(data.draw(st.lists(st.lists(st.integers(0, 1), min_size=len(labels), max_size=len(labels)),
                                    min_size=len(rows), max_size=len(rows))), dtype=np.uint8)
    try:
        corpus = Corpus(ids=[r[0] for r in rows], texts=[r[1] for r in rows], labels=labels, y=y)
    except CorpusError:
        return
    path = tmp_path_factory.mktemp("roundtrip") / "c.csv"
    corpus.to_wide_csv(path)
    back = read_corpus(path, format="wide")
    assert (back.ids, back.texts, back.labels) == (corpus.ids, corpus.texts, corpus.labels)
    assert np.array_equal(back.y, corpus.y)


@pytest.mark.parametrize(("key", "value"), [("seed", -1), ("seed", 2**32), ("epochs", 2147483648), ("epochs", 0),
                                            ("batch_size", 4097), ("lr", 2.0), ("device", "cuda\n")])
def test_config_values_past_their_bounds_are_refused(key, value):
    with pytest.raises(ValueError, match=key):
        TrainConfig.from_dict({key: value})


def test_planned_steps_follow_min_steps_and_the_limits_name_them():
    config = TrainConfig(batch_size=10, epochs=2, min_steps=100)
    assert config.planned_steps(95) == (10, 100)  # 10 batches a round, raised to 10 epochs
    assert TrainConfig(batch_size=10, epochs=2, min_steps=0, grad_accum=2).planned_steps(95) == (2, 10)
    config.check_limits(95, max_epochs=10, max_steps=100)
    with pytest.raises(ValueError, match="10 epochs; the limit is 9"):
        config.check_limits(95, max_epochs=9, max_steps=100)
    with pytest.raises(ValueError, match="100 optimiser steps"):
        config.check_limits(95, max_epochs=10, max_steps=99)
