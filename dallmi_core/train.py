"""The training loop, built from functions: ``_setup`` -> ``_fit`` -> ``_finish``.

``finetune`` trains the source model with BCE on a fully labelled corpus; ``adapt`` adapts a checkpoint
to a partially labelled target corpus with DALLMi (or the BCE baseline). Progress, metrics and
checkpoints leave the loop through :class:`Callback`; a run is stopped by a callback's ``should_stop``
(checked every step) and resumed from its last saved state with the same result on CPU.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from transformers import get_linear_schedule_with_warmup

from .checkpoint import load_train_state, restore_rng, rng_state, save_checkpoint, save_train_state
from .config import TrainConfig
from .corpus import Corpus, split_holdout
from .evaluate import best_f1_thresholds, evaluate_scores, predict_scores
from .modeling import Encoded, checkpoint_labels, encode, load_classifier, resolve_device
from .sampler import make_sampler
from .steps import bce_step, dallmi_step, heldout_variational_loss

Method = Literal["finetune", "bce", "dallmi"]


@dataclass
class Progress:
    """Where a run stands: 1-based ``epoch`` of ``epochs``; ``step`` optimiser steps done of
    ``total_steps``; ``loss`` of the last step; ``elapsed_s`` and ``eta_s`` in seconds."""

    epoch: int
    epochs: int
    step: int
    total_steps: int
    loss: float
    elapsed_s: float
    eta_s: float | None


class Callback:
    """Hooks through which progress, metrics and the cancel flag cross the loop (all optional)."""

    def on_step(self, progress: Progress) -> None:
        """After every optimiser step."""

    def on_epoch_end(self, progress: Progress, metrics: dict[str, Any]) -> None:
        """After an epoch's evaluation; ``metrics`` holds ``epoch``, ``train_loss`` and eval figures."""

    def should_stop(self) -> bool:
        """Checked after every batch; True cancels the run (:class:`TrainingCancelled`)."""
        return False


class TrainingCancelled(RuntimeError):
    """A callback asked the run to stop; the last saved training state is kept for resumption."""


@dataclass
class TrainResult:
    """Where the checkpoint was written, its final metrics and one metrics dict per epoch."""

    checkpoint_dir: Path
    metrics: dict[str, Any]
    history: list[dict[str, Any]]


@dataclass
class _Run:
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
    epoch: int = 0
    consumed: int = 0
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: float | None = None


def _autocast(config: TrainConfig, device: torch.device) -> tuple[Any, Any]:
    if device.type != "cuda" or config.precision == "fp32":
        return contextlib.nullcontext, None
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision)
    if dtype is None:  # auto
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return (lambda: torch.autocast("cuda", dtype=dtype)), scaler


def _setup(*, base: str, corpus: Corpus, config: TrainConfig, method: Method, out_dir: Path,
           eval_corpus: Corpus | None, resume: bool) -> _Run:
    device = resolve_device(config.device)
    model, tokenizer = load_classifier(base, corpus.labels, seed=config.seed)
    model.to(device)  # type: ignore[arg-type]
    model.train()
    train, val = corpus, None
    if config.val_fraction > 0:
        train, val = split_holdout(corpus, config.val_fraction, config.seed)
    known = train.y
    sampler = make_sampler("balanced" if method == "dallmi" and config.sampler == "balanced" else "random",
                           known, config.batch_size, seed=config.seed)
    steps_per_epoch = -(-len(sampler) // config.grad_accum)
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
         "weight_decay": config.weight_decay},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.lr)
    total = steps_per_epoch * config.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total), total)
    autocast, scaler = _autocast(config, device)

    def encoded(c: Corpus) -> Encoded:
        return encode(tokenizer, c.texts, config.max_length)

    run = _Run(config=config, method=method, model=model, tokenizer=tokenizer, device=device,
               labels=list(corpus.labels), encoded=encoded(train), known=known, sampler=sampler,
               optimizer=optimizer, scheduler=scheduler, scaler=scaler, autocast=autocast,
               rng=np.random.default_rng([config.seed, 1]), steps_per_epoch=steps_per_epoch,
               eval_set=(encoded(eval_corpus), eval_corpus.y) if eval_corpus is not None else None,
               val_set=(encoded(val), val.y) if val is not None else None,
               state_dir=out_dir / "state")
    if resume:
        _restore(run)
    return run


def _save_state(run: _Run) -> None:
    tensors = {"optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
               "torch_rng": torch.get_rng_state()}
    if run.device.type == "cuda":
        tensors["cuda_rng"] = torch.cuda.get_rng_state(run.device)
    if run.scaler is not None:
        tensors["scaler"] = run.scaler.state_dict()
    info = {"epoch": run.epoch, "consumed": run.consumed, "step": run.step, "history": run.history,
            "best": run.best, "mixup_rng": rng_state(run.rng),
            "sampler": run.sampler.state_dict(run.consumed), "config": run.config.to_dict()}
    save_train_state(run.state_dir, model=run.model, tensors=tensors, info=info)


def _restore(run: _Run) -> None:
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
    run.sampler.load_state_dict(info["sampler"])


def _batch_loss(run: _Run, idx: np.ndarray) -> Any:
    index = torch.from_numpy(idx)
    ids, mask = run.encoded.batch(index, run.device)
    known_host = run.known[idx]  # (B, L)
    known = torch.from_numpy(known_host).to(run.device, dtype=torch.float32)
    with run.autocast():
        if run.method == "dallmi":
            return dallmi_step(run.model, ids, mask, known, known_host, run.config, run.rng)
        return bce_step(run.model, ids, mask, known)


def _optimizer_step(run: _Run) -> None:
    if run.scaler is not None:
        run.scaler.unscale_(run.optimizer)
    if run.config.max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.config.max_grad_norm)
    if run.scaler is not None:
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1


def _train_epoch(run: _Run, callbacks: Sequence[Callback], clock: tuple[float, int]) -> float:
    """One epoch (or its rest after a resume); returns the mean loss of its batches."""
    config, losses = run.config, []
    total = run.steps_per_epoch * config.epochs
    n_batches = len(run.sampler)
    for idx in run.sampler:
        out = _batch_loss(run, idx)
        loss = out.loss / config.grad_accum
        (run.scaler.scale(loss) if run.scaler is not None else loss).backward()
        run.consumed += 1
        losses.append(float(out.loss.detach()))
        if run.consumed % config.grad_accum == 0 or run.consumed == n_batches:
            _optimizer_step(run)
            elapsed = time.perf_counter() - clock[0]
            done = run.step - clock[1]
            eta = elapsed / done * (total - run.step) if done else None
            progress = Progress(run.epoch + 1, config.epochs, run.step, total, losses[-1], elapsed, eta)
            for callback in callbacks:
                callback.on_step(progress)
            if config.checkpoint_every_steps and run.step % config.checkpoint_every_steps == 0:
                _save_state(run)
        if any(callback.should_stop() for callback in callbacks):
            raise TrainingCancelled(f"cancelled at epoch {run.epoch + 1}, step {run.step}")
    return float(np.mean(losses)) if losses else float("nan")


def _epoch_metrics(run: _Run) -> tuple[dict[str, Any], float | None]:
    """Eval figures of the epoch and the model-selection score (higher is better), if any."""
    metrics: dict[str, Any] = {}
    score = None
    if run.eval_set is not None:
        scores = predict_scores(run.model, run.eval_set[0], batch_size=run.config.eval_batch_size,
                                device=run.device)
        report = evaluate_scores(run.eval_set[1], scores, run.labels)
        metrics = {k: report[k] for k in ("mAP", "micro_AP", "macro_F1", "roc_auc")}
        score = report["mAP"]
    if run.val_set is not None:
        val_loss = heldout_variational_loss(run.model, run.val_set[0], run.val_set[1], run.config, run.device)
        metrics["val_variational_loss"] = val_loss
        score = -val_loss if score is None else score
    return metrics, score


def _fit(run: _Run, callbacks: Sequence[Callback]) -> None:
    clock = (time.perf_counter(), run.step)
    while run.epoch < run.config.epochs:
        if run.consumed == 0:
            run.sampler.set_epoch(run.epoch)
        train_loss = _train_epoch(run, callbacks, clock)
        metrics, score = _epoch_metrics(run)
        metrics = {"epoch": run.epoch + 1, "train_loss": train_loss, **metrics}
        run.history.append(metrics)
        if run.config.selection == "best" and score is not None and (run.best is None or score > run.best):
            run.best = score
            run.state_dir.mkdir(parents=True, exist_ok=True)
            save_model(run.model, str(run.state_dir.parent / "best.safetensors"))
        run.epoch, run.consumed = run.epoch + 1, 0
        _save_state(run)  # before the callbacks: an epoch they report is always durable
        elapsed = time.perf_counter() - clock[0]
        progress = Progress(run.epoch, run.config.epochs, run.step, run.steps_per_epoch * run.config.epochs,
                            train_loss, elapsed, None)
        for callback in callbacks:
            callback.on_epoch_end(progress, metrics)


def _finish(run: _Run, *, base: str, corpus: Corpus, eval_corpus: Corpus | None, out_dir: Path) -> TrainResult:
    best_path = out_dir / "best.safetensors"
    if run.config.selection == "best" and best_path.is_file():
        load_model(run.model, str(best_path))
    thresholds = np.full(len(run.labels), 0.5)
    metrics: dict[str, Any] = {}
    if run.eval_set is not None:
        scores = predict_scores(run.model, run.eval_set[0], batch_size=run.config.eval_batch_size,
                                device=run.device)
        thresholds = best_f1_thresholds(run.eval_set[1], scores)
        metrics = evaluate_scores(run.eval_set[1], scores, run.labels, thresholds)
    meta = {
        "format": 1, "labels": run.labels, "thresholds": thresholds.tolist(), "method": run.method,
        "base": base, "parent": base if checkpoint_labels(base) is not None else None,
        "config": run.config.to_dict(), "corpus_hash": corpus.content_hash,
        "eval_corpus_hash": eval_corpus.content_hash if eval_corpus is not None else None,
        "metrics": metrics, "history": run.history,
    }
    path = save_checkpoint(out_dir / "checkpoint", run.model, run.tokenizer, meta)
    return TrainResult(checkpoint_dir=path, metrics=metrics, history=run.history)


def _train(*, base: str, corpus: Corpus, config: TrainConfig, method: Method, out_dir: str | Path,
           eval_corpus: Corpus | None, callbacks: Sequence[Callback], resume: bool) -> TrainResult:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if eval_corpus is not None and eval_corpus.labels != corpus.labels:
        raise ValueError(f"eval corpus labels {eval_corpus.labels} differ from training labels {corpus.labels}")
    run = _setup(base=base, corpus=corpus, config=config, method=method, out_dir=out,
                 eval_corpus=eval_corpus, resume=resume)
    _fit(run, callbacks)
    return _finish(run, base=base, corpus=corpus, eval_corpus=eval_corpus, out_dir=out)


def finetune(*, base: str, corpus: Corpus, config: TrainConfig, out_dir: str | Path,
             eval_corpus: Corpus | None = None, callbacks: Sequence[Callback] = (),
             resume: bool = True) -> TrainResult:
    """Supervised fine-tuning with BCE on a fully labelled (source) corpus: the source model.

    Args:
        base: an encoder or checkpoint name/path (see :func:`resolve_base_model`); a new head is made for
            ``corpus.labels`` unless ``base`` is a checkpoint with exactly these labels.
        out_dir: run folder; the checkpoint goes to ``out_dir/checkpoint``, the resumable state to
            ``out_dir/state``.
        resume: continue from ``out_dir/state`` when present.

    Raises:
        TrainingCancelled: a callback stopped the run. ValueError: bad model, labels or config.
    """
    return _train(base=base, corpus=corpus, config=config, method="finetune", out_dir=out_dir,
                  eval_corpus=eval_corpus, callbacks=callbacks, resume=resume)


def adapt(*, base: str, corpus: Corpus, config: TrainConfig, out_dir: str | Path,
          method: Literal["dallmi", "bce"] = "dallmi", eval_corpus: Corpus | None = None,
          callbacks: Sequence[Callback] = (), resume: bool = True) -> TrainResult:
    """Adapt a checkpoint to a partially labelled target corpus (``Y``: 1 known positive, 0 unknown),
    with DALLMi (Algorithm 1 with the label-balanced sampler) or the BCE baseline on partial labels.

    Raises:
        ValueError: ``base`` is not a checkpoint with the corpus's labels, or bad method/config.
        CorpusError: a label with no known positive (DALLMi's variational loss needs one).
        TrainingCancelled: a callback stopped the run.
    """
    if method not in ("dallmi", "bce"):
        raise ValueError(f"unknown adaptation method {method!r}; expected 'dallmi' or 'bce'")
    base_labels = checkpoint_labels(base)
    if base_labels is None:
        raise ValueError(f"{base!r} is not a DALLMi checkpoint: adapt a fine-tuned source model")
    if base_labels != corpus.labels:
        raise ValueError(f"label sets differ: base model {base_labels}, target corpus {corpus.labels}")
    if method == "dallmi":
        corpus.require_known_positives()
    return _train(base=base, corpus=corpus, config=config, method=method, out_dir=out_dir,
                  eval_corpus=eval_corpus, callbacks=callbacks, resume=resume)
