"""The state of one training run (model, data, optimiser, sampler, RNGs), its save and restore for
resumption, and the decisions taken at its end (thresholds, the collapse guard). Internal to
:mod:`dallmi_core.train`."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from transformers import get_linear_schedule_with_warmup

from .checkpoint import load_train_state, restore_rng, rng_state, save_train_state
from .config import TrainConfig
from .decisions import collapse_warnings, decision_summary, estimate_prior, prior_thresholds
from .evaluate import best_f1_thresholds, predict_scores
from .modeling import Encoded

Method = Literal["finetune", "bce", "dallmi"]


@dataclass
class Run:
    config: TrainConfig
    method: Method
    model: Any
    tokenizer: Any
    device: torch.device
    labels: list[str]
    encoded: Encoded
    known: np.ndarray  # (N, L) uint8
    sampler: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    autocast: Any
    rng: np.random.Generator
    steps_per_epoch: int
    eval_set: tuple[Encoded, np.ndarray] | None
    val_set: tuple[Encoded, np.ndarray] | None
    state_dir: Path
    epochs: int
    active: np.ndarray  # (L,) bool: labels with a known positive (the others are not adapted)
    teacher: np.ndarray | None = None  # (N, L) the base model's scores of the training rows (adaptation)
    epoch: int = 0
    consumed: int = 0
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: float | None = None
    epoch_losses: list[float] = field(default_factory=list)  # losses of the current epoch's batches so far


def autocast_for(config: TrainConfig, device: torch.device) -> tuple[Any, Any]:
    if device.type != "cuda" or config.precision == "fp32":
        return contextlib.nullcontext, None
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision)
    if dtype is None:  # auto
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return (lambda: torch.autocast("cuda", dtype=dtype)), scaler


def make_optimizer(model: Any, config: TrainConfig, total: int) -> tuple[torch.optim.Optimizer, Any]:
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if not n.endswith(no_decay)], "weight_decay": config.weight_decay},
        {"params": [p for n, p in named if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.lr)
    return optimizer, get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total), total)


def scores_of(run: Run, encoded: Encoded) -> np.ndarray:
    """``(N, L)`` sigmoid scores of ``encoded`` under the current model, in eval mode."""
    return predict_scores(run.model, encoded, batch_size=run.config.eval_batch_size, device=run.device)


def save_state(run: Run) -> None:
    tensors = {"optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
               "torch_rng": torch.get_rng_state()}
    if run.device.type == "cuda":
        tensors["cuda_rng"] = torch.cuda.get_rng_state(run.device)
    if run.scaler is not None:
        tensors["scaler"] = run.scaler.state_dict()
    info = {"epoch": run.epoch, "consumed": run.consumed, "step": run.step, "history": run.history,
            "best": run.best, "mixup_rng": rng_state(run.rng), "epoch_losses": run.epoch_losses,
            "sampler": run.sampler.state_dict(run.consumed), "config": run.config.to_dict()}
    save_train_state(run.state_dir, model=run.model, tensors=tensors, info=info)


def restore_state(run: Run) -> None:
    loaded = load_train_state(run.state_dir, run.model)
    if loaded is None:
        return
    tensors, info = loaded
    if info["config"] != run.config.to_dict():
        raise ValueError(f"the training state in {run.state_dir} was saved with another config")
    run.optimizer.load_state_dict(tensors["optimizer"])
    run.scheduler.load_state_dict(tensors["scheduler"])
    torch.set_rng_state(tensors["torch_rng"])
    if "cuda_rng" in tensors and run.device.type == "cuda":
        torch.cuda.set_rng_state(tensors["cuda_rng"], run.device)
    if run.scaler is not None and "scaler" in tensors:
        run.scaler.load_state_dict(tensors["scaler"])
    run.epoch, run.consumed, run.step = info["epoch"], info["consumed"], info["step"]
    run.history, run.best, run.rng = info["history"], info["best"], restore_rng(info["mixup_rng"])
    run.epoch_losses = list(info.get("epoch_losses", []))
    run.sampler.load_state_dict(info["sampler"])


def _thresholds(run: Run, rule: str, scores: np.ndarray | None, prior: np.ndarray | None
                ) -> tuple[np.ndarray, str]:
    """``(L,)`` thresholds by ``rule`` (fixed | validation | pu) and how they were chosen."""
    if rule == "fixed":
        return np.full(len(run.labels), 0.5), "fixed"
    if rule == "validation":
        labelled = run.val_set if run.val_set is not None else (run.encoded, run.known)
        thresholds = best_f1_thresholds(labelled[1], scores_of(run, labelled[0])).astype(np.float64)
        where = "validation split" if run.val_set is not None else "training rows (no validation split)"
        return thresholds, f"validation: F1-optimal on the {where}"
    assert scores is not None and prior is not None
    return prior_thresholds(scores, prior), "pu: prior quantile (source-model prior estimate)"


def _val_loss_warning(history: list[dict[str, Any]]) -> list[str]:
    """A warning when the held-out variational loss (VPU) ended above where the source model started."""
    losses = [h["val_variational_loss"] for h in history if "val_variational_loss" in h]
    if len(losses) >= 2 and losses[-1] > losses[0]:
        return [f"the held-out variational loss rose from {losses[0]:.4f} to {losses[-1]:.4f}: the adaptation "
                "made the positive-unlabeled fit worse"]
    return []


def decide(run: Run) -> tuple[np.ndarray, dict[str, Any]]:
    """Stored thresholds ``(L,)`` (config ``thresholds``, never from an evaluation corpus) and what the
    user should know about the decisions: for an adaptation, estimated priors, predicted-positive rates,
    the collapse guard's warnings and the labels that had no known positive."""
    rule = run.config.thresholds
    if rule == "auto":
        rule = "validation" if run.method == "finetune" else "pu"
    scores = prior = None
    if rule == "pu" or run.method != "finetune":
        scores = scores_of(run, run.encoded)  # (N, L) the training rows, after training
        prior = estimate_prior(run.teacher if run.teacher is not None else scores, run.known)
    thresholds, how = _thresholds(run, rule, scores, prior)
    info: dict[str, Any] = {"threshold_rule": how}
    if run.method != "finetune" and scores is not None and prior is not None and run.teacher is not None:
        info.update(decision_summary(scores, thresholds, prior))
        info["warnings"] = collapse_warnings(scores, run.teacher, prior, run.labels) + _val_loss_warning(run.history)
        info["labels_not_adapted"] = [name for name, a in zip(run.labels, run.active, strict=True) if not a]
    return thresholds, info
