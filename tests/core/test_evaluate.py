"""Unit tests of dallmi_core.evaluate: mAP on scores, F1-optimal thresholds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from dallmi_core import best_f1_thresholds, evaluate_scores


def _example() -> tuple[np.ndarray, np.ndarray, list[str]]:
    y = np.array([
        [1, 0, 0, 0],
        [1, 0, 0, 1],
        [0, 0, 1, 0],
        [0, 0, 0, 1],
        [1, 0, 1, 0],
        [0, 0, 0, 0],
    ])
    scores = np.array([
        [0.9, 0.2, 0.2, 0.6],
        [0.8, 0.1, 0.3, 0.7],
        [0.7, 0.4, 0.1, 0.2],
        [0.6, 0.3, 0.4, 0.9],
        [0.5, 0.6, 0.5, 0.1],
        [0.1, 0.5, 0.45, 0.3],
    ])
    return y, scores, ["A", "B", "C", "D"]


def test_map_is_mean_sklearn_ap_over_labels_with_a_positive() -> None:
    y, scores, labels = _example()
    result = evaluate_scores(y, scores, labels)
    with_pos = [j for j in range(4) if y[:, j].any()]
    assert with_pos == [0, 2, 3]
    expected = np.mean([average_precision_score(y[:, j], scores[:, j]) for j in with_pos])
    assert result["mAP"] == pytest.approx(expected, abs=1e-12)
    assert result["labels_without_positive"] == ["B"]
    assert result["n_rows"] == 6
    per = {p["label"]: p for p in result["per_label"]}
    assert math.isnan(per["B"]["AP"]) and per["B"]["positives"] == 0
    assert per["A"]["AP"] == pytest.approx(average_precision_score(y[:, 0], scores[:, 0]))
    # label A: positives ranked 1, 2 and 5 -> AP = (1 + 1 + 3/5) / 3
    assert per["A"]["AP"] == pytest.approx((1 + 1 + 3 / 5) / 3)
    assert result["micro_AP"] == pytest.approx(average_precision_score(y.ravel(), scores.ravel()))
    auc = np.mean([roc_auc_score(y[:, j], scores[:, j]) for j in with_pos])
    assert result["roc_auc"] == pytest.approx(auc)
    predicted = (scores >= 0.5).astype(int)
    f1 = f1_score(y, predicted, average=None, zero_division=0)
    assert result["macro_F1"] == pytest.approx(np.mean(f1[with_pos]))
    assert result["micro_F1"] == pytest.approx(f1_score(y, predicted, average="micro", zero_division=0))
    assert [p["threshold"] for p in result["per_label"]] == [0.5] * 4


def test_map_is_a_ranking_metric_not_on_rounded_scores() -> None:
    # every positive scores above every unlabeled row, but all scores are below 0.5
    y = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    scores = np.array([[0.4, 0.1], [0.3, 0.4], [0.2, 0.3], [0.1, 0.2]])
    result = evaluate_scores(y, scores, ["A", "B"])
    assert result["mAP"] == pytest.approx(1.0)
    assert result["macro_F1"] == 0.0  # nothing predicted at 0.5


def test_custom_thresholds_are_used_for_f1() -> None:
    y, scores, labels = _example()
    cut = np.array([0.55, 0.5, 0.45, 0.65])
    result = evaluate_scores(y, scores, labels, thresholds=cut)
    predicted = (scores >= cut[None, :]).astype(int)
    f1 = f1_score(y, predicted, average=None, zero_division=0)
    assert result["macro_F1"] == pytest.approx(np.mean(f1[[0, 2, 3]]))
    assert [p["threshold"] for p in result["per_label"]] == pytest.approx(cut.tolist())


def test_no_positive_at_all_gives_nan_and_lists_every_label() -> None:
    result = evaluate_scores(np.zeros((3, 2)), np.full((3, 2), 0.3), ["A", "B"])
    assert math.isnan(result["mAP"]) and math.isnan(result["roc_auc"]) and math.isnan(result["macro_F1"])
    assert result["labels_without_positive"] == ["A", "B"]


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="disagree"):
        evaluate_scores(np.zeros((3, 2)), np.zeros((3, 3)), ["A", "B"])
    with pytest.raises(ValueError, match="disagree"):
        evaluate_scores(np.zeros((3, 2)), np.zeros((3, 2)), ["A"])


@settings(max_examples=50, deadline=None)
@given(n_rows=st.integers(2, 15), n_labels=st.integers(2, 4), seed=st.integers(0, 10**6))
def test_map_matches_sklearn_on_random_data(n_rows: int, n_labels: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random((n_rows, n_labels)) < 0.4).astype(int)
    scores = rng.random((n_rows, n_labels))
    result = evaluate_scores(y, scores, [f"L{j}" for j in range(n_labels)])
    with_pos = [j for j in range(n_labels) if y[:, j].any()]
    if with_pos:
        assert result["mAP"] == pytest.approx(np.mean([average_precision_score(y[:, j], scores[:, j])
                                                      for j in with_pos]))
    else:
        assert math.isnan(result["mAP"])
    assert result["labels_without_positive"] == [f"L{j}" for j in range(n_labels) if j not in with_pos]


def _f1(y: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    return float(f1_score(y, (scores >= threshold).astype(int), zero_division=0))


def test_best_f1_thresholds_hand_example() -> None:
    # scores are float32, as predict_scores returns them
    y = np.array([
        [1, 0, 0],
        [1, 0, 0],
        [0, 0, 0],
        [0, 0, 0],
        [1, 0, 0],
        [0, 0, 1],
    ])
    scores = np.array([
        [0.9, 0.9, 0.2],
        [0.8, 0.8, 0.3],
        [0.7, 0.7, 0.1],
        [0.6, 0.6, 0.4],
        [0.5, 0.5, 0.5],
        [0.1, 0.1, 0.45],
    ], dtype=np.float32)
    # label 0, threshold -> (TP, FP, FN) -> F1:
    #   0.9 -> (1, 0, 2) -> 0.5;   0.8 -> (2, 0, 1) -> 0.8;   0.7 -> (2, 1, 1) -> 0.667
    #   0.6 -> (2, 2, 1) -> 0.571; 0.5 -> (3, 2, 0) -> 0.75;  0.1 -> (3, 3, 0) -> 0.667   => best 0.8 at 0.8
    # label 1: no positive -> keeps 0.5
    # label 2: 0.5 -> (0, 1, 1) -> 0; 0.45 -> (1, 1, 0) -> 0.667; 0.4 -> (1, 2, 0) -> 0.5  => best 0.667 at 0.45
    thresholds = best_f1_thresholds(y, scores)
    assert thresholds.dtype == np.float32 and thresholds.shape == (3,)
    np.testing.assert_array_equal(thresholds, np.array([0.8, 0.5, 0.45], dtype=np.float32))
    assert _f1(y[:, 0], scores[:, 0], thresholds[0]) == pytest.approx(0.8)
    assert _f1(y[:, 2], scores[:, 2], thresholds[2]) == pytest.approx(2 / 3)


@settings(max_examples=50, deadline=None)
@given(n_rows=st.integers(2, 12), seed=st.integers(0, 10**6), levels=st.integers(2, 6))
def test_best_f1_threshold_reaches_the_best_achievable_f1(n_rows: int, seed: int, levels: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random((n_rows, 2)) < 0.5).astype(int)
    y[0, 0] = 1  # label 0 has a positive
    scores = (rng.integers(0, levels, size=(n_rows, 2)) / levels).astype(np.float32)  # ties included
    thresholds = best_f1_thresholds(y, scores)
    for label in range(2):
        if not y[:, label].any():
            assert thresholds[label] == 0.5
            continue
        best = max(_f1(y[:, label], scores[:, label], t) for t in np.unique(scores[:, label]))
        assert _f1(y[:, label], scores[:, label], float(thresholds[label])) == pytest.approx(best)


def test_evaluate_scores_uses_best_f1_thresholds_consistently() -> None:
    y, scores, labels = _example()
    scores32 = scores.astype(np.float32)
    cut = best_f1_thresholds(y, scores32)
    result = evaluate_scores(y, scores32, labels, thresholds=cut)
    for j in (0, 2, 3):
        best = max(_f1(y[:, j], scores32[:, j], t) for t in np.unique(scores32[:, j]))
        assert result["per_label"][j]["F1"] == pytest.approx(best)


def test_predict_scores_keeps_row_order_and_training_mode() -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from dallmi_core import predict_scores
    from dallmi_core.modeling import Encoded

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=60, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        num_labels=3, initializer_range=0.5))
    lengths = torch.tensor([6, 2, 5, 3, 6, 4, 2])
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 60, (7, 6), generator=gen)
    ids[torch.arange(6)[None, :] >= lengths[:, None]] = 0  # right padding
    model.train()
    scores = predict_scores(model, Encoded(input_ids=ids, lengths=lengths), batch_size=3)
    assert model.training, "the caller's mode is restored"
    assert scores.dtype == np.float32 and scores.shape == (7, 3)
    model.eval()
    with torch.no_grad():
        for i, n in enumerate(lengths.tolist()):
            alone = torch.sigmoid(model(input_ids=ids[i : i + 1, :n],
                                        attention_mask=torch.ones(1, n, dtype=torch.long)).logits)[0]
            np.testing.assert_allclose(scores[i], alone.numpy(), atol=1e-5)
    assert len({tuple(np.round(row, 4)) for row in scores}) == 7  # rows really differ: order is checked
