"""The training loop, built from functions: ``_setup`` -> ``_fit`` -> ``_finish``.

``finetune`` trains the source model with BCE on a fully labelled corpus; ``adapt`` adapts a checkpoint
to a partially labelled target corpus with DALLMi (or the BCE baseline). Progress, metrics and
checkpoints leave the loop through :class:`Callback`; a run is stopped by a callback's ``should_stop``
(checked every step) and resumed from its last saved state with the same result on CPU.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_model

from .checkpoint import save_checkpoint
from .config import TrainConfig
from .corpus import Corpus, CorpusError, split_holdout
from .evaluate import evaluate_scores
from .modeling import Encoded, checkpoint_labels, encode, load_classifier, resolve_device
from .probe import fit_probe_head, wise_interpolate
from .runstate import Method, Run, autocast_for, decide, make_optimizer, restore_state, save_state, scores_of
from .sampler import make_sampler
from .steps import bce_step, dallmi_step, heldout_variational_loss

MIN_VAL_ROWS = 20
"""Rows of the smallest validation split of a fine-tuning corpus (made when the corpus has >= 5x this)."""


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

    def should_pause(self) -> bool:
        """Checked after every optimiser step and epoch; True saves the training state at that point and
        stops the run (:class:`TrainingPaused`), so a resume loses no step (a warm shutdown)."""
        return False


class TrainingCancelled(RuntimeError):
    """A callback asked the run to stop; the last saved training state is kept for resumption."""


class TrainingPaused(TrainingCancelled):
    """A callback asked the run to pause; the state was saved at the step it stopped, resume continues there."""


@dataclass
class TrainResult:
    """Where the checkpoint was written, its final metrics and one metrics dict per epoch."""

    checkpoint_dir: Path
    metrics: dict[str, Any]
    history: list[dict[str, Any]]


def _val_fraction(config: TrainConfig, method: Method, n_rows: int) -> float:
    """The held-out share: as configured, else (None) 10 % (>= MIN_VAL_ROWS rows) of a fine-tuning corpus
    of at least 5 * MIN_VAL_ROWS rows, nothing of an adaptation corpus."""
    if config.val_fraction is not None:
        return config.val_fraction
    if method != "finetune" or n_rows < 5 * MIN_VAL_ROWS:
        return 0.0
    return max(0.1, MIN_VAL_ROWS / n_rows)


def _setup(*, base: str, corpus: Corpus, config: TrainConfig, method: Method, out_dir: Path,
           eval_corpus: Corpus | None, resume: bool) -> Run:
    device = resolve_device(config.device)
    model, tokenizer = load_classifier(base, corpus.labels, seed=config.seed, pooling=config.pooling)
    model.to(device)
    model.train()
    train, val = corpus, None
    fraction = _val_fraction(config, method, corpus.n_rows)
    if fraction > 0:
        train, val = split_holdout(corpus, fraction, config.seed)
    known = train.y
    sampler = make_sampler("balanced" if method == "dallmi" and config.sampler == "balanced" else "random",
                           known, config.batch_size, seed=config.seed)
    steps_per_epoch = -(-len(sampler) // config.grad_accum)
    epochs = config.epochs
    if method == "finetune":  # a new head on a small corpus: more epochs (an adaptation starts trained)
        epochs = max(epochs, -(-config.min_steps // steps_per_epoch))
    optimizer, scheduler = make_optimizer(model, config, steps_per_epoch * epochs)
    autocast, scaler = autocast_for(config, device)

    def encoded(c: Corpus) -> Encoded:
        return encode(tokenizer, c.texts, config.max_length)

    run = Run(config=config, method=method, model=model, tokenizer=tokenizer, device=device,
               labels=list(corpus.labels), encoded=encoded(train), known=known, sampler=sampler,
               optimizer=optimizer, scheduler=scheduler, scaler=scaler, autocast=autocast,
               rng=np.random.default_rng([config.seed, 1]), steps_per_epoch=steps_per_epoch,
               eval_set=(encoded(eval_corpus), eval_corpus.y) if eval_corpus is not None else None,
               val_set=(encoded(val), val.y) if val is not None else None,
               state_dir=out_dir / "state", epochs=epochs, active=np.asarray(known.any(axis=0)))
    has_state = resume and (run.state_dir / "state.json").is_file()
    if method != "finetune":  # the source model's view of the target rows: anchor, prior, guard
        run.teacher = scores_of(run, run.encoded)
    elif config.head_init == "probe" and checkpoint_labels(base) != corpus.labels and not has_state:
        fit_probe_head(model, run.encoded, known, batch_size=config.eval_batch_size, device=device)
    if method == "finetune" and config.wise_alpha < 1 and not has_state:  # theta_0 of WiSE-FT
        save_model(model, str(out_dir / "init.safetensors"))
    if resume:
        restore_state(run)
    return run


def _batch_loss(run: Run, idx: np.ndarray) -> Any:
    index = torch.from_numpy(idx)
    ids, mask = run.encoded.batch(index, run.device)
    known_host = run.known[idx]  # (B, L)
    known = torch.from_numpy(known_host).to(run.device, dtype=torch.float32)
    with run.autocast():
        if run.method == "dallmi":
            teacher = None if run.teacher is None else torch.from_numpy(run.teacher[idx]).to(run.device)
            return dallmi_step(run.model, ids, mask, known, known_host, run.config, run.rng, teacher)
        active = None if run.method == "finetune" else torch.from_numpy(run.active).to(run.device)
        return bce_step(run.model, ids, mask, known, active)


def _optimizer_step(run: Run) -> None:
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


def _train_epoch(run: Run, callbacks: Sequence[Callback], clock: tuple[float, int]) -> float:
    """One epoch (or its rest after a resume); returns the mean loss of its batches."""
    config, losses = run.config, run.epoch_losses
    total = run.steps_per_epoch * run.epochs
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
            progress = Progress(run.epoch + 1, run.epochs, run.step, total, losses[-1], elapsed, eta)
            for callback in callbacks:
                callback.on_step(progress)
            if config.checkpoint_every_steps and run.step % config.checkpoint_every_steps == 0:
                save_state(run)
            if run.consumed < n_batches and any(callback.should_pause() for callback in callbacks):
                save_state(run)
                raise TrainingPaused(f"paused at epoch {run.epoch + 1}, step {run.step}")
        if any(callback.should_stop() for callback in callbacks):
            raise TrainingCancelled(f"cancelled at epoch {run.epoch + 1}, step {run.step}")
    return float(np.mean(losses)) if losses else float("nan")


def _epoch_metrics(run: Run) -> tuple[dict[str, Any], float | None]:
    """Eval figures of the epoch (reported only) and the model-selection score (higher is better) from the
    validation split: its mAP when labelled (fine-tuning), minus its variational loss when PU (VPU)."""
    metrics: dict[str, Any] = {}
    score = None
    if run.eval_set is not None:
        report = evaluate_scores(run.eval_set[1], scores_of(run, run.eval_set[0]), run.labels)
        metrics = {k: report[k] for k in ("mAP", "micro_AP", "macro_F1", "roc_auc")}
    if run.val_set is not None and run.method == "finetune":
        score = evaluate_scores(run.val_set[1], scores_of(run, run.val_set[0]), run.labels)["mAP"]
        metrics["val_mAP"] = score
    elif run.val_set is not None:
        val_loss = heldout_variational_loss(run.model, run.val_set[0], run.val_set[1], run.config, run.device)
        metrics["val_variational_loss"] = val_loss
        score = -val_loss
    return metrics, score


def _selects_best(run: Run) -> bool:
    return run.config.selection == "best" or (run.config.selection == "auto" and run.val_set is not None)


def _keep_if_best(run: Run, score: float | None) -> None:
    if _selects_best(run) and score is not None and (run.best is None or score > run.best):
        run.best = score
        run.state_dir.parent.mkdir(parents=True, exist_ok=True)
        save_model(run.model, str(run.state_dir.parent / "best.safetensors"))


def _fit(run: Run, callbacks: Sequence[Callback]) -> None:
    clock = (time.perf_counter(), run.step)
    if run.step == 0 and run.consumed == 0 and _selects_best(run):  # the starting model is a candidate
        metrics, score = _epoch_metrics(run)
        run.history.append({"epoch": 0, **metrics})
        _keep_if_best(run, score)
    while run.epoch < run.epochs:
        if run.consumed == 0:
            run.sampler.set_epoch(run.epoch)
        train_loss = _train_epoch(run, callbacks, clock)
        metrics, score = _epoch_metrics(run)
        metrics = {"epoch": run.epoch + 1, "train_loss": train_loss, **metrics}
        run.history.append(metrics)
        _keep_if_best(run, score)
        run.epoch, run.consumed, run.epoch_losses = run.epoch + 1, 0, []
        save_state(run)  # before the callbacks: an epoch they report is always durable
        elapsed = time.perf_counter() - clock[0]
        progress = Progress(run.epoch, run.epochs, run.step, run.steps_per_epoch * run.epochs,
                            train_loss, elapsed, None)
        for callback in callbacks:
            callback.on_epoch_end(progress, metrics)
        if run.epoch < run.epochs and any(callback.should_pause() for callback in callbacks):
            raise TrainingPaused(f"paused after epoch {run.epoch}, step {run.step}")  # its state is saved


def _finish(run: Run, *, base: str, corpus: Corpus, eval_corpus: Corpus | None, out_dir: Path) -> TrainResult:
    best_path = out_dir / "best.safetensors"
    if _selects_best(run) and best_path.is_file():
        load_model(run.model, str(best_path))
    if run.method == "finetune" and run.config.wise_alpha < 1:
        wise_interpolate(run.model, load_file(str(out_dir / "init.safetensors")), run.config.wise_alpha)
    thresholds, decisions = decide(run)
    metrics: dict[str, Any] = {}
    if run.eval_set is not None:
        metrics = evaluate_scores(run.eval_set[1], scores_of(run, run.eval_set[0]), run.labels, thresholds)
    metrics.update(decisions)
    meta = {
        "format": 2, "labels": run.labels, "thresholds": thresholds.tolist(), "method": run.method,
        "head": {"pooling": run.model.pooling},
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
        TrainingCancelled: a callback stopped the run (:class:`TrainingPaused` when it paused it).
        ValueError: bad model, labels or config.
    """
    return _train(base=base, corpus=corpus, config=config, method="finetune", out_dir=out_dir,
                  eval_corpus=eval_corpus, callbacks=callbacks, resume=resume)


def adapt(*, base: str, corpus: Corpus, config: TrainConfig, out_dir: str | Path,
          method: Literal["dallmi", "bce"] = "dallmi", eval_corpus: Corpus | None = None,
          callbacks: Sequence[Callback] = (), resume: bool = True) -> TrainResult:
    """Adapt a checkpoint to a partially labelled target corpus (``Y``: 1 known positive, 0 unknown),
    with DALLMi (Algorithm 1 with the label-balanced sampler) or the BCE baseline on partial labels.

    Labels with no known positive in the corpus are not adapted: no variational or MixUp term reaches
    them, BCE leaves them out, and the anchor keeps them at the source model's scores; they are listed in
    the result's ``metrics["labels_not_adapted"]``.

    Raises:
        ValueError: ``base`` is not a checkpoint with the corpus's labels, bad method/config, or thresholds
            "validation" (a partially labelled corpus has no negatives to tune them on).
        CorpusError: no label has a known positive.
        TrainingCancelled: a callback stopped the run.
    """
    if method not in ("dallmi", "bce"):
        raise ValueError(f"unknown adaptation method {method!r}; expected 'dallmi' or 'bce'")
    base_labels = checkpoint_labels(base)
    if base_labels is None:
        raise ValueError(f"{base!r} is not a DALLMi checkpoint: adapt a fine-tuned source model")
    if base_labels != corpus.labels:
        raise ValueError(f"label sets differ: base model {base_labels}, target corpus {corpus.labels}")
    if not corpus.y.any():
        raise CorpusError("the target corpus has no known positive of any label: nothing to adapt to")
    if config.thresholds == "validation":
        raise ValueError("thresholds='validation' needs labelled negatives; an adaptation uses 'pu' or 'fixed'")
    return _train(base=base, corpus=corpus, config=config, method=method, out_dir=out_dir,
                  eval_corpus=eval_corpus, callbacks=callbacks, resume=resume)
