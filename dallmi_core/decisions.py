"""Decisions without negatives: per-label thresholds from positive-unlabeled data, the label prior of a
target domain estimated from the source model, and the collapse guard of an adaptation.

A partially labelled target corpus has no negatives, so F1-optimal thresholds cannot be tuned on it. Two
rules use only what a user has:

- ``prior``: estimate each label's prior on the target rows from the source model (under covariate shift a
  calibrated source model's mean score on target rows estimates ``P(y_l = 1)`` there), never below the share
  of known positives; the threshold is the score above which that share of target rows falls.
- ``lee_liu``: maximise ``recall_P(t)^2 / P(score >= t)`` (Lee & Liu, ICML 2003), which is proportional to
  ``F1^2`` under "selected completely at random" and needs only known positives and unlabeled rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .evaluate import DEFAULT_THRESHOLD

COLLAPSE_SHARE = 0.9
"""A label is flagged when this share of the target rows scores above 0.5 while its prior is below 0.5."""


def estimate_prior(teacher: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Per-label prior on the target rows: ``max(mean source score, share of known positives)``.

    Args:
        teacher: ``(N, L)`` float, the source model's sigmoid scores of the target rows.
        known: ``(N, L)`` 0/1 known positives of the same rows.

    Returns:
        ``(L,)`` float64 in (0, 1).
    """
    prior = np.maximum(np.asarray(teacher, dtype=np.float64).mean(axis=0), np.asarray(known).mean(axis=0))
    return np.clip(prior, 1.0 / max(len(known), 1), 1.0)


def prior_thresholds(scores: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Per-label threshold above which a share ``prior_l`` of the rows falls (rule ``prior``).

    Args:
        scores: ``(N, L)`` float scores of the target rows.
        prior: ``(L,)`` label priors in (0, 1].

    Returns:
        ``(L,)`` float64 thresholds: the ``1 - prior_l`` quantile of label l's scores.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = scores.shape[0]
    rank = np.clip(np.ceil(np.asarray(prior) * n).astype(np.int64), 1, n)  # (L,) rows predicted positive
    ordered = -np.sort(-scores, axis=0)  # (N, L) descending
    return ordered[rank - 1, np.arange(scores.shape[1])]


def lee_liu_thresholds(known: np.ndarray, scores: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
    """Per-label threshold maximising ``recall_P(t)^2 / P(score >= t)`` over the cuts at known positives
    (rule ``lee_liu``), vectorised over labels.

    Args:
        known: ``(N, L)`` 0/1 known positives.
        scores: ``(N, L)`` float scores of the same rows.
        fallback: ``(L,)`` thresholds of labels with no known positive (default 0.5).

    Returns:
        ``(L,)`` float64 thresholds.
    """
    known = np.asarray(known).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n, n_labels = scores.shape
    order = np.argsort(-scores, axis=0, kind="stable")  # (N, L)
    hit = np.take_along_axis(known, order, axis=0)  # (N, L) known positive at each rank
    recall = np.cumsum(hit, axis=0) / np.maximum(hit.sum(axis=0), 1)  # (N, L)
    rate = np.arange(1, n + 1)[:, None] / n  # (N, 1)
    criterion = np.where(hit, recall**2 / rate, -np.inf)  # (N, L): cut only at a known positive
    best = np.argmax(criterion, axis=0)  # (L,)
    chosen = np.take_along_axis(scores, order, axis=0)[best, np.arange(n_labels)]
    default = np.full(n_labels, DEFAULT_THRESHOLD) if fallback is None else np.asarray(fallback, dtype=np.float64)
    return np.where(known.any(axis=0), chosen, default)


def collapse_warnings(scores: np.ndarray, teacher: np.ndarray, prior: np.ndarray,
                      labels: list[str]) -> list[str]:
    """The guard a user sees after an adaptation: labels whose scores collapsed towards "positive".

    A label is flagged when at least :data:`COLLAPSE_SHARE` of the target rows score above 0.5 while its
    estimated prior is below 0.5, or when its mean score rose past 0.5 from below 0.25 under the source
    model. The mean score over all labels more than tripling is flagged too.

    Args:
        scores: ``(N, L)`` the adapted model's scores of the target rows; ``teacher``: the source model's.
        prior: ``(L,)`` estimated label priors (:func:`estimate_prior`).
        labels: ``L`` names.

    Returns:
        Human-readable warnings (empty when nothing collapsed).
    """
    share = (np.asarray(scores) >= 0.5).mean(axis=0)  # (L,)
    mean_after, mean_before = np.asarray(scores).mean(axis=0), np.asarray(teacher).mean(axis=0)  # (L,)
    flagged = ((share >= COLLAPSE_SHARE) & (prior < 0.5)) | ((mean_after > 0.5) & (mean_before < 0.25))
    out = [f"label {labels[j]!r}: {share[j]:.0%} of target rows score >= 0.5 (mean score {mean_before[j]:.2f} "
           f"-> {mean_after[j]:.2f}, estimated prior {prior[j]:.2f}): its scores collapsed towards positive"
           for j in np.flatnonzero(flagged)]
    if mean_after.mean() > 3 * max(mean_before.mean(), 1e-6) and mean_after.mean() > 0.2:
        out.append(f"the mean score over all labels rose from {mean_before.mean():.2f} to {mean_after.mean():.2f}: "
                   "scores may not be comparable across labels")
    return out


def decision_summary(scores: np.ndarray, thresholds: np.ndarray, prior: np.ndarray) -> dict[str, Any]:
    """Share of target rows predicted positive per label at the stored thresholds, beside the prior."""
    rate = (np.asarray(scores) >= np.asarray(thresholds)[None, :]).mean(axis=0)
    return {"predicted_positive_rate": rate.round(4).tolist(), "estimated_prior": np.round(prior, 4).tolist()}
