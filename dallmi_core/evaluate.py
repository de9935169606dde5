"""Scoring and evaluation: sigmoid scores, mAP on scores (scikit-learn), F1 at thresholds, ROC AUC,
per-label tables, F1-optimal per-label thresholds, and a :class:`Predictor` for a saved checkpoint."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import average_precision_score, f1_score, precision_recall_curve, roc_auc_score

from .checkpoint import load_checkpoint_meta
from .modeling import Encoded, encode, load_classifier, resolve_device

DEFAULT_THRESHOLD = 0.5


@torch.no_grad()
def predict_scores(model: Any, encoded: Encoded, *, batch_size: int = 64,
                   device: torch.device | str = "cpu") -> np.ndarray:
    """Sigmoid scores of every row, in eval mode (no dropout).

    Args:
        encoded: a tokenised corpus of ``N`` rows.
        batch_size: rows per forward pass.

    Returns:
        ``(N, L)`` float32 in [0, 1].
    """
    was_training = model.training
    model.eval()
    n = encoded.input_ids.shape[0]
    order = torch.argsort(encoded.lengths)  # similar lengths together: less padding
    out = torch.empty((n, model.num_labels), dtype=torch.float32)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        ids, mask = encoded.batch(idx, device)
        out[idx] = torch.sigmoid(model(input_ids=ids, attention_mask=mask).logits.float()).cpu()
    model.train(was_training)
    return out.numpy()


def best_f1_thresholds(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-label threshold maximising F1 on a labelled set (a label with no positive keeps 0.5).

    Args:
        y_true: ``(N, L)`` 0/1.
        scores: ``(N, L)`` float scores.

    Returns:
        ``(L,)`` thresholds in the dtype of ``scores`` (float64 for other dtypes), so that
        ``scores >= threshold`` selects exactly the rows the curve counted.
    """
    dtype = scores.dtype if np.issubdtype(scores.dtype, np.floating) else np.float64
    thresholds = np.full(y_true.shape[1], DEFAULT_THRESHOLD, dtype=dtype)
    for label in np.flatnonzero(y_true.sum(axis=0) > 0):  # a loop over labels, outside training
        precision, recall, cut = precision_recall_curve(y_true[:, label], scores[:, label])
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        thresholds[label] = cut[int(np.argmax(f1[:-1]))]
    return thresholds


def evaluate_scores(y_true: np.ndarray, scores: np.ndarray, labels: list[str],
                    thresholds: np.ndarray | None = None) -> dict[str, Any]:
    """Evaluation protocol step 4 (``../shared/data/README.md``) on continuous scores.

    mAP is the mean over labels of scikit-learn's average precision on the scores, over the labels with at
    least one positive in ``y_true`` (the others are listed in ``labels_without_positive``); micro AP
    pools all (row, label) pairs; macro/micro F1 use ``thresholds`` (default 0.5); ROC AUC is the macro mean
    over labels with both classes present.

    Args:
        y_true: ``(N, L)`` 0/1 ground truth.
        scores: ``(N, L)`` float sigmoid scores.
        labels: ``L`` label names.
        thresholds: ``(L,)`` decision thresholds, or None for 0.5.

    Returns:
        ``{"mAP", "micro_AP", "macro_F1", "micro_F1", "roc_auc", "n_rows", "per_label",
        "labels_without_positive"}``; figures are fractions in [0, 1] (NaN when undefined).

    Raises:
        ValueError: shapes differ.
    """
    y_true = np.asarray(y_true).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    if y_true.shape != scores.shape or y_true.shape[1] != len(labels):
        raise ValueError(f"y_true {y_true.shape}, scores {scores.shape} and {len(labels)} labels disagree")
    cut = np.full(len(labels), DEFAULT_THRESHOLD) if thresholds is None else np.asarray(thresholds)
    predicted = (scores >= cut[None, :]).astype(int)
    n_pos = y_true.sum(axis=0)
    has_pos = n_pos > 0
    both = has_pos & (n_pos < y_true.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        ap = np.full(len(labels), np.nan)
        if has_pos.any():
            ap[has_pos] = average_precision_score(y_true[:, has_pos], scores[:, has_pos], average=None)
        auc = np.full(len(labels), np.nan)
        if both.any():
            auc[both] = roc_auc_score(y_true[:, both], scores[:, both], average=None)
        if len(labels) == 1:  # scikit-learn reads one column as a binary target
            f1 = np.atleast_1d(f1_score(y_true[:, 0], predicted[:, 0], zero_division=0))
            micro_f1 = float(f1[0])
        else:
            f1 = f1_score(y_true, predicted, average=None, zero_division=0)
            micro_f1 = f1_score(y_true, predicted, average="micro", zero_division=0)
        micro_ap = average_precision_score(y_true.ravel(), scores.ravel()) if has_pos.any() else np.nan
    per_label = [
        {"label": name, "positives": int(n_pos[j]), "AP": float(ap[j]), "roc_auc": float(auc[j]),
         "F1": float(f1[j]), "threshold": float(cut[j])}
        for j, name in enumerate(labels)
    ]
    return {
        "mAP": float(np.nanmean(ap) if has_pos.any() else np.nan),
        "micro_AP": float(micro_ap),
        "macro_F1": float(f1[has_pos].mean()) if has_pos.any() else float("nan"),
        "micro_F1": float(micro_f1),
        "roc_auc": float(np.nanmean(auc) if both.any() else np.nan),
        "n_rows": int(y_true.shape[0]),
        "per_label": per_label,
        "labels_without_positive": [name for j, name in enumerate(labels) if not has_pos[j]],
    }


class Predictor:
    """A loaded checkpoint for inference: ``predict_scores(texts) -> (N, L)`` sigmoid scores."""

    def __init__(self, path: str | Path, device: str = "auto") -> None:
        self.path = Path(path)
        self.meta = load_checkpoint_meta(self.path)
        self.labels: list[str] = list(self.meta["labels"])
        self.thresholds = np.asarray(self.meta["thresholds"], dtype=np.float32)  # (L,)
        self.max_length = int(self.meta.get("config", {}).get("max_length", 128))
        self.device = resolve_device(device)
        self.model, self.tokenizer = load_classifier(str(self.path), self.labels)
        self.model.to(self.device).eval()

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Predictor:
        """Load a DALLMi checkpoint directory (safetensors only).

        Raises:
            FileNotFoundError: not a checkpoint.
        """
        return cls(path, device)

    def predict_scores(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Sigmoid scores ``(N, L)`` float32 for ``N`` texts (truncated to the training ``max_length``).

        Raises:
            ValueError: an empty list or an empty text.
        """
        if not texts:
            raise ValueError("no texts to score")
        empty = [i for i, text in enumerate(texts) if not text.strip()]
        if empty:
            raise ValueError(f"empty text at position(s) {empty}")
        encoded = encode(self.tokenizer, texts, self.max_length)
        return predict_scores(self.model, encoded, batch_size=batch_size, device=self.device)
