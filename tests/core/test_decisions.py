"""Unit tests of dallmi_core.decisions (thresholds from PU data, the collapse guard), the probe head
initialisation and the self-distillation anchor of the adaptation step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dallmi_core import (
    Encoded,
    collapse_warnings,
    estimate_prior,
    lee_liu_thresholds,
    load_classifier,
    prior_thresholds,
)
from dallmi_core.probe import fit_probe_head, pooled_embeddings
from dallmi_core.steps import anchor_loss


def test_prior_thresholds_predict_the_prior_share_of_rows() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random((200, 3))
    prior = np.array([0.1, 0.5, 0.02])
    cut = prior_thresholds(scores, prior)
    rate = (scores >= cut[None, :]).mean(axis=0)
    np.testing.assert_allclose(rate, prior)


def test_estimate_prior_is_the_source_models_mean_score_never_below_the_known_share() -> None:
    teacher = np.array([[0.9, 0.0], [0.1, 0.0], [0.2, 0.0], [0.0, 0.0]])
    known = np.array([[1, 1], [0, 1], [0, 0], [0, 0]])
    np.testing.assert_allclose(estimate_prior(teacher, known), [0.3, 0.5])


def test_lee_liu_threshold_separates_a_clean_ranking() -> None:
    # label 0: the 4 positives (2 known) score above every negative; the best cut keeps all 4
    scores = np.array([0.95, 0.9, 0.85, 0.8, 0.3, 0.2, 0.1, 0.05])[:, None].repeat(2, axis=1)
    known = np.zeros((8, 2), dtype=int)
    known[[1, 3], 0] = 1
    cut = lee_liu_thresholds(known, scores, fallback=np.array([0.5, 0.42]))
    assert cut[0] == pytest.approx(0.8)
    assert cut[1] == pytest.approx(0.42), "no known positive: the fallback"
    # a cut below a known positive is never chosen over the cut at it (recall the same, rate higher)
    assert ((scores[:, 0] >= cut[0]) >= known[:, 0]).all()


def test_collapse_guard_flags_a_label_pushed_to_positive_and_not_a_healthy_one() -> None:
    rng = np.random.default_rng(1)
    teacher = rng.random((100, 2)) * 0.2  # the source model: both labels rare
    adapted = teacher.copy()
    adapted[:, 1] = 0.6 + 0.4 * rng.random(100)  # label B collapsed: every row above 0.5
    prior = np.array([0.1, 0.1])
    warnings = collapse_warnings(adapted, teacher, prior, ["A", "B"])
    assert any("'B'" in w and "collapsed" in w for w in warnings)
    assert not any("'A'" in w for w in warnings)
    assert collapse_warnings(teacher, teacher, prior, ["A", "B"]) == []


def test_anchor_loss_pulls_unknown_entries_to_the_source_scores_only() -> None:
    logits = torch.zeros(3, 2, requires_grad=True)
    teacher = torch.tensor([[0.2, 0.9], [0.5, 0.1], [0.7, 0.5]])
    known = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    anchor_loss(logits, teacher, known).backward()
    grad = logits.grad
    assert grad[0, 0] == 0 and grad[2, 1] == 0, "known positives are left to the variational loss"
    # d/dz of mean_{u in U^l} BCE(z, t) = (sigma(z) - t) / |U^l|, sigma(0) = 0.5
    torch.testing.assert_close(grad[1:, 0], (0.5 - teacher[1:, 0]) / 2)
    torch.testing.assert_close(grad[:2, 1], (0.5 - teacher[:2, 1]) / 2)
    # at the teacher's own logits the anchor has no gradient
    z = torch.logit(teacher).requires_grad_(True)
    anchor_loss(z, teacher, known).backward()
    torch.testing.assert_close(z.grad, torch.zeros_like(z), atol=1e-6, rtol=0)


def test_probe_head_fits_the_frozen_embeddings(tiny_bert: str) -> None:
    model, tokenizer = load_classifier(tiny_bert, ["A", "B", "C"], seed=0)
    texts = [f"apple pie {i}" for i in range(20)] + [f"rocket launch {i}" for i in range(20)]
    out = tokenizer(texts, padding="longest", return_tensors="pt")
    encoded = Encoded(out["input_ids"], out["attention_mask"].sum(1))
    y = np.zeros((40, 3), dtype=int)
    y[:20, 0] = 1  # A: the apple texts; B: the rocket texts; C: never (one class only)
    y[20:, 1] = 1
    fit_probe_head(model, encoded, y)
    feats = torch.from_numpy(pooled_embeddings(model, encoded))
    with torch.no_grad():
        scores = torch.sigmoid(model.classifier(feats)).numpy()
    assert (scores[:20, 0] > 0.5).all() and (scores[20:, 0] < 0.5).all()
    assert (scores[20:, 1] > 0.5).all() and (scores[:20, 1] < 0.5).all()
    np.testing.assert_allclose(model.classifier.weight[2].detach().numpy(), 0.0)
    assert scores[:, 2].max() < 0.05, "a label never seen gets its (clipped) frequency"
    assert torch.isfinite(model.classifier.weight).all()


def test_a_rising_held_out_variational_loss_is_a_warning() -> None:
    from dallmi_core.runstate import _val_loss_warning

    rising = [{"epoch": 0, "val_variational_loss": -1.0}, {"epoch": 1, "val_variational_loss": -0.5}]
    assert "rose from -1.0000 to -0.5000" in _val_loss_warning(rising)[0]
    falling = [{"epoch": 0, "val_variational_loss": -1.0}, {"epoch": 1, "val_variational_loss": -2.0}]
    assert _val_loss_warning(falling) == [] and _val_loss_warning([{"epoch": 1, "train_loss": 0.3}]) == []
