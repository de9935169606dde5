"""DALLMi's per-label variational loss (paper Eq. 1) and its MixUp penalty (Eq. 2), as pure functions
over all labels at once, plus thin ``nn.Module`` wrappers that only hold hyperparameters."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import LossForm


def _label_mask(known: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    positive = known.bool()  # (B, L)
    unlabeled = ~positive
    n_pos = positive.sum(0)  # (L,)
    n_unl = unlabeled.sum(0)  # (L,)
    present = (n_pos > 0) & (n_unl > 0)  # (L,) labels with both sides in the batch
    return positive, unlabeled, n_pos, n_unl, present


def variational_loss_per_label(logits: Tensor, known: Tensor, form: LossForm = "norm") -> Tensor:
    """Per-label variational loss ``L_var^l`` (Eq. 1), vectorised over labels with masks.

    ``norm`` (the paper's form): ``mean_{u in U^l} sigma(z_ul) - mean_{p in P^l} |sigma(z_pl)|``.
    ``log`` (VPU's form, Table 3 ii): ``log(mean_{u in U^l} sigma(z_ul)) - mean_{p in P^l} log sigma(z_pl)``,
    computed in log space (log-sum-exp of log-sigmoid minus ``log |U^l|``), so it never takes ``log(0)``.

    Args:
        logits: ``(B, L)`` float, the classifier's logits ``Phi(s)``; computed in float32.
        known: ``(B, L)`` bool or 0/1, 1 = known positive of label l (``P^l``), 0 = unlabeled (``U^l``).
        form: "norm" or "log".

    Returns:
        ``(L,)`` float32; 0 (with zero gradient, never NaN) for a label that has no positive or no
        unlabeled row in the batch.

    Raises:
        ValueError: shapes differ or an unknown form.
    """
    if logits.shape != known.shape or logits.dim() != 2:
        raise ValueError(f"logits {tuple(logits.shape)} and known {tuple(known.shape)} must both be (B, L)")
    z = logits.float()
    positive, unlabeled, n_pos, n_unl, present = _label_mask(known)
    if form == "norm":
        prob = torch.sigmoid(z)  # (B, L)
        unl_term = (prob * unlabeled).sum(0) / n_unl.clamp(min=1)  # (L,)
        pos_term = (prob.abs() * positive).sum(0) / n_pos.clamp(min=1)  # (L,)
    elif form == "log":
        log_prob = F.logsigmoid(z)  # (B, L)
        # -inf outside U^l; a label with an empty U^l gets a finite dummy column (masked out below)
        fill = torch.where(n_unl > 0, float("-inf"), 0.0).to(z.dtype)  # (L,)
        masked = torch.where(unlabeled, log_prob, fill.expand_as(log_prob))  # (B, L)
        unl_term = torch.logsumexp(masked, dim=0) - torch.log(n_unl.clamp(min=1).to(z.dtype))  # (L,)
        pos_term = (log_prob * positive).sum(0) / n_pos.clamp(min=1)  # (L,)
    else:
        raise ValueError(f"unknown variational loss form {form!r}; expected 'norm' or 'log'")
    return torch.where(present, unl_term - pos_term, torch.zeros_like(unl_term))


def variational_loss(logits: Tensor, known: Tensor, form: LossForm = "norm") -> Tensor:
    """``L_var = sum_l L_var^l`` (Algorithm 1, line 11): a scalar float32. See
    :func:`variational_loss_per_label` for shapes and errors."""
    return variational_loss_per_label(logits, known, form).sum()


def mixup_penalty_per_label(target: Tensor, mixed_logits: Tensor, valid: Tensor) -> Tensor:
    """Per-label MixUp penalty ``M_reg^l = (|Phi~_l| - |sigma(Phi(e~_l))_l|)^2`` (Eq. 2).

    Args:
        target: ``(L,)`` float, the interpolated target ``Phi~_l = mu_l + (1 - mu_l) sigma(Phi(s_u))_l``
            (Eq. 5), see :func:`dallmi_core.mixup.mixup_target`.
        mixed_logits: ``(L, L)`` float, logits of the L mixed rows; row l was mixed for label l, so its
            l-th logit is used (the diagonal).
        valid: ``(L,)`` bool, labels for which a (positive, unlabeled) pair exists in the batch.

    Returns:
        ``(L,)`` float32, 0 for invalid labels.
    """
    predicted = torch.sigmoid(torch.diagonal(mixed_logits.float()))  # (L,)
    penalty = (target.float().abs() - predicted.abs()) ** 2  # (L,)
    return torch.where(valid, penalty, torch.zeros_like(penalty))


class VariationalLoss(nn.Module):
    """Holds the form of Eq. 1; ``forward(logits (B, L), known (B, L)) -> scalar``."""

    def __init__(self, form: LossForm = "norm") -> None:
        super().__init__()
        self.form = form

    def forward(self, logits: Tensor, known: Tensor) -> Tensor:
        return variational_loss(logits, known, self.form)


def bce_loss(logits: Tensor, targets: Tensor, active: Tensor | None = None) -> Tensor:
    """Binary cross-entropy (unknown counted as negative): the paper's "Fine-Tuning" baseline and the
    source fine-tuning loss. ``logits, targets: (B, L)``; ``active``: ``(L,)`` bool, the labels counted
    (None: all). Returns a float32 scalar, the mean over the ``B * L_active`` entries (0 with no label)."""
    if active is None:
        return F.binary_cross_entropy_with_logits(logits.float(), targets.float())
    per_entry = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")  # (B, L)
    weight = active.float().expand_as(per_entry)  # (B, L)
    return (per_entry * weight).sum() / weight.sum().clamp(min=1.0)

