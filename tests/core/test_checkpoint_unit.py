"""Unit tests of dallmi_core.checkpoint without training: checksums, meta, resumable state, RNG state."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

from dallmi_core import (
    CheckpointIntegrityError,
    checkpoint_sha256,
    load_checkpoint_meta,
    save_checkpoint,
    verify_checkpoint,
)
from dallmi_core.checkpoint import load_train_state, restore_rng, rng_state, save_train_state
from dallmi_core.modeling import META_FILE


def _tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.json").write_text('{"x": 1}', encoding="utf-8")
    (root / "sub" / "b.bin").write_bytes(b"\x00\x01\x02")
    return root


def test_checkpoint_sha256_hashes_every_file_by_posix_path(tmp_path: Path) -> None:
    root = _tree(tmp_path / "ckpt")
    assert checkpoint_sha256(root) == {
        "a.json": hashlib.sha256(b'{"x": 1}').hexdigest(),
        "sub/b.bin": hashlib.sha256(b"\x00\x01\x02").hexdigest(),
    }


def test_verify_checkpoint_names_missing_extra_and_altered_files(tmp_path: Path) -> None:
    root = _tree(tmp_path / "ckpt")
    expected = checkpoint_sha256(root)
    verify_checkpoint(root, expected)  # intact: no error
    (root / "a.json").write_text('{"x": 2}', encoding="utf-8")
    (root / "sub" / "b.bin").unlink()
    (root / "new.txt").write_text("surprise", encoding="utf-8")
    with pytest.raises(CheckpointIntegrityError) as info:
        verify_checkpoint(root, expected)
    message = str(info.value)
    assert "altered a.json" in message
    assert "missing sub/b.bin" in message
    assert "unexpected new.txt" in message


def test_load_checkpoint_meta(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a DALLMi checkpoint"):
        load_checkpoint_meta(tmp_path)
    meta = {"labels": ["A", "B"], "thresholds": [0.5, 0.25]}
    (tmp_path / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    assert load_checkpoint_meta(tmp_path) == meta


def test_rng_state_round_trips_through_json() -> None:
    rng = np.random.default_rng(42)
    rng.random(5)
    state = json.loads(json.dumps(rng_state(rng)))
    expected = rng.random(10)
    restored = restore_rng(state)
    np.testing.assert_array_equal(restored.random(10), expected)


def _tiny(seed: int) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    return BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1,
                                                    num_attention_heads=2, intermediate_size=16, num_labels=2))


def test_train_state_round_trip_and_replacement(tmp_path: Path) -> None:
    path = tmp_path / "state"
    assert load_train_state(path, _tiny(0)) is None
    model = _tiny(1)
    tensors = {"optimizer": {"step": torch.tensor(3.0)}, "torch_rng": torch.get_rng_state()}
    save_train_state(path, model=model, tensors=tensors, info={"epoch": 2, "step": 7})
    other = _tiny(2)
    loaded = load_train_state(path, other)
    assert loaded is not None
    got_tensors, info = loaded
    assert info == {"epoch": 2, "step": 7}
    assert torch.equal(got_tensors["optimizer"]["step"], torch.tensor(3.0))
    assert torch.equal(got_tensors["torch_rng"], tensors["torch_rng"])
    for (name, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    # a second save replaces the first and leaves no temporary directories behind
    save_train_state(path, model=model, tensors=tensors, info={"epoch": 3, "step": 9})
    assert load_train_state(path, _tiny(0))[1] == {"epoch": 3, "step": 9}  # type: ignore[index]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]


def test_save_checkpoint_requires_one_threshold_per_label(tmp_path: Path) -> None:
    for meta in ({}, {"labels": ["A"]}, {"thresholds": [0.5]}, {"labels": ["A", "B"], "thresholds": [0.5]}):
        with pytest.raises(ValueError, match="one threshold per label"):
            save_checkpoint(tmp_path / "ckpt", None, None, meta)  # type: ignore[arg-type]
    assert not (tmp_path / "ckpt").exists()


def _tokenizer(tmp_path: Path) -> BertTokenizer:
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world"]) + "\n",
                     encoding="utf-8")
    return BertTokenizer(str(vocab))


def test_save_checkpoint_writes_a_complete_directory_and_replaces(tmp_path: Path) -> None:
    model, tokenizer = _tiny(0), _tokenizer(tmp_path)
    path = tmp_path / "ckpt"
    meta = {"labels": ["A", "B"], "thresholds": [0.5, 0.3], "note": "first"}
    assert save_checkpoint(path, model, tokenizer, meta) == path
    assert load_checkpoint_meta(path) == meta
    assert (path / "model.safetensors").is_file() and (path / "config.json").is_file()
    assert not list(path.rglob("*.bin")), "weights must be safetensors only"
    sums = checkpoint_sha256(path)
    verify_checkpoint(path, sums)
    loaded = BertForSequenceClassification.from_pretrained(path, use_safetensors=True)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    save_checkpoint(path, model, tokenizer, {**meta, "note": "second"})
    assert load_checkpoint_meta(path)["note"] == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "vocab.txt"]  # no ckpt.tmp left
