"""WiSE-FT (config ``wise_alpha``): the stored source model is the weight-space mix of the fine-tuned weights
and the weights fine-tuning started from (Wortsman et al. 2022, Eq. 1)."""
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dallmi_core import Corpus, TrainConfig, adapt, finetune, make_tiny_bert
from dallmi_core.modeling import load_classifier
from dallmi_core.probe import wise_interpolate


def _corpus(n: int = 24) -> Corpus:
    rng = np.random.default_rng(0)
    y = (rng.random((n, 3)) < 0.4).astype(np.uint8)
    y[0] = 1
    return Corpus(ids=[str(i) for i in range(n)], texts=[f"text {i} about {'abc'[i % 3]}" for i in range(n)],
                  labels=["A", "B", "C"], y=y)


def test_wise_interpolate_is_the_linear_mix(tiny_bert):
    model, _ = load_classifier(tiny_bert, ["A", "B"], seed=0)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    tuned = {k: v.clone() for k, v in model.state_dict().items()}
    wise_interpolate(model, start, 0.25)
    name = "head.weight" if "head.weight" in tuned else next(k for k, v in tuned.items() if v.is_floating_point())
    assert torch.allclose(model.state_dict()[name], 0.75 * start[name] + 0.25 * tuned[name], atol=1e-6)
    int_keys = [k for k, v in tuned.items() if not v.is_floating_point()]
    assert all(torch.equal(model.state_dict()[k], tuned[k]) for k in int_keys)


def test_wise_interpolate_rejects_bad_alpha_and_missing_weights(tiny_bert):
    model, _ = load_classifier(tiny_bert, ["A", "B"], seed=0)
    start = dict(model.state_dict())
    with pytest.raises(ValueError, match="alpha"):
        wise_interpolate(model, start, 0.0)
    start.pop(next(k for k, v in start.items() if v.is_floating_point()))
    with pytest.raises(ValueError, match="no tensor"):
        wise_interpolate(model, start, 0.5)


def test_finetune_stores_the_mix_of_start_and_fine_tuned_weights(tmp_path):
    base = str(make_tiny_bert(tmp_path / "tiny", hidden=16, layers=1))
    cfg = dict(batch_size=4, epochs=2, min_steps=0, max_length=16, device="cpu", val_fraction=0.25,
               selection="last")
    corpus = _corpus()
    full = finetune(base=base, corpus=corpus, config=TrainConfig(**cfg), out_dir=tmp_path / "full")
    half = finetune(base=base, corpus=corpus, config=TrainConfig(**cfg, wise_alpha=0.5), out_dir=tmp_path / "half")
    start = load_file(str(tmp_path / "half" / "init.safetensors"))
    tuned = load_classifier(str(full.checkpoint_dir), corpus.labels)[0].state_dict()
    mixed = load_classifier(str(half.checkpoint_dir), corpus.labels)[0].state_dict()
    moved = [k for k in tuned if tuned[k].is_floating_point() and not torch.allclose(tuned[k], start[k])]
    assert moved, "fine-tuning changed no weight"
    for k in moved:
        torch.testing.assert_close(mixed[k], 0.5 * start[k] + 0.5 * tuned[k], atol=1e-5, rtol=1e-4)
    assert not (tmp_path / "full" / "init.safetensors").exists()


def test_wise_alpha_out_of_range_is_refused():
    with pytest.raises(ValueError, match="wise_alpha"):
        TrainConfig(wise_alpha=0.0)
    with pytest.raises(ValueError, match="wise_alpha"):
        TrainConfig(wise_alpha=1.5)


def test_min_steps_raises_the_epochs_of_fine_tuning_only(tmp_path):
    """A small corpus gets more fine-tuning epochs for its new head; an adaptation runs ``epochs`` as given."""
    base = str(make_tiny_bert(tmp_path / "tiny", hidden=16, layers=1))
    corpus = _corpus(16)
    cfg = dict(batch_size=8, epochs=1, min_steps=6, max_length=16, device="cpu", val_fraction=0.0)
    source = finetune(base=base, corpus=corpus, config=TrainConfig(**cfg), out_dir=tmp_path / "src")
    assert [h["epoch"] for h in source.history if "train_loss" in h] == [1, 2, 3]  # 2 steps an epoch, 6 steps
    adapted = adapt(base=str(source.checkpoint_dir), corpus=corpus, config=TrainConfig(**cfg), out_dir=tmp_path / "a")
    assert [h["epoch"] for h in adapted.history if "train_loss" in h] == [1]
