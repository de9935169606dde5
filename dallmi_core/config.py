"""Typed training configuration (paper section 4, "Training Details")."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

LossForm = Literal["norm", "log"]
MixupAt = Literal["word", "encoder", "pooled"]
SamplerKind = Literal["balanced", "random"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
Selection = Literal["auto", "last", "best"]
Pooling = Literal["mean", "cls"]
HeadInit = Literal["probe", "random"]
MixupGrad = Literal["prediction", "full"]
ThresholdRule = Literal["auto", "validation", "pu", "fixed"]

_CHOICES: dict[str, tuple[str, ...]] = {
    "loss_form": ("norm", "log"),
    "mixup_at": ("word", "encoder", "pooled"),
    "sampler": ("balanced", "random"),
    "precision": ("auto", "fp32", "bf16", "fp16"),
    "selection": ("auto", "last", "best"),
    "pooling": ("mean", "cls"),
    "head_init": ("probe", "random"),
    "mixup_grad": ("prediction", "full"),
    "thresholds": ("auto", "validation", "pu", "fixed"),
}

_INTS = ("batch_size", "epochs", "max_length", "grad_accum", "seed", "eval_batch_size", "checkpoint_every_steps",
         "min_steps")
_FLOATS = ("lr", "alpha", "beta", "mixup_weight", "weight_decay", "warmup_ratio", "max_grad_norm", "val_fraction",
           "anchor_weight", "wise_alpha")


BOUNDS: dict[str, dict[str, float]] = {
    "batch_size": {"ge": 1, "le": 4096},
    "epochs": {"ge": 1, "le": 10_000},
    "min_steps": {"ge": 0, "le": 10_000_000},
    "max_length": {"ge": 8, "le": 512},
    "grad_accum": {"ge": 1, "le": 1024},
    "seed": {"ge": 0, "le": 2**32 - 1},
    "eval_batch_size": {"ge": 1, "le": 4096},
    "checkpoint_every_steps": {"ge": 0, "le": 10_000_000},
    "lr": {"gt": 0, "le": 1},
    "alpha": {"gt": 0, "le": 1000},
    "beta": {"gt": 0, "le": 1000},
    "mixup_weight": {"ge": 0, "le": 1000},
    "weight_decay": {"ge": 0, "le": 1000},
    "max_grad_norm": {"ge": 0, "le": 1e6},
    "anchor_weight": {"ge": 0, "le": 1000},
    "warmup_ratio": {"ge": 0, "lt": 1},
    "val_fraction": {"ge": 0, "lt": 1},
    "wise_alpha": {"gt": 0, "le": 1},
}
"""The range of every numeric field (pydantic-style ``ge``/``gt``/``le``/``lt``): what ``__post_init__``
enforces, and what a service may publish as its schema. The seed is what numpy and torch accept."""

_OPS = {"ge": (lambda v, b: v >= b, ">="), "gt": (lambda v, b: v > b, ">"),
        "le": (lambda v, b: v <= b, "<="), "lt": (lambda v, b: v < b, "<")}

DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]{1,2})?)$"
"""'auto', 'cpu', 'cuda' or 'cuda:N'."""


PAPER_PRESET: dict[str, Any] = {
    "batch_size": 64, "lr": 5e-5, "epochs": 12, "max_length": 128, "min_steps": 0, "pooling": "cls",
    "head_init": "random", "mixup_weight": 1.0, "mixup_grad": "full", "anchor_weight": 0.0, "val_fraction": 0.0,
    "selection": "last", "thresholds": "fixed", "wise_alpha": 1.0,
}
"""The paper's settings (section 4, bert-base on a GPU) and its classifier (``BertForSequenceClassification``
over [CLS], a randomly initialised head, the MixUp term with gradient, 0.5 thresholds): ``preset="paper"``."""

PRESETS: dict[str, dict[str, Any]] = {"default": {}, "paper": PAPER_PRESET}


@dataclass
class TrainConfig:
    """Hyperparameters of one training run (fine-tuning or adaptation).

    The defaults are the product's recipe, chosen on held-out target_train rows (docs/recipe.md); the
    paper's settings are the ``paper`` preset (:data:`PAPER_PRESET`, ``TrainConfig.from_dict({"preset":
    "paper"})``).

    Raises:
        ValueError: from ``__post_init__`` when a value is out of range or fields contradict each other.
    """

    batch_size: int = 32
    """Rows per optimisation batch B (before gradient accumulation)."""
    lr: float = 5e-5
    """Peak AdamW learning rate."""
    epochs: int = 4
    """Number of passes over the training corpus (raised on small corpora to reach ``min_steps``)."""
    min_steps: int = 100
    """Fine-tuning only: minimum number of optimiser steps, so a small corpus gets more epochs for its new
    head (0: exactly ``epochs``). An adaptation runs ``epochs`` as given: it starts from a trained model, and
    more passes over a few known positives over-fit them (held-out target rows, docs/recipe.md: PubMed DALLMi
    at 30 % 76.5 -> 78.4 mAP, Movies 65.0 -> 76.2; Reuters unchanged, it has more than 100 steps anyway)."""
    max_length: int = 128
    """Maximum tokens per text (truncation); batches are padded dynamically up to this."""
    pooling: Pooling = "mean"
    """Sentence embedding a new head reads: mean of the last hidden states (what sentence encoders were
    trained for) or BERT's pooler over [CLS] (the paper's classifier). A checkpoint keeps its own."""
    head_init: HeadInit = "probe"
    """A new head (fine-tuning) starts as a logistic-regression probe on the frozen pooled embeddings of the
    training rows (LP-FT, Kumar et al. 2022), or random."""
    wise_alpha: float = 1.0
    """Fine-tuning only: weight-space ensemble of the fine-tuned model with the model it started from
    (WiSE-FT, Wortsman et al. 2022, Eq. 1: ``theta = (1 - a) * theta_0 + a * theta_ft``, ``theta_0`` the
    frozen encoder with its probe head). 1 keeps the fine-tuned weights; smaller values keep more of what
    the pre-trained encoder knows, which transfers better across a domain shift."""
    alpha: float = 0.3
    """First shape parameter of the MixUp coefficient mu ~ Beta(alpha, beta) (Eq. 3)."""
    beta: float = 0.3
    """Second shape parameter of mu ~ Beta(alpha, beta) (Eq. 3)."""
    mixup_weight: float = 1.0
    """lambda, the weight of the MixUp term in L_final (Algorithm 1, line 11). 0 disables MixUp."""
    mixup_grad: MixupGrad = "prediction"
    """Which side of Eq. 2 carries gradient: "prediction" (the mixed row's score; the target of Eq. 5 is a
    constant) or "full" (also through sigma(Phi(s_u)) in the target, which pulls unlabeled scores up)."""
    anchor_weight: float = 1.0
    """Adaptation only: weight of the self-distillation anchor, the BCE between the adapted model's scores
    and the source model's own scores on the target rows' unknown entries (Learning without Forgetting,
    Li & Hoiem 2016). Keeps labels without a known positive, and the scale of all scores, where the source
    model had them. 0 disables it (the paper's loss)."""
    loss_form: LossForm = "norm"
    """Variational loss form: the paper's "norm" (Eq. 1) or VPU's "log" (Table 3 ii)."""
    mixup_at: MixupAt = "word"
    """Where MixUp interpolates (Fig. 4): word embeddings, encoder output or pooled sentence embedding."""
    sampler: SamplerKind = "balanced"
    """Batch sampler: label-balanced (section 3) or plain random (Table 4 ablation)."""
    weight_decay: float = 0.01
    """AdamW decoupled weight decay."""
    warmup_ratio: float = 0.1
    """Share of optimisation steps with linear learning-rate warm-up before linear decay to 0."""
    grad_accum: int = 1
    """Batches whose gradients are summed before one optimiser step."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm; 0 disables clipping."""
    seed: int = 0
    """Seed of the sampler, MixUp draws, dropout, the validation split and the head's initialisation."""
    device: str = "auto"
    """'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N'."""
    precision: Precision = "auto"
    """Autocast dtype: 'auto' is bf16 on GPUs that support it, fp16 on other GPUs, fp32 on CPU."""
    selection: Selection = "auto"
    """Model selection: the last epoch, or the best epoch on the validation split (fine-tuning: its mAP, the
    probe-initialised model counted as epoch 0; adaptation: the held-out variational loss, VPU). 'auto':
    best when there is a validation split. Never chosen on an evaluation corpus."""
    val_fraction: float | None = None
    """Share of the training corpus held out for selection and thresholds. None: 0.1 of a fine-tuning
    corpus (at least 20 rows, when it has 100 or more), none of an adaptation corpus (its few known positives
    are kept for training)."""
    thresholds: ThresholdRule = "auto"
    """Stored per-label decision thresholds: "validation" (F1-optimal on the labelled validation split),
    "pu" (from positive-unlabeled data only, see :func:`dallmi_core.decisions.pu_thresholds`), "fixed"
    (0.5). "auto": validation for fine-tuning, pu for adaptation."""
    eval_batch_size: int = 64
    """Rows per forward pass during evaluation and prediction."""
    checkpoint_every_steps: int = 0
    """Also save the resumable training state every N optimiser steps (0: only at epoch ends)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form annotations stored with the checkpoint (not used by training)."""

    def _check_types(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _INTS and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{f.name} must be an integer, got {value!r}")
            if f.name in _FLOATS:
                if f.name == "val_fraction" and value is None:
                    continue
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise ValueError(f"{f.name} must be a finite number, got {value!r}")
                setattr(self, f.name, float(value))
            if f.name in _CHOICES or f.name == "device":
                if not isinstance(value, str):
                    raise ValueError(f"{f.name} must be a string, got {value!r}")
        if not isinstance(self.extra, dict):
            raise ValueError(f"extra must be a mapping, got {self.extra!r}")

    def _check_bounds(self) -> None:
        for name, bounds in BOUNDS.items():
            value = getattr(self, name)
            if value is None:  # val_fraction: None means "the default split"
                continue
            for op, bound in bounds.items():
                holds, symbol = _OPS[op]
                if not holds(value, bound):
                    raise ValueError(f"{name} must be {symbol} {bound}, got {value!r}")

    def __post_init__(self) -> None:
        self._check_types()
        self._check_bounds()
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not re.fullmatch(DEVICE_PATTERN, self.device):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}")
        if self.device == "cpu" and self.precision in ("bf16", "fp16"):
            raise ValueError("mixed precision (bf16/fp16) needs a GPU; use precision='fp32' or 'auto' on CPU")

    def planned_steps(self, n_rows: int) -> tuple[int, int]:
        """(epochs, optimiser steps) a run on ``n_rows`` training rows takes at most: ``min_steps`` raises the
        epochs of a small corpus the way the training loop does (a held-out split only makes it shorter)."""
        steps_per_epoch = max(1, math.ceil(math.ceil(n_rows / self.batch_size) / self.grad_accum))
        epochs = max(self.epochs, math.ceil(self.min_steps / steps_per_epoch))
        return epochs, epochs * steps_per_epoch

    def check_limits(self, n_rows: int, *, max_epochs: int, max_steps: int) -> None:
        """Refuse a run on ``n_rows`` rows that would take more than ``max_epochs`` epochs or ``max_steps``
        optimiser steps (a service's limits on what one job may hold a worker for).

        Raises:
            ValueError: naming the limit and what the run would take.
        """
        epochs, steps = self.planned_steps(n_rows)
        if epochs > max_epochs:
            raise ValueError(f"the run would take {epochs} epochs; the limit is {max_epochs}")
        if steps > max_steps:
            raise ValueError(
                f"the run would take {steps} optimiser steps ({epochs} epochs of {n_rows} rows in batches of "
                f"{self.batch_size}); the limit is {max_steps}"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build a config from a JSON-like mapping; ``"preset": "paper"`` starts from :data:`PAPER_PRESET`
        (keys given beside it win).

        Raises:
            ValueError: an unknown key or preset (named), or an invalid value (from ``__post_init__``).
        """
        values = dict(values)
        preset = values.pop("preset", "default")
        if not isinstance(preset, str) or preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; known: {sorted(PRESETS)}")
        values = {**PRESETS[preset], **values}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training parameter(s): {', '.join(unknown)}; known: {sorted(known)}")
        try:
            return cls(**values)
        except TypeError as exc:  # pragma: no cover - defensive, keys are checked above
            raise ValueError(str(exc)) from exc

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-serialisable dict (round-trips through ``from_dict``)."""
        return dataclasses.asdict(self)
