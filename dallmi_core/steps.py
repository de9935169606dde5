"""Loss of one batch for each training method: DALLMi (Algorithm 1), BCE on partial labels, and the
held-out variational loss used for model selection without labelled data (VPU)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import TrainConfig
from .evaluate import predict_scores
from .losses import bce_loss, mixup_penalty_per_label, variational_loss, variational_loss_per_label
from .mixup import draw_pairs, forward_with_mixup, mixup_target
from .modeling import Encoded


@dataclass
class StepOutput:
    """The loss to back-propagate (scalar) and its parts as floats for logging."""

    loss: Tensor
    parts: dict[str, Tensor]


def bce_step(model: nn.Module, input_ids: Tensor, attention_mask: Tensor, known: Tensor,
             active: Tensor | None = None) -> StepOutput:
    """BCE, unknown treated as negative (the "Fine-Tuning" baseline; source fine-tuning).

    Args:
        input_ids, attention_mask: ``(B, T)`` int64.
        known: ``(B, L)`` float 0/1 targets.
        active: ``(L,)`` bool, the labels trained on (None: all); an adaptation leaves out the labels with no
            known positive in the corpus, so their head is not pushed towards negative.
    """
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits  # (B, L)
    loss = bce_loss(logits, known, active)
    return StepOutput(loss, {"bce": loss.detach()})


def anchor_loss(logits: Tensor, teacher: Tensor, known: Tensor) -> Tensor:
    """Self-distillation anchor: ``sum_l mean_{u in U^l} BCE(z_ul, t_ul)``, the BCE between the adapted
    model's logits and the source model's scores on the unknown entries (Learning without Forgetting,
    Li & Hoiem 2016), summed over labels like ``L_var`` (Algorithm 1, line 11).

    Args:
        logits: ``(B, L)`` float, the adapted model's.
        teacher: ``(B, L)`` float in [0, 1], the source model's sigmoid scores of the same rows.
        known: ``(B, L)`` 0/1, known positives (left out: the variational loss handles them).

    Returns:
        float32 scalar; its gradient on ``z_ul`` is ``(sigma(z_ul) - t_ul) / |U^l|``.
    """
    unknown = (known < 0.5).float()  # (B, L)
    per_entry = F.binary_cross_entropy_with_logits(logits.float(), teacher.float(), reduction="none")  # (B, L)
    return ((per_entry * unknown).sum(0) / unknown.sum(0).clamp(min=1.0)).sum()


def dallmi_step(model: nn.Module, input_ids: Tensor, attention_mask: Tensor, known: Tensor,
                known_host: np.ndarray, config: TrainConfig, rng: np.random.Generator,
                teacher: Tensor | None = None) -> StepOutput:
    """DALLMi loss of one label-balanced batch (Algorithm 1):
    ``L_final = sum_l L_var^l + lambda * sum_l M_reg^l`` (line 11) with Eq. 1 and Eq. 2-5, plus
    ``anchor_weight *`` :func:`anchor_loss` when ``teacher`` is given (an option beyond the paper).

    The ``L`` mixed rows go through the model as one batch; ``Phi(s_u)`` comes from the batch's own logits
    and the MixUp term keeps its gradient (``mixup_grad``: through the mixed row's score only, or also
    through the target's ``sigma(Phi(s_u))``).

    Args:
        input_ids, attention_mask: ``(B, T)`` int64 on the model's device.
        known: ``(B, L)`` float 0/1 on the device; ``known_host`` the same ``(B, L)`` on the host (the
            pair draw runs there, avoiding a device sync).
        config: loss form, MixUp place, alpha/beta and lambda (``mixup_weight``).
        rng: explicit generator of the pairs and ``mu`` (Algorithm 1, lines 4-5).
        teacher: ``(B, L)`` float, the source model's scores of the batch, or None (no anchor).

    Returns:
        :class:`StepOutput` with parts ``var``, ``mixup`` and ``anchor``.
    """
    if config.mixup_weight == 0:
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits  # (B, L)
        var = variational_loss(logits, known, config.loss_form)
        mix = torch.zeros((), device=var.device)
    else:
        logits, var, mix = dallmi_terms(model, input_ids, attention_mask, known, known_host, config, rng)
    loss = var + config.mixup_weight * mix
    anchor = torch.zeros((), device=var.device)
    if teacher is not None and config.anchor_weight > 0:
        anchor = anchor_loss(logits, teacher, known)
        loss = loss + config.anchor_weight * anchor
    return StepOutput(loss, {"var": var.detach(), "mixup": mix.detach(), "anchor": anchor.detach()})


def dallmi_terms(model: nn.Module, input_ids: Tensor, attention_mask: Tensor, known: Tensor,
                 known_host: np.ndarray, config: TrainConfig,
                 rng: np.random.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """The two terms of ``L_final`` before lambda, with their graphs (Algorithm 1, lines 4-10): for
    :func:`dallmi_step` and for probes that need each term's own gradient.

    Args: as :func:`dallmi_step`.

    Returns:
        ``(logits (B, L), sum_l L_var^l (Eq. 1), sum_l M_reg^l (Eq. 2))``, the last two scalars.
    """
    pairs = draw_pairs(known_host, config.alpha, config.beta, rng).to(input_ids.device)
    logits, mixed_logits = forward_with_mixup(model, input_ids, attention_mask, pairs, config.mixup_at)
    var = variational_loss(logits, known, config.loss_form)
    labels = torch.arange(logits.shape[1], device=logits.device)
    unl_logits = logits[pairs.unl_idx, labels]  # (L,)
    target = mixup_target(pairs.mu, unl_logits if config.mixup_grad == "full" else unl_logits.detach())  # Eq. 5
    mix = mixup_penalty_per_label(target, mixed_logits, pairs.valid).sum()  # Eq. 2 summed over labels
    return logits, var, mix


@torch.no_grad()
def heldout_variational_loss(model: nn.Module, encoded: Encoded, known: np.ndarray, config: TrainConfig,
                             device: torch.device) -> float:
    """Variational loss (Eq. 1, summed over labels) of a whole held-out positive-unlabeled split, in eval
    mode: the model-selection criterion of VPU when no labelled target data exists (lower is better).

    Args:
        encoded: the held-out split, ``N`` rows; ``known``: its ``(N, L)`` known positives.
    """
    scores = predict_scores(model, encoded, batch_size=config.eval_batch_size, device=device)  # (N, L)
    logits = torch.logit(torch.from_numpy(scores).double().clamp(1e-12, 1 - 1e-12))
    return float(variational_loss_per_label(logits, torch.from_numpy(known).bool(), config.loss_form).sum())
