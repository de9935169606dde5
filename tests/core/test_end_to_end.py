"""End to end on a tiny random BERT over a slice of ../shared/data/pubmed: finetune, then adapt with
DALLMi; checkpoints round-trip; stop-and-resume gives the same weights as an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dallmi_core import (
    Callback,
    CheckpointIntegrityError,
    Predictor,
    TrainConfig,
    TrainingCancelled,
    TrainingPaused,
    adapt,
    checkpoint_sha256,
    finetune,
    hide_labels,
    load_checkpoint_meta,
    verify_checkpoint,
)

CONFIG = dict(batch_size=16, epochs=2, max_length=48, seed=3, eval_batch_size=32, min_steps=0)


class StopAfter(Callback):
    """Cancels once ``steps`` optimiser steps have run; records every step and epoch seen."""

    def __init__(self, steps: int | None = None) -> None:
        self.steps, self.seen, self.epochs = steps, [], []

    def on_step(self, progress) -> None:
        self.seen.append(progress.step)

    def on_epoch_end(self, progress, metrics) -> None:
        self.epochs.append(metrics)

    def should_stop(self) -> bool:
        return self.steps is not None and len(self.seen) >= self.steps


@pytest.fixture(scope="module")
def source_run(tiny_bert, pubmed, tmp_path_factory):
    out = tmp_path_factory.mktemp("source")
    cb = StopAfter()
    result = finetune(base=tiny_bert, corpus=pubmed["source"].subset(range(64)), config=TrainConfig(**CONFIG),
                      out_dir=out, eval_corpus=pubmed["target_test"].subset(range(40)), callbacks=[cb])
    return result, cb


def _weights(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint's encoder and head, keyed as the model's state dict (``best.safetensors``'s keys)."""
    encoder = {f"encoder.{k}": v for k, v in load_file(str(path / "model.safetensors")).items()}
    head = {f"classifier.{k}": v for k, v in load_file(str(path / "classifier.safetensors")).items()}
    return {**encoder, **head}


def test_finetune_writes_a_complete_checkpoint(source_run, pubmed):
    result, cb = source_run
    meta = load_checkpoint_meta(result.checkpoint_dir)
    assert meta["labels"] == pubmed["source"].labels
    assert len(meta["thresholds"]) == 14 and meta["method"] == "finetune"
    assert meta["corpus_hash"] == pubmed["source"].subset(range(64)).content_hash
    assert [h["epoch"] for h in result.history] == [1, 2] and "mAP" in result.history[0]
    assert cb.seen == list(range(1, len(cb.seen) + 1)) and len(cb.epochs) == 2
    assert 0.0 <= result.metrics["mAP"] <= 1.0
    assert not any(p.name.endswith(".tmp") for p in result.checkpoint_dir.parent.iterdir())


def test_checkpoint_round_trips_through_predictor(source_run, pubmed):
    result, _ = source_run
    predictor = Predictor.load(result.checkpoint_dir, device="cpu")
    texts = pubmed["target_test"].texts[:5]
    scores = predictor.predict_scores(texts)
    assert scores.shape == (5, 14) and scores.dtype == np.float32
    assert np.all((scores >= 0) & (scores <= 1))
    np.testing.assert_allclose(predictor.predict_scores(texts), scores, rtol=1e-6)
    np.testing.assert_allclose(predictor.thresholds, load_checkpoint_meta(result.checkpoint_dir)["thresholds"])
    with pytest.raises(ValueError, match="empty text"):
        predictor.predict_scores(["fine", "  "])


def test_checksums_detect_a_changed_file(source_run, tmp_path):
    result, _ = source_run
    sums = checkpoint_sha256(result.checkpoint_dir)
    assert "model.safetensors" in sums and "dallmi.json" in sums
    verify_checkpoint(result.checkpoint_dir, sums)
    bad = dict(sums, **{"model.safetensors": "0" * 64})
    with pytest.raises(CheckpointIntegrityError, match="altered model.safetensors"):
        verify_checkpoint(result.checkpoint_dir, bad)


def _adapt(base, corpus, out, callbacks=(), **overrides):
    return adapt(base=str(base), corpus=corpus, config=TrainConfig(**{**CONFIG, **overrides}), out_dir=out,
                 method="dallmi", callbacks=list(callbacks))


def test_adapt_then_stop_and_resume_equals_uninterrupted(source_run, pubmed, tmp_path):
    base = source_run[0].checkpoint_dir
    target = hide_labels(pubmed["target_train"].subset(range(80)), 0.5, seed=0)
    full = _adapt(base, target, tmp_path / "full")
    meta = load_checkpoint_meta(full.checkpoint_dir)
    assert meta["method"] == "dallmi" and meta["parent"] == str(base)
    counter = StopAfter()
    _adapt(base, target, tmp_path / "count", [counter])
    steps_per_epoch = len(counter.seen) // 2
    stopper = StopAfter(steps_per_epoch + 1)  # cancel one step into epoch 2
    with pytest.raises(TrainingCancelled):
        _adapt(base, target, tmp_path / "resumed", [stopper])
    assert not (tmp_path / "resumed" / "checkpoint").exists()  # no half-written checkpoint
    resumed_cb = StopAfter()
    resumed = _adapt(base, target, tmp_path / "resumed", [resumed_cb])
    assert resumed_cb.seen[0] == steps_per_epoch + 1  # continued from the epoch-1 state
    a, b = _weights(full.checkpoint_dir), _weights(resumed.checkpoint_dir)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    parent = _weights(base)
    assert any(not torch.equal(a[name], parent[name]) for name in a)  # adaptation changed weights
    assert resumed.history == full.history


class PauseAfter(StopAfter):
    """Pauses (a warm shutdown) once ``steps`` optimiser steps have run."""

    def should_stop(self) -> bool:
        return False

    def should_pause(self) -> bool:
        return self.steps is not None and len(self.seen) >= self.steps


def test_a_paused_adaptation_saves_the_step_it_stopped_at_and_resumes_bit_identical(source_run, pubmed, tmp_path):
    base = source_run[0].checkpoint_dir
    target = hide_labels(pubmed["target_train"].subset(range(80)), 0.5, seed=0)
    full = _adapt(base, target, tmp_path / "full")
    counter = StopAfter()
    _adapt(base, target, tmp_path / "count", [counter])
    steps_per_epoch = len(counter.seen) // 2
    pause_at = steps_per_epoch + 2  # two steps into epoch 2: no epoch-end state covers them
    with pytest.raises(TrainingPaused):
        _adapt(base, target, tmp_path / "paused", [PauseAfter(pause_at)])
    resumed_cb = StopAfter()
    resumed = _adapt(base, target, tmp_path / "paused", [resumed_cb])
    assert resumed_cb.seen[0] == pause_at + 1  # not one step of work redone
    a, b = _weights(full.checkpoint_dir), _weights(resumed.checkpoint_dir)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    assert resumed.history == full.history  # the epoch's train_loss counts the batches before the pause


def test_adapt_refuses_a_label_mismatch_and_a_corpus_without_positives(source_run, pubmed, tmp_path):
    base = source_run[0].checkpoint_dir
    target = pubmed["target_train"].subset(range(40))
    other = target.subset(range(40))
    other.labels = [*other.labels[:-1], "not-a-label"]
    with pytest.raises(ValueError, match="label sets differ"):
        _adapt(base, other, tmp_path / "x")
    no_pos = target.subset(range(40))
    no_pos.y[:] = 0
    with pytest.raises(ValueError, match="no known positive of any label"):
        _adapt(base, no_pos, tmp_path / "y")
    with pytest.raises(ValueError, match="needs labelled negatives"):
        _adapt(base, target, tmp_path / "z", thresholds="validation")


@pytest.mark.parametrize("method", ["dallmi", "bce"])
def test_a_label_without_known_positive_is_not_adapted(source_run, pubmed, tmp_path, method):
    """No PU, MixUp or BCE term reaches a label without a known positive: without the anchor and weight
    decay its head row stays exactly the source model's, while the other rows move."""
    base = source_run[0].checkpoint_dir
    target = hide_labels(pubmed["target_train"].subset(range(48)), 0.5, seed=0)
    target.y[:, 0] = 0
    result = adapt(base=str(base), corpus=target, out_dir=tmp_path / method, method=method,
                   config=TrainConfig(**{**CONFIG, "epochs": 1, "anchor_weight": 0.0, "weight_decay": 0.0}))
    assert result.metrics["labels_not_adapted"] == [target.labels[0]]
    before, after = _weights(base), _weights(result.checkpoint_dir)
    torch.testing.assert_close(after["classifier.weight"][0], before["classifier.weight"][0], rtol=0, atol=0)
    assert not torch.equal(after["classifier.weight"][1:], before["classifier.weight"][1:])


def test_vpu_model_selection_without_labelled_data(source_run, pubmed, tmp_path):
    base = source_run[0].checkpoint_dir
    target = hide_labels(pubmed["target_train"].subset(range(100)), 0.5, seed=1)
    result = _adapt(base, target, tmp_path / "vpu", epochs=3, val_fraction=0.25, selection="best")
    losses = [h["val_variational_loss"] for h in result.history]
    assert [h["epoch"] for h in result.history] == [0, 1, 2, 3]  # the source model is a candidate too
    assert all(np.isfinite(losses))
    best = load_file(str(tmp_path / "vpu" / "best.safetensors"))
    chosen = _weights(result.checkpoint_dir)
    for name in best:
        torch.testing.assert_close(chosen[name], best[name], rtol=0, atol=0)
    assert "mAP" not in result.metrics  # no labelled evaluation set: no figures
    assert result.metrics["threshold_rule"].startswith("pu") and isinstance(result.metrics["warnings"], list)
    thresholds = load_checkpoint_meta(result.checkpoint_dir)["thresholds"]
    assert len(thresholds) == 14 and all(0 <= t <= 1 for t in thresholds)
