"""Unit tests of dallmi_core.corpus: the three on-disk formats, validation errors, hiding labels, hold-out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dallmi_core import Corpus, CorpusError, hide_labels, read_corpus, split_holdout

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"

IDS = ["a1", "b2", "c3", "d4"]
TEXTS = ["first text, with a comma", 'second "quoted" text', "third text é ü", "fourth text"]
LABELS = ["bio", "chem", "phys"]  # sorted, the default column order of the labels-column formats
Y = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0], [1, 1, 1]], dtype=np.uint8)


def _write_wide(path: Path) -> Path:
    Corpus(ids=IDS, texts=TEXTS, labels=LABELS, y=Y).to_wide_csv(path)
    return path


def _names(row: np.ndarray) -> list[str]:
    return [name for name, v in zip(LABELS, row, strict=True) if v]


def _write_labels_csv(path: Path, sep: str, column: str = "labels") -> Path:
    import csv

    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", column])
        for row_id, text, row in zip(IDS, TEXTS, Y, strict=True):
            writer.writerow([row_id, text, sep.join(_names(row))])
    return path


def _write_jsonl(path: Path) -> Path:
    lines = [json.dumps({"id": i, "text": t, "labels": _names(r)}, ensure_ascii=False)
             for i, t, r in zip(IDS, TEXTS, Y, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _same(corpus: Corpus) -> None:
    assert corpus.ids == IDS
    assert corpus.texts == TEXTS
    assert corpus.labels == LABELS
    assert corpus.y.dtype == np.uint8
    np.testing.assert_array_equal(corpus.y, Y)


def test_three_formats_read_to_the_same_corpus_and_hash(tmp_path: Path) -> None:
    reference = Corpus(ids=list(IDS), texts=list(TEXTS), labels=list(LABELS), y=Y.copy())
    corpora = {
        "wide": read_corpus(_write_wide(tmp_path / "wide.csv")),
        "labels|": read_corpus(_write_labels_csv(tmp_path / "labels.csv", "|")),
        "labels;": read_corpus(_write_labels_csv(tmp_path / "semi.csv", ";"), label_sep=";"),
        "labels-custom-column": read_corpus(_write_labels_csv(tmp_path / "tags.csv", " / ", column="tags"),
                                            labels_column="tags", label_sep="/"),
        "jsonl": read_corpus(_write_jsonl(tmp_path / "data.jsonl")),
        "jsonl-bytes": read_corpus((tmp_path / "data.jsonl").read_bytes()),
        "wide-bytes": read_corpus((tmp_path / "wide.csv").read_bytes()),
        "explicit-format": read_corpus(tmp_path / "labels.csv", format="labels"),
    }
    for name, corpus in corpora.items():
        _same(corpus)
        assert corpus.content_hash == reference.content_hash, name
    assert corpora["wide"].n_rows == 4
    assert corpora["wide"].known_positives == {"bio": 2, "chem": 2, "phys": 2}


def test_content_hash_changes_with_content() -> None:
    base = Corpus(ids=list(IDS), texts=list(TEXTS), labels=list(LABELS), y=Y.copy())
    y2 = Y.copy()
    y2[1, 1] = 1
    variants = [
        Corpus(ids=["x", *IDS[1:]], texts=list(TEXTS), labels=list(LABELS), y=Y.copy()),
        Corpus(ids=list(IDS), texts=["other", *TEXTS[1:]], labels=list(LABELS), y=Y.copy()),
        Corpus(ids=list(IDS), texts=list(TEXTS), labels=["bio", "chem", "math"], y=Y.copy()),
        Corpus(ids=list(IDS), texts=list(TEXTS), labels=list(LABELS), y=y2),
    ]
    hashes = {base.content_hash, *(v.content_hash for v in variants)}
    assert len(hashes) == 5
    assert all(len(h) == 64 for h in hashes)


def test_label_set_fixes_column_order_of_label_lists(tmp_path: Path) -> None:
    order = ["phys", "bio", "chem", "math"]
    corpus = read_corpus(_write_jsonl(tmp_path / "d.jsonl"), label_set=order)
    assert corpus.labels == order
    np.testing.assert_array_equal(corpus.y[:, :3], Y[:, [2, 0, 1]])
    assert corpus.y[:, 3].sum() == 0


def test_missing_ids_default_to_row_numbers(tmp_path: Path) -> None:
    (tmp_path / "w.csv").write_text("text,A\nx,1\ny,0\n", encoding="utf-8")
    (tmp_path / "j.jsonl").write_text('{"text": "x", "labels": ["A"]}\n{"text": "y"}\n', encoding="utf-8")
    wide, jsonl = read_corpus(tmp_path / "w.csv"), read_corpus(tmp_path / "j.jsonl")
    assert wide.ids == jsonl.ids == ["0", "1"]
    assert wide.content_hash == jsonl.content_hash


def test_round_trip_through_wide_csv(tmp_path: Path) -> None:
    corpus = read_corpus(_write_jsonl(tmp_path / "d.jsonl"))
    corpus.to_wide_csv(tmp_path / "back.csv")
    again = read_corpus(tmp_path / "back.csv")
    _same(again)
    assert again.content_hash == corpus.content_hash


def test_real_pubmed_source_reads() -> None:
    path = DATA / "pubmed" / "source.csv"
    assert path.is_file(), f"the shared corpora are expected at {DATA}"
    corpus = read_corpus(path)
    assert corpus.n_rows == 710
    assert len(corpus.labels) == 14
    assert corpus.labels == json.loads((DATA / "pubmed" / "meta.json").read_text())["labels"]
    assert corpus.y.shape == (710, 14)
    assert len(set(corpus.ids)) == 710
    assert all(t.strip() for t in corpus.texts)
    corpus.require_known_positives()
    assert corpus.content_hash == read_corpus(path.read_bytes()).content_hash


# ------------------------------------------------------------------------------------------ validation errors

def _error(tmp_path: Path, name: str, content: str | bytes, **kwargs: object) -> CorpusError:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(CorpusError) as info:
        read_corpus(path, **kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    return info.value


def test_missing_text_column(tmp_path: Path) -> None:
    err = _error(tmp_path, "w.csv", "id,body,A\n1,x,1\n")
    assert "missing 'text' column" in str(err)
    assert err.row is None


def test_empty_text(tmp_path: Path) -> None:
    err = _error(tmp_path, "w.csv", "id,text,A\n1,fine,1\n2,   ,0\n")
    assert err.row == 2 and "empty text" in err.problem
    assert str(err) == "row 2: empty text"
    err = _error(tmp_path, "j.jsonl", '{"text": "ok"}\n{"text": ""}\n')
    assert err.row == 2 and "empty text" in err.problem


def test_bad_value_in_label_column(tmp_path: Path) -> None:
    err = _error(tmp_path, "w.csv", "id,text,A,B\n1,x,1,0\n2,y,0,1\n3,z,0,2\n")
    assert err.row == 3
    assert "'B'" in err.problem and "'2'" in err.problem
    assert str(err).startswith("row 3:")


def test_wide_label_not_in_label_set(tmp_path: Path) -> None:
    err = _error(tmp_path, "w.csv", "id,text,A,Q\n1,x,1,0\n", label_set=["A", "B"])
    assert "not in the label set" in err.problem and "Q" in err.problem


def test_duplicate_ids(tmp_path: Path) -> None:
    err = _error(tmp_path, "w.csv", "id,text,A\nx,a,1\ny,b,0\nx,c,0\n")
    assert err.row == 3
    assert "duplicate id 'x'" in err.problem and "row 1" in err.problem


@pytest.mark.parametrize("fmt", ["jsonl", "labels"])
def test_unknown_label_in_label_lists(tmp_path: Path, fmt: str) -> None:
    if fmt == "jsonl":
        err = _error(tmp_path, "d.jsonl", '{"text": "a", "labels": ["A"]}\n{"text": "b", "labels": ["Z"]}\n',
                     label_set=["A", "B"])
    else:
        err = _error(tmp_path, "l.csv", "text,labels\na,A|B\nb,B|Z\n", label_set=["A", "B"])
    assert err.row == 2
    assert "unknown label" in err.problem and "'Z'" in err.problem


def test_malformed_json_line(tmp_path: Path) -> None:
    err = _error(tmp_path, "d.jsonl", '{"text": "a"}\n{"text": "b", }\n{"text": "c"}\n')
    assert err.row == 2 and "invalid JSON" in err.problem
    err = _error(tmp_path, "e.jsonl", '{"text": "a"}\n{"body": "b"}\n')
    assert err.row == 2 and "'text'" in err.problem
    err = _error(tmp_path, "f.jsonl", '{"text": "a", "labels": "A"}\n')
    assert err.row == 1 and "'labels'" in err.problem


def test_non_utf8_bytes(tmp_path: Path) -> None:
    err = _error(tmp_path, "w.csv", b"id,text,A\n1,ok,1\n2,caf\xe9,0\n")
    assert "not UTF-8" in err.problem and "line 3" in err.problem
    with pytest.raises(CorpusError, match="not UTF-8"):
        read_corpus(b"text,A\n\xff\xfe,1\n")


def test_wrong_field_count(tmp_path: Path) -> None:
    err = _error(tmp_path, "w.csv", "id,text,A\n1,a,1\n2,b\n")
    assert err.row == 2 and "2 fields" in err.problem and "header has 3" in err.problem


def test_other_file_problems(tmp_path: Path) -> None:
    assert "empty" in _error(tmp_path, "e.csv", "  \n").problem
    assert "no data rows" in _error(tmp_path, "h.csv", "id,text,A\n").problem
    assert "no label columns" in _error(tmp_path, "n.csv", "id,text\n1,a\n").problem
    with pytest.raises(CorpusError, match="no such file"):
        read_corpus(tmp_path / "missing.csv")
    assert "missing labels column 'tags'" in _error(tmp_path, "t.csv", "text,A\na,1\n", format="labels",
                                                    labels_column="tags").problem


def test_corpus_shape_is_checked() -> None:
    with pytest.raises(CorpusError, match="shape"):
        Corpus(ids=["a"], texts=["x"], labels=["A", "B"], y=np.zeros((1, 3)))
    with pytest.raises(CorpusError, match="ids"):
        Corpus(ids=["a", "b"], texts=["x"], labels=["A"], y=np.zeros((1, 1)))


def test_require_known_positives_names_the_labels() -> None:
    corpus = Corpus(ids=["1", "2"], texts=["a", "b"], labels=["A", "B", "C"], y=np.array([[1, 0, 0], [1, 0, 0]]))
    with pytest.raises(CorpusError) as info:
        corpus.require_known_positives()
    assert "B" in str(info.value) and "C" in str(info.value) and "A" not in str(info.value).split(":")[-1]
    Corpus(ids=["1"], texts=["a"], labels=["A"], y=np.array([[1]])).require_known_positives()


# ------------------------------------------------------------------------------------ hide_labels, split_holdout

@st.composite
def full_corpora(draw: st.DrawFn) -> Corpus:
    n_rows = draw(st.integers(1, 40))
    n_labels = draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    y = (rng.random((n_rows, n_labels)) < draw(st.floats(0.0, 1.0))).astype(np.uint8)
    return Corpus(ids=[f"r{i}" for i in range(n_rows)], texts=[f"text {i}" for i in range(n_rows)],
                  labels=[f"L{j}" for j in range(n_labels)], y=y)


@settings(max_examples=50, deadline=None)
@given(corpus=full_corpora(), ratio=st.sampled_from([0.1, 0.3, 0.5, 0.75, 1.0]), seed=st.integers(0, 10**6))
def test_hide_labels_keeps_rounded_share_and_only_hides(corpus: Corpus, ratio: float, seed: int) -> None:
    hidden = hide_labels(corpus, ratio, seed)
    assert hidden.ids == corpus.ids and hidden.texts == corpus.texts and hidden.labels == corpus.labels
    assert hidden.y.dtype == np.uint8 and hidden.y.shape == corpus.y.shape
    assert not (hidden.y > corpus.y).any(), "a 0 turned into a 1"
    for label, n_pos in enumerate(corpus.y.sum(axis=0).tolist()):
        expected = max(1, round(ratio * n_pos)) if n_pos else 0
        assert int(hidden.y[:, label].sum()) == expected
    # depends only on (corpus, ratio, seed): an equal corpus built anew gives the same draw
    twin = Corpus(ids=list(corpus.ids), texts=list(corpus.texts), labels=list(corpus.labels), y=corpus.y.copy())
    np.testing.assert_array_equal(hide_labels(twin, ratio, seed).y, hidden.y)
    assert corpus.y.sum() == twin.y.sum()  # the input is not modified


def test_hide_labels_hand_counts_and_seed_dependence() -> None:
    y = np.zeros((40, 3), dtype=np.uint8)
    y[:20, 0] = 1  # 20 positives -> round(0.3 * 20) = 6 kept
    y[:3, 1] = 1  # 3 positives -> max(1, round(0.9)) = 1 kept
    y[10:35, 2] = 1  # 25 positives -> round(7.5) = 8 kept (round half to even)
    corpus = Corpus(ids=[str(i) for i in range(40)], texts=[f"t{i}" for i in range(40)], labels=["A", "B", "C"], y=y)
    hidden = hide_labels(corpus, 0.3, 0)
    assert hidden.y.sum(axis=0).tolist() == [6, 1, 8]
    assert not hidden.y[20:, 0].any() and not hidden.y[3:, 1].any()
    assert (hide_labels(corpus, 0.3, 0).y == hidden.y).all()
    assert not (hide_labels(corpus, 0.3, 1).y == hidden.y).all()
    assert (hide_labels(corpus, 1.0, 5).y == y).all()
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="ratio"):
            hide_labels(corpus, bad, 0)


@settings(max_examples=50, deadline=None)
@given(corpus=full_corpora(), fraction=st.floats(0.05, 0.95), seed=st.integers(0, 10**6))
def test_split_holdout_partitions_rows(corpus: Corpus, fraction: float, seed: int) -> None:
    n_held = int(round(fraction * corpus.n_rows))
    if n_held == 0:
        with pytest.raises(ValueError, match="empty"):
            split_holdout(corpus, fraction, seed)
        return
    try:
        train, held = split_holdout(corpus, fraction, seed)
    except ValueError as exc:  # every held-out row was given back to keep a positive per label
        assert "empty" in str(exc)
        return
    assert 0 < held.n_rows <= n_held and train.n_rows == corpus.n_rows - held.n_rows
    kept = corpus.y.sum(axis=0) > 0
    assert (train.y.sum(axis=0)[kept] > 0).all()  # every label keeps a known positive for training
    assert set(train.ids).isdisjoint(held.ids)
    assert sorted(train.ids + held.ids) == sorted(corpus.ids)
    index = {row_id: i for i, row_id in enumerate(corpus.ids)}
    for part in (train, held):
        rows = [index[row_id] for row_id in part.ids]
        assert rows == sorted(rows)  # original order kept
        assert part.texts == [corpus.texts[i] for i in rows]
        np.testing.assert_array_equal(part.y, corpus.y[rows])
        assert part.labels == corpus.labels
    again = split_holdout(corpus, fraction, seed)
    assert again[0].ids == train.ids and again[1].ids == held.ids


def test_split_holdout_bad_fraction() -> None:
    corpus = Corpus(ids=["a", "b"], texts=["x", "y"], labels=["A"], y=np.array([[1], [0]]))
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match="fraction"):
            split_holdout(corpus, bad, 0)
