"""Unit tests of dallmi_core.modeling: model resolution, tokenisation with dynamic padding, classifier heads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from dallmi_core import BUILTIN_MINILM, encode, load_classifier, resolve_base_model, save_checkpoint
from dallmi_core.modeling import META_FILE, checkpoint_labels, is_checkpoint, resolve_device


def test_resolve_base_model(tmp_path: Path) -> None:
    builtin = Path(resolve_base_model(BUILTIN_MINILM))
    assert (builtin / "config.json").is_file() and (builtin / "model.safetensors").is_file()
    assert resolve_base_model(str(tmp_path)) == str(tmp_path.resolve())
    assert resolve_base_model("bert-base-uncased") == "bert-base-uncased"  # a hub name, untouched


def test_encode_and_dynamic_padding() -> None:
    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model(BUILTIN_MINILM))
    texts = ["short", "a somewhat longer text with more words in it", "two words",
             " ".join(["word"] * 50)]
    encoded = encode(tokenizer, texts, max_length=16)
    assert encoded.input_ids.dtype == torch.int64 and encoded.lengths.dtype == torch.int64
    assert encoded.input_ids.shape == (4, 16)  # padded to the longest row, truncated at 16
    for i, text in enumerate(texts):
        ids = tokenizer(text, truncation=True, max_length=16)["input_ids"]
        assert int(encoded.lengths[i]) == len(ids)
        assert encoded.input_ids[i, : len(ids)].tolist() == ids
    idx = torch.tensor([2, 0])
    ids, mask = encoded.batch(idx, "cpu")
    width = int(encoded.lengths[idx].max())
    assert ids.shape == mask.shape == (2, width)
    assert mask.sum(dim=1).tolist() == encoded.lengths[idx].tolist()
    assert torch.equal(ids, encoded.input_ids[idx, :width])
    assert mask.dtype == torch.int64


def _head(model: torch.nn.Module) -> torch.Tensor:
    return model.classifier.weight.detach().clone()


def _meta(labels: list[str], **extra: object) -> dict:
    return {"labels": labels, "thresholds": [0.5] * len(labels), **extra}


def test_load_classifier_heads(tiny_bert: str, tmp_path: Path) -> None:
    model, tokenizer = load_classifier(tiny_bert, ["A", "B"], seed=0)
    assert model.num_labels == 2 and model.pooling == "mean"
    again, _ = load_classifier(tiny_bert, ["A", "B"], seed=0)
    other, _ = load_classifier(tiny_bert, ["A", "B"], seed=1)
    assert torch.equal(_head(model), _head(again)), "the new head is seeded"
    assert not torch.equal(_head(model), _head(other))

    with torch.no_grad():
        model.classifier.weight.add_(1.0)  # a "fine-tuned" head
    ckpt = save_checkpoint(tmp_path / "ckpt", model, tokenizer, _meta(["A", "B"], head={"pooling": "mean"}))
    assert is_checkpoint(ckpt) and checkpoint_labels(ckpt) == ["A", "B"]
    assert not is_checkpoint(tiny_bert) and checkpoint_labels(tiny_bert) is None
    same, _ = load_classifier(str(ckpt), ["A", "B"], seed=5, pooling="cls")
    assert torch.equal(_head(same), _head(model)), "same labels: the checkpoint's head is kept"
    assert same.pooling == "mean", "a checkpoint keeps its own pooling"
    relabelled, _ = load_classifier(str(ckpt), ["X", "Y", "Z"], seed=5)
    assert relabelled.classifier.weight.shape == (3, model.config.hidden_size)
    # the encoder weights come from the checkpoint either way
    assert torch.equal(relabelled.encoder.embeddings.word_embeddings.weight,
                       model.encoder.embeddings.word_embeddings.weight)


def test_mean_pooling_ignores_padding(tiny_bert: str) -> None:
    model, _ = load_classifier(tiny_bert, ["A"], seed=0)
    hidden = torch.randn(2, 3, model.config.hidden_size)  # (B, T, H)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    pooled = model.pool(hidden, mask)
    assert torch.allclose(pooled[0], hidden[0, :2].mean(0)) and torch.allclose(pooled[1], hidden[1].mean(0))
    cls, _ = load_classifier(tiny_bert, ["A"], seed=0, pooling="cls")
    assert torch.allclose(cls.pool(hidden, mask), cls.encoder.pooler(hidden))
    with pytest.raises(ValueError, match="pooling"):
        load_classifier(tiny_bert, ["A"], pooling="max")


def test_format_1_checkpoints_still_load(tiny_bert: str, tmp_path: Path) -> None:
    """A checkpoint written before pooled heads (BertForSequenceClassification) loads with its [CLS] head."""
    from transformers import AutoModelForSequenceClassification

    legacy = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    ckpt = save_checkpoint(tmp_path / "old", legacy, tokenizer, _meta(["A", "B"], format=1))
    model, _ = load_classifier(str(ckpt), ["A", "B"])
    assert model.pooling == "cls"
    assert torch.equal(_head(model), legacy.classifier.weight.detach())
    ids = torch.tensor([[101, 2023, 102]])
    legacy.eval(), model.eval()
    assert torch.allclose(model(input_ids=ids).logits, legacy(input_ids=ids).logits, atol=1e-6)


def test_load_classifier_unknown_model_raises_value_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="cannot load model"):
        load_classifier(str(tmp_path / "empty"), ["A"])


def test_checkpoint_labels_reads_meta(tmp_path: Path) -> None:
    (tmp_path / META_FILE).write_text(json.dumps({"labels": ["q", "r"], "thresholds": [0.5, 0.5]}), encoding="utf-8")
    assert checkpoint_labels(tmp_path) == ["q", "r"]


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda:0")
