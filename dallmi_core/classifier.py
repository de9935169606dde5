"""The multi-label classifier: a BERT-family encoder, a pooling of its last hidden states into one sentence
embedding, and a linear head with one logit per label.

Sentence encoders such as all-MiniLM-L6-v2 were trained with *mean* pooling; BERT's pooler over [CLS]
(what ``BertForSequenceClassification`` classifies from) is left untrained in them, so a head on it throws
away what the encoder knows (issue #8: a linear probe on mean-pooled frozen embeddings beat the fine-tuned
[CLS] classifier by 22-30 mAP points). Mean pooling is the default; ``cls`` keeps the paper's head and
reads checkpoints written before this module existed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

Pooling = Literal["mean", "cls"]
POOLINGS: tuple[str, ...] = ("mean", "cls")
HEAD_FILE = "classifier.safetensors"


class MultiLabelClassifier(nn.Module):
    """``logits = W · dropout(pool(encoder(x))) + b``: an encoder with a pooled linear multi-label head.

    Args:
        encoder: a Hugging Face encoder (``AutoModel``), hidden size ``H``.
        num_labels: ``L``.
        pooling: "mean" (mask-weighted mean of the last hidden states) or "cls" (the encoder's pooler over
            [CLS], as ``BertForSequenceClassification``).

    Raises:
        ValueError: an unknown pooling, or "cls" on an encoder without a pooler.
    """

    def __init__(self, encoder: PreTrainedModel, num_labels: int, *, pooling: str = "mean") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if pooling == "cls" and getattr(encoder, "pooler", None) is None:
            raise ValueError(f"{type(encoder).__name__} has no pooler for pooling='cls'; use pooling='mean'")
        self.encoder = encoder
        self.pooling = pooling
        self.num_labels = num_labels
        self.dropout = nn.Dropout(float(getattr(encoder.config, "hidden_dropout_prob", 0.1)))
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)

    @property
    def config(self) -> Any:
        """The encoder's Hugging Face config."""
        return self.encoder.config

    def get_input_embeddings(self) -> nn.Module:
        """The word-embedding table (MixUp at word level mixes its output, Eq. 4)."""
        return self.encoder.get_input_embeddings()

    def encode(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
               inputs_embeds: Tensor | None = None) -> Tensor:
        """Last hidden states ``(B, T, H)`` from ``input_ids (B, T)`` or ``inputs_embeds (B, T, H)``."""
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds)
        return out.last_hidden_state

    def pool(self, hidden: Tensor, attention_mask: Tensor) -> Tensor:
        """Sentence embeddings ``(B, H)`` from hidden states ``(B, T, H)`` and the mask ``(B, T)``."""
        if self.pooling == "cls":
            return self.encoder.pooler(hidden)  # type: ignore[operator]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, H)

    def head(self, pooled: Tensor) -> Tensor:
        """Logits ``(B, L)`` of pooled embeddings ``(B, H)``."""
        return self.classifier(self.dropout(pooled))

    def forward(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                inputs_embeds: Tensor | None = None) -> SequenceClassifierOutput:
        """Logits ``(B, L)`` in ``.logits`` (the interface of ``*ForSequenceClassification``)."""
        if attention_mask is None:
            shape = (input_ids if input_ids is not None else inputs_embeds).shape[:2]  # type: ignore[union-attr]
            device = (input_ids if input_ids is not None else inputs_embeds).device  # type: ignore[union-attr]
            attention_mask = torch.ones(shape, dtype=torch.long, device=device)
        hidden = self.encode(input_ids, attention_mask, inputs_embeds)  # (B, T, H)
        return SequenceClassifierOutput(logits=self.head(self.pool(hidden, attention_mask)))

    def save_pretrained(self, path: str | Path) -> None:
        """The encoder as a Hugging Face folder (safetensors) and the head in ``classifier.safetensors``."""
        out = Path(path)
        self.encoder.save_pretrained(out)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.classifier.state_dict().items()},
                  str(out / HEAD_FILE))

    def load_head(self, path: str | Path) -> None:
        """Read the head saved by :meth:`save_pretrained`.

        Raises:
            ValueError: its shape is not ``(L, H)``.
        """
        state = load_file(str(Path(path) / HEAD_FILE))
        if tuple(state["weight"].shape) != tuple(self.classifier.weight.shape):
            raise ValueError(f"head {tuple(state['weight'].shape)} does not fit {tuple(self.classifier.weight.shape)}")
        self.classifier.load_state_dict(state)

    @torch.no_grad()
    def set_head(self, weight: np.ndarray, bias: np.ndarray) -> None:
        """Overwrite the head with ``weight (L, H)`` and ``bias (L,)`` (e.g. a linear probe's)."""
        self.classifier.weight.copy_(torch.as_tensor(weight, dtype=self.classifier.weight.dtype))
        self.classifier.bias.copy_(torch.as_tensor(bias, dtype=self.classifier.bias.dtype))
