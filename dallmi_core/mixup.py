"""MixUp between positive and unlabeled rows (paper Eq. 2-5, Fig. 4), one mixed row per label.

All ``L`` mixed rows go through the model in one batched forward pass, and ``Phi(s_u)`` is taken from
the batch's own logits, so the term costs ``L`` extra rows per step and carries gradient (Algorithm 1,
line 12 back-propagates it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .config import MixupAt


@dataclass
class MixupPairs:
    """One (positive, unlabeled) pair and one coefficient per label (Algorithm 1, lines 4-5).

    Attributes:
        pos_idx: ``(L,)`` int64, batch row of a known positive of label l (``s_p``).
        unl_idx: ``(L,)`` int64, batch row of an unlabeled row of label l (``s_u``).
        mu: ``(L,)`` float32, ``mu_l ~ Beta(alpha, beta)`` (Eq. 3).
        valid: ``(L,)`` bool, False where the batch has no positive or no unlabeled row of label l.
    """

    pos_idx: Tensor
    unl_idx: Tensor
    mu: Tensor
    valid: Tensor

    def to(self, device: torch.device | str) -> MixupPairs:
        return MixupPairs(*(t.to(device) for t in (self.pos_idx, self.unl_idx, self.mu, self.valid)))


def draw_pairs(known: np.ndarray, alpha: float, beta: float, rng: np.random.Generator) -> MixupPairs:
    """Draw, for every label at once, a random known positive, a random unlabeled row and ``mu``.

    Args:
        known: ``(B, L)`` bool/0-1 known positives of the batch (host memory).
        alpha, beta: Beta shape parameters (Eq. 3).
        rng: the explicit random generator (its state is part of the resumable training state).

    Returns:
        :class:`MixupPairs` on the CPU; an invalid label gets index 0 and is masked by ``valid``.
    """
    known = np.asarray(known).astype(bool)
    keys = rng.random(known.shape)  # (B, L)
    pos_idx = np.argmax(np.where(known, keys, -1.0), axis=0)  # (L,)
    unl_idx = np.argmax(np.where(~known, keys, -1.0), axis=0)  # (L,)
    valid = known.any(axis=0) & (~known).any(axis=0)  # (L,)
    mu = np.asarray(rng.beta(alpha, beta, size=known.shape[1]), dtype=np.float32)  # (L,)
    return MixupPairs(torch.from_numpy(pos_idx), torch.from_numpy(unl_idx), torch.from_numpy(mu),
                      torch.from_numpy(valid))


def mixup_target(mu: Tensor, unl_logits: Tensor) -> Tensor:
    """Interpolated target ``Phi~_l = mu_l * 1 + (1 - mu_l) * sigma(Phi(s_u))_l`` (Eq. 5, with the
    sigmoid of the issue's reading, so the target is a probability like the prediction it is compared to).

    Args:
        mu: ``(L,)`` float.
        unl_logits: ``(L,)`` float, logit of label l for the unlabeled row paired with label l.

    Returns:
        ``(L,)`` float32 in [0, 1]; keeps the gradient through ``unl_logits``.
    """
    return mu.float() + (1.0 - mu.float()) * torch.sigmoid(unl_logits.float())


def _lerp(x: Tensor, pairs: MixupPairs) -> Tensor:
    """``mu_l * x[p_l] + (1 - mu_l) * x[u_l]`` (Eq. 4) for every label: ``(B, ...) -> (L, ...)``."""
    shape = (-1,) + (1,) * (x.dim() - 1)
    mu = pairs.mu.to(x.dtype).view(shape)
    return mu * x[pairs.pos_idx] + (1.0 - mu) * x[pairs.unl_idx]


def forward_with_mixup(
    model: Any, input_ids: Tensor, attention_mask: Tensor, pairs: MixupPairs, at: MixupAt = "word"
) -> tuple[Tensor, Tensor]:
    """Forward the batch and its ``L`` mixed rows (Fig. 3; Fig. 4 for the three places); the mixed rows go
    through the model as one batch.

    ``word``: word embeddings are mixed (Eq. 4) and the model adds positions and token types itself
    (``inputs_embeds``); the mixed row attends over the union of the two rows' tokens. ``encoder``: the
    encoder's last hidden states are mixed (union mask), then the model's pooling and head run. ``pooled``: the
    pooled sentence embedding is mixed, then the classifier runs.

    Args:
        model: a :class:`~dallmi_core.classifier.MultiLabelClassifier` with ``L`` outputs.
        input_ids, attention_mask: ``(B, T)`` int64.
        pairs: :class:`MixupPairs` on the model's device.
        at: "word", "encoder" or "pooled".

    Returns:
        ``(logits (B, L), mixed_logits (L, L))``; row l of ``mixed_logits`` is the row mixed for label l.

    Raises:
        ValueError: an unknown place.
    """
    n = input_ids.shape[0]  # B
    if at == "word":
        embeds = model.get_input_embeddings()(input_ids)  # (B, T, H)
        mixed = _lerp(embeds, pairs)  # (L, T, H)
        mixed_mask = torch.maximum(attention_mask[pairs.pos_idx], attention_mask[pairs.unl_idx])  # (L, T)
        # two batched passes: on CPU one pass over B + L rows measured slower (6.8 s vs 5.5 s a step at
        # B = 64, MiniLM-L6, 128 tokens; benchmarks/step_cost.py), as GEMM cost jumps past B rows
        logits = model(inputs_embeds=embeds, attention_mask=attention_mask).logits  # (B, L)
        mixed_logits = model(inputs_embeds=mixed, attention_mask=mixed_mask).logits  # (L, L)
        return logits, mixed_logits
    if at not in ("encoder", "pooled"):
        raise ValueError(f"unknown MixUp place {at!r}; expected 'word', 'encoder' or 'pooled'")
    hidden = model.encode(input_ids, attention_mask)  # (B, T, H)
    if at == "encoder":
        mixed_mask = torch.maximum(attention_mask[pairs.pos_idx], attention_mask[pairs.unl_idx])  # (L, T)
        pooled = model.pool(torch.cat([hidden, _lerp(hidden, pairs)]),
                            torch.cat([attention_mask, mixed_mask]))  # (B + L, H)
    else:
        pooled = model.pool(hidden, attention_mask)  # (B, H)
        pooled = torch.cat([pooled, _lerp(pooled, pairs)])  # (B + L, H)
    logits = model.head(pooled)  # (B + L, L)
    return logits[:n], logits[n:]
