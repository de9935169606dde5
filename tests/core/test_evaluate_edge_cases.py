"""Evaluation edge cases: a single-label corpus, thresholds on float64 scores."""
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score

from dallmi_core import best_f1_thresholds, evaluate_scores


def test_evaluate_scores_single_label_corpus():
    # before the fix: IndexError in evaluate.py (f1_score on a (N, 1) target is 'binary' and average=None returns
    # one F1 per class, 2 values, then f1[has_pos] with a (1,) mask fails)
    y = np.array([[1], [1], [0], [0]])
    scores = np.array([[0.4], [0.3], [0.2], [0.1]])
    result = evaluate_scores(y, scores, ["A"])
    assert result["mAP"] == pytest.approx(average_precision_score(y[:, 0], scores[:, 0]))
    assert result["macro_F1"] == 0.0  # nothing predicted at 0.5
    assert result["micro_F1"] == 0.0  # micro over (row, label) pairs, not accuracy over classes {0, 1}


def test_best_f1_threshold_with_float64_scores():
    # before the fix: the float32 threshold 0.8 -> 0.800000011920929 > 0.8, so evaluate_scores' (scores >= cut)
    # drops the row scored exactly 0.8 and F1 falls from 0.8 to 0.5
    y = np.array([[1], [1], [0], [0], [1], [0]])
    scores = np.array([[0.9], [0.8], [0.7], [0.6], [0.5], [0.1]])  # float64
    cut = best_f1_thresholds(y, scores)
    predicted = (scores[:, 0] >= cut[0]).astype(int)
    assert f1_score(y[:, 0], predicted) == pytest.approx(0.8)
