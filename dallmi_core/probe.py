"""Linear probing before fine-tuning (LP-FT, Kumar et al., ICLR 2022): a new head starts as a logistic
regression fitted on the frozen encoder's pooled embeddings, so fine-tuning starts from what the encoder
already separates instead of distorting its features through a random head."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier

from .classifier import MultiLabelClassifier
from .modeling import Encoded


@torch.no_grad()
def pooled_embeddings(model: MultiLabelClassifier, encoded: Encoded, *, batch_size: int = 64,
                      device: torch.device | str = "cpu") -> np.ndarray:
    """Frozen sentence embeddings of every row (the model's own pooling), in eval mode.

    Returns:
        ``(N, H)`` float32.
    """
    was_training = model.training
    model.eval()
    n = encoded.input_ids.shape[0]
    order = torch.argsort(encoded.lengths)  # similar lengths together: less padding
    out = torch.empty((n, model.config.hidden_size), dtype=torch.float32)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        ids, mask = encoded.batch(idx, device)
        out[idx] = model.pool(model.encode(ids, mask), mask).float().cpu()  # (b, H)
    model.train(was_training)
    return out.numpy()


def fit_probe_head(model: MultiLabelClassifier, encoded: Encoded, y: np.ndarray, *, batch_size: int = 64,
                   device: torch.device | str = "cpu", c: float = 1.0) -> None:
    """Set the head to a one-vs-rest logistic regression (scikit-learn, L2, ``C = c``) on the frozen
    embeddings, centred and divided by their mean L2 norm (one scalar, folded into the weights), so the
    regression sees rows of about unit norm: the geometry sentence encoders are trained for (their
    embeddings are L2-normalised), where ``C = 1`` regularises as scikit-learn's default does. A per-dimension
    scaling would blow up the weights of near-constant dimensions; scaling by the overall standard deviation
    (the first version) made rows ~sqrt(H) long, i.e. ~H times less regularisation, and lost 5.8 mAP on
    PubMed's held-out target rows (docs/recipe.md). A label with one class only gets weight 0 and the logit of
    its (clipped) frequency as bias.

    Args:
        encoded: the ``N`` training rows; ``y``: their ``(N, L)`` 0/1 labels.
    """
    features = pooled_embeddings(model, encoded, batch_size=batch_size, device=device)  # (N, H)
    mean = features.mean(axis=0)  # (H,)
    scale = float(np.linalg.norm(features, axis=1).mean()) or 1.0
    y = np.asarray(y).astype(int)
    n, n_labels = y.shape
    freq = np.clip(y.mean(axis=0), 0.5 / n, 1 - 0.5 / n)  # (L,)
    weight = np.zeros((n_labels, features.shape[1]))
    bias = np.log(freq / (1 - freq))
    fit = np.flatnonzero((y.sum(axis=0) > 0) & (y.sum(axis=0) < n))
    if fit.size:
        targets = y[:, fit] if fit.size > 1 else np.c_[y[:, fit], 1 - y[:, fit]]  # OvR needs 2 columns
        probe = OneVsRestClassifier(LogisticRegression(C=c, max_iter=500))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            probe.fit((features - mean) / scale, targets)
        coef = np.vstack([est.coef_ for est in probe.estimators_])[: fit.size] / scale  # (F, H)
        weight[fit] = coef
        bias[fit] = np.concatenate([est.intercept_ for est in probe.estimators_])[: fit.size] - coef @ mean
    model.set_head(weight, bias)


@torch.no_grad()
def wise_interpolate(model: torch.nn.Module, start: dict[str, torch.Tensor], alpha: float) -> None:
    """Weight-space ensemble in place (WiSE-FT, Wortsman et al., CVPR 2022, Eq. 1):
    ``theta <- (1 - alpha) * theta_0 + alpha * theta``, over every floating-point tensor of the state dict.

    Args:
        model: the fine-tuned model (``theta``), changed in place.
        start: ``theta_0``, the state dict the fine-tuning started from (same keys and shapes).
        alpha: mixing coefficient in (0, 1]; 1 leaves the model unchanged.

    Raises:
        ValueError: ``alpha`` outside (0, 1], or ``start`` lacks a tensor of the model or has another shape.
    """
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
    for name, tensor in model.state_dict().items():
        if not tensor.is_floating_point():
            continue
        if name not in start or start[name].shape != tensor.shape:
            raise ValueError(f"the starting weights have no tensor {name!r} of shape {tuple(tensor.shape)}")
        tensor.lerp_(start[name].to(tensor.device, tensor.dtype), 1.0 - alpha)
