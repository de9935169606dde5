"""Checkpoints (a model version's directory) and the resumable training state.

A checkpoint directory holds safetensors weights, the config, the tokenizer and ``dallmi.json`` (labels,
thresholds, training config, corpus hashes, metrics, parent checkpoint). Nothing here unpickles: weights
are safetensors and the optimiser state is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .modeling import META_FILE


class CheckpointIntegrityError(RuntimeError):
    """A checkpoint's files do not match their recorded sha256."""


def save_checkpoint(path: str | Path, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                    meta: dict[str, Any]) -> Path:
    """Write a checkpoint directory atomically: into ``<path>.tmp`` first, then renamed to ``path``, so a
    directory at ``path`` is always complete. An existing ``path`` is replaced.

    Args:
        meta: JSON-serialisable; must hold ``labels`` (list of L names) and ``thresholds`` (L floats).

    Raises:
        ValueError: ``meta`` lacks labels/thresholds or their lengths differ.
    """
    labels, thresholds = meta.get("labels"), meta.get("thresholds")
    if labels is None or thresholds is None or len(labels) != len(thresholds):
        raise ValueError("checkpoint meta needs 'labels' and one threshold per label")
    final = Path(path)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def load_checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """The ``dallmi.json`` of a checkpoint: labels, thresholds, config, method, base, corpus hashes,
    metrics, history, parent.

    Raises:
        FileNotFoundError: ``path`` is not a DALLMi checkpoint.
    """
    meta_path = Path(path) / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{path} is not a DALLMi checkpoint (no {META_FILE})")
    return json.loads(meta_path.read_text(encoding="utf-8"))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_sha256(path: str | Path) -> dict[str, str]:
    """sha256 hex of every file of a checkpoint directory, keyed by POSIX path relative to it."""
    root = Path(path)
    return {p.relative_to(root).as_posix(): _file_sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def verify_checkpoint(path: str | Path, expected: dict[str, str]) -> None:
    """Check a checkpoint against recorded checksums.

    Raises:
        CheckpointIntegrityError: naming missing, extra or altered files.
    """
    actual = checkpoint_sha256(path)
    problems = [f"missing {name}" for name in sorted(set(expected) - set(actual))]
    problems += [f"unexpected {name}" for name in sorted(set(actual) - set(expected))]
    problems += [f"altered {name}" for name in sorted(set(actual) & set(expected))
                 if actual[name] != expected[name]]
    if problems:
        raise CheckpointIntegrityError(f"checkpoint {path} fails its checksums: {'; '.join(problems)}")


def save_train_state(path: Path, *, model: torch.nn.Module, tensors: dict[str, Any],
                     info: dict[str, Any]) -> None:
    """Write the resumable training state atomically: model weights (safetensors), optimiser, scheduler
    and RNG states (``tensors``, read back with ``weights_only=True``) and JSON ``info`` (epoch, step,
    sampler and MixUp generator states, history)."""
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(model, str(tmp / "model.safetensors"))
    torch.save(tensors, tmp / "trainer.pt")
    (tmp / "state.json").write_text(json.dumps(info), encoding="utf-8")
    old = path.with_name(path.name + ".old")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def load_train_state(path: Path, model: torch.nn.Module) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Load a state written by :func:`save_train_state` into ``model``; returns ``(tensors, info)``, or
    None when there is no complete state at ``path``."""
    if not (path / "state.json").is_file():
        return None
    load_model(model, str(path / "model.safetensors"))
    tensors = torch.load(path / "trainer.pt", weights_only=True, map_location="cpu")
    info = json.loads((path / "state.json").read_text(encoding="utf-8"))
    return tensors, info


def rng_state(generator: np.random.Generator) -> dict[str, Any]:
    """JSON-serialisable state of a NumPy generator."""
    return dict(generator.bit_generator.state)


def restore_rng(state: dict[str, Any]) -> np.random.Generator:
    """A NumPy generator at the saved ``state``."""
    generator = np.random.default_rng()
    generator.bit_generator.state = state
    return generator
