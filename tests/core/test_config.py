"""Unit tests of dallmi_core.config.TrainConfig."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from dallmi_core import TrainConfig


def test_paper_preset_is_the_papers_settings() -> None:
    config = TrainConfig.from_dict({"preset": "paper"})
    # batch 64, lr 5e-5, 12 epochs, alpha = beta = 0.3, lambda = 1, 128 tokens (paper section 4)
    assert (config.batch_size, config.lr, config.epochs, config.alpha, config.beta, config.mixup_weight,
            config.max_length) == (64, 5e-5, 12, 0.3, 0.3, 1.0, 128)
    # and its classifier and loss: [CLS] pooler, random head, MixUp with gradient, no anchor, 0.5 thresholds
    assert (config.pooling, config.head_init, config.mixup_grad, config.anchor_weight, config.min_steps,
            config.thresholds, config.selection) == ("cls", "random", "full", 0.0, 0, "fixed", "last")
    assert (config.loss_form, config.mixup_at, config.sampler) == ("norm", "word", "balanced")
    # keys beside the preset win; unknown presets are named
    assert TrainConfig.from_dict({"preset": "paper", "epochs": 3}).epochs == 3
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        TrainConfig.from_dict({"preset": "nope"})
    with pytest.raises(ValueError, match="unknown preset"):
        TrainConfig.from_dict({"preset": ["paper"]})


def test_defaults_are_the_recipe() -> None:
    config = TrainConfig()
    assert (config.pooling, config.head_init, config.mixup_grad, config.thresholds) == (
        "mean", "probe", "prediction", "auto")
    assert config.min_steps > 0 and config.anchor_weight > 0 and config.val_fraction is None
    assert (config.loss_form, config.mixup_at, config.sampler, config.alpha, config.beta) == (
        "norm", "word", "balanced", 0.3, 0.3)
    for bad in ({"min_steps": -1}, {"anchor_weight": -0.1}, {"mixup_grad": "target"}, {"thresholds": "oracle"},
                {"pooling": "max"}, {"head_init": "zeros"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrainConfig(**bad)


def test_to_dict_from_dict_round_trip_through_json() -> None:
    config = TrainConfig(batch_size=8, lr=1e-4, epochs=2, max_length=64, alpha=0.5, beta=0.7, mixup_weight=0.0,
                         loss_form="log", mixup_at="pooled", sampler="random", grad_accum=3, seed=11,
                         device="cpu", precision="fp32", selection="best", val_fraction=0.2,
                         checkpoint_every_steps=5, extra={"note": "x", "n": [1, 2]})
    values = config.to_dict()
    assert values["batch_size"] == 8 and values["extra"] == {"note": "x", "n": [1, 2]}
    assert set(values) == {f.name for f in dataclasses.fields(TrainConfig)}
    again = TrainConfig.from_dict(json.loads(json.dumps(values)))
    assert again == config
    assert TrainConfig.from_dict({}) == TrainConfig()
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()


def test_to_dict_is_a_copy() -> None:
    config = TrainConfig(extra={"a": 1})
    values = config.to_dict()
    values["extra"]["a"] = 2
    assert config.extra == {"a": 1}


def test_unknown_key_is_named() -> None:
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig.from_dict({"learning_rate": 1e-3, "epochs": 1})
    with pytest.raises(ValueError) as info:
        TrainConfig.from_dict({"zeta": 1, "alpha_": 2})
    assert "zeta" in str(info.value) and "alpha_" in str(info.value)


BAD_VALUES = [
    ("batch_size", 0),
    ("batch_size", -4),
    ("batch_size", 2.5),
    ("batch_size", True),
    ("epochs", 0),
    ("max_length", 4),
    ("max_length", 1024),
    ("grad_accum", 0),
    ("eval_batch_size", 0),
    ("lr", 0.0),
    ("lr", -1e-5),
    ("lr", math.nan),
    ("alpha", 0.0),
    ("beta", -0.3),
    ("mixup_weight", -1.0),
    ("weight_decay", -0.1),
    ("max_grad_norm", -1.0),
    ("warmup_ratio", 1.0),
    ("warmup_ratio", -0.1),
    ("val_fraction", 1.0),
    ("val_fraction", -0.5),
    ("checkpoint_every_steps", -1),
    ("loss_form", "l2"),
    ("mixup_at", "cls"),
    ("sampler", "weighted"),
    ("precision", "fp8"),
    ("selection", "first"),
    ("device", "tpu"),
]


@pytest.mark.parametrize(("key", "value"), BAD_VALUES)
def test_bad_value_raises_naming_the_key(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=key):
        TrainConfig.from_dict({key: value})
    with pytest.raises(ValueError, match=key):
        TrainConfig(**{key: value})  # type: ignore[arg-type]


def test_mixed_precision_on_cpu_is_refused() -> None:
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(device="cpu", precision="bf16")
    TrainConfig(device="cpu", precision="fp32")
    TrainConfig(device="cuda:1", precision="bf16")


@pytest.mark.parametrize(("key", "value"), [
    ("mixup_weight", 0.0), ("warmup_ratio", 0.0), ("val_fraction", 0.0), ("max_grad_norm", 0.0),
    ("max_length", 8), ("max_length", 512), ("batch_size", 1), ("device", "cuda"), ("device", "cuda:0"),
    ("checkpoint_every_steps", 0),
])
def test_boundary_values_are_accepted(key: str, value: object) -> None:
    assert getattr(TrainConfig.from_dict({key: value}), key) == value
