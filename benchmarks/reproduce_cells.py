"""Cells of the reproduction benchmark: what one cell is, how cells are planned from the options, keyed by
their full config and cached on disk as one JSON file per cell (see ``benchmarks/reproduce.py``)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import sys
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from dallmi_core import Corpus, TrainConfig, read_corpus

FILES = ("source", "target_train", "target_test")
VARIANTS: dict[str, dict[str, str]] = {
    "default": {},
    "mixup_encoder": {"mixup_at": "encoder"},
    "mixup_pooled": {"mixup_at": "pooled"},
    "log_loss": {"loss_form": "log"},
    "random_sampler": {"sampler": "random"},
}
"""DALLMi variants: the paper's method and its ablations (Table 3 i and ii, Table 4)."""
ABLATIONS = ("mixup_encoder", "mixup_pooled", "log_loss", "random_sampler")
BASELINES = ("tfidf", "probe")
"""Baselines a user would pick instead (``benchmarks/reproduce_baselines.py``), at ratio 0.0 (source only),
each label ratio (source + target_train with labels hidden) and 1.0 (source + all of target_train)."""
METHODS = ("none", "bce", "dallmi", "upper", *BASELINES)
LOGREG: dict[str, Any] = {"C": 1.0, "class_weight": "balanced", "max_iter": 2000, "solver": "liblinear"}
BASELINE_CONFIG: dict[str, dict[str, Any]] = {
    "tfidf": {"ngram_range": [1, 2], "sublinear_tf": True, "min_df": "2 from 50 training rows, else 1",
              "logreg": LOGREG, "cv_folds": 5},
    "probe": {"pooling": "mask-weighted mean of the last hidden state, L2-normalised", "batch_size": 64,
              "logreg": LOGREG, "cv_folds": 5},
}
"""What a baseline cell is keyed by instead of a TrainConfig; ``reproduce_baselines`` builds its models
from these values, so a change of them changes the cells' keys."""


@dataclass(frozen=True)
class Settings:
    """The budget options shared by every cell of a run."""

    base: str = "minilm-l6"
    epochs: int = 4
    max_length: int = 128
    batch_size: int = 32
    lr: float = 5e-5
    max_source_rows: int = 0
    """0: every row of source.csv; else a fixed random subset (seed 0) of that many rows."""
    max_train_rows: int = 0
    """0: every row of target_train.csv; else a fixed random subset (seed 0)."""
    device: str = "auto"
    via: str = "core"
    """'core' (dallmi_core called directly) or 'api' (the REST service)."""
    adapt_lr: float = 0.0
    """Learning rate of the adaptation (bce, dallmi); 0: ``lr``. The source model always trains at ``lr``."""
    mixup_weight: float = 1.0
    """lambda of L_final (Algorithm 1, line 11), for dallmi cells."""
    split: str = "test"
    """'test': adapt on target_train, score target_test (the protocol). 'holdout': adapt on 80% of
    target_train and score the other 20% with its full labels, for tuning without touching target_test."""
    preset: str = "default"
    min_steps: int | None = None
    """TrainConfig.min_steps; None: the preset's (the recipe raises epochs on small corpora)."""
    """TrainConfig preset the cell starts from: 'default' (the product's recipe) or 'paper' (the paper's
    classifier and loss, ``dallmi_core.config.PAPER_PRESET``); the budget fields above override it."""

    def __post_init__(self) -> None:
        if self.adapt_lr == self.lr:  # the protocol's own lr, named: the same cells, the same keys
            object.__setattr__(self, "adapt_lr", 0.0)

    def train_config(self, seed: int, variant: str = "default") -> TrainConfig:
        """The TrainConfig of a cell: the preset with this run's budget. Selection and thresholds use the
        validation split of the training corpus only (``TrainConfig.selection``), never the test set. A
        source cell's settings have no adapt_lr (``for_method('source')``), so it trains at ``lr``."""
        return TrainConfig.from_dict({"preset": self.preset, "batch_size": self.batch_size,
                                      "lr": self.adapt_lr or self.lr, "epochs": self.epochs,
                                      "max_length": self.max_length, "seed": seed, "device": self.device,
                                      "mixup_weight": self.mixup_weight, **VARIANTS[variant],
                                      **({} if self.min_steps is None else {"min_steps": self.min_steps})})

    def for_method(self, method: str) -> Settings:
        """The settings that matter to a method: the source model and 'none' have no adaptation settings,
        bce has no lambda (so a lambda grid does not re-run them), a baseline has no training budget (tfidf
        keeps the row caps, probe also its encoder, truncation and device); the split stays."""
        if method in ("source", "none"):
            return replace(self, adapt_lr=0.0, mixup_weight=1.0, split="test" if method == "source" else self.split)
        if method in BASELINES:
            kept = ("base", "max_length", "device") if method == "probe" else ()
            return replace(Settings(**{k: getattr(self, k) for k in kept}), max_source_rows=self.max_source_rows,
                           max_train_rows=self.max_train_rows, split=self.split)
        return replace(self, mixup_weight=1.0) if method == "bce" else self

    def tag(self) -> str:
        """The settings that differ from the recipe's, e.g. ``paper lr=1e-04 lambda=0.3``; '' if none."""
        parts = ["paper" if self.preset == "paper" else "", f"lr={self.adapt_lr:.0e}" if self.adapt_lr else "",
                 f"lambda={self.mixup_weight:g}" if self.mixup_weight != 1.0 else ""]
        return " ".join(p for p in parts if p)

    def key_dict(self) -> dict[str, Any]:
        """The settings as keyed: fields added after the first published run are left out at their
        default, so the cells cached before them keep their keys."""
        return {k: v for k, v in asdict(self).items() if k not in LATER_FIELDS or v != LATER_FIELDS[k]}


LATER_FIELDS: dict[str, Any] = {"adapt_lr": 0.0, "mixup_weight": 1.0, "split": "test", "preset": "default",
                               "min_steps": None}
HOLDOUT_FRACTION = 0.2
RECIPE = 2
"""Version of the training code behind a neural cell, part of its key: raised when a change of the code (not
of a config field) changes what a cell's config produces, so stale cells are re-run, never reported as current.
1 (unkeyed): the first session's runs; 2: the probe head fitted on unit-norm embeddings and ``min_steps``
applied to fine-tuning only (docs/recipe.md, "Second session")."""


@dataclass(frozen=True)
class Cell:
    """One evaluated model: ``method`` in none|bce|dallmi|source|tfidf|probe, label ``ratio`` (1.0 = all
    labels; 0.0 = a baseline trained on the source only)."""

    corpus: str
    method: str
    ratio: float
    seed: int
    variant: str = "default"
    settings: Settings = field(default_factory=Settings)

    @property
    def name(self) -> str:
        extra = "".join(f"-{part}" for part in (self.settings.tag().replace(" ", "-").replace("=", ""),
                                                "holdout" if self.settings.split == "holdout" else "") if part)
        return f"{self.corpus}-{self.method}-{self.variant}-r{self.ratio:g}-s{self.seed}{extra}"

    @property
    def label(self) -> str:
        """The variant and the non-protocol adaptation settings, as shown in the report."""
        tag = self.settings.tag()
        return f"{self.variant}, {tag}" if tag else self.variant

    def spec(self, data_hashes: dict[str, str]) -> dict[str, Any]:
        """The full config the cell is keyed by (the data files' hashes included); a baseline's model
        config stands in for the TrainConfig it does not use."""
        cell = {k: v for k, v in asdict(self).items() if k != "settings"}
        if self.method in BASELINES:
            return {"cell": cell, "settings": self.settings.key_dict(), "baseline": BASELINE_CONFIG[self.method],
                    "data": data_hashes}
        config = self.settings.train_config(self.seed, self.variant).to_dict()
        return {"cell": cell, "settings": self.settings.key_dict(), "train_config": config, "recipe": RECIPE,
                "data": data_hashes}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Cell:
        """The cell a cached record was made by."""
        return cls(**record["cell"], settings=Settings(**record["settings"]))

    def key(self, data_hashes: dict[str, str]) -> str:
        text = json.dumps(self.spec(data_hashes), sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def source(self) -> Cell:
        """The source-model cell this cell adapts (or evaluates, for 'none')."""
        return Cell(self.corpus, "source", 1.0, self.seed, "default", self.settings.for_method("source"))


def plan_cells(corpora: list[str], *, ratios: list[float], seeds: list[int], methods: list[str],
               ablations: list[str], settings: Settings | list[Settings]) -> list[Cell]:
    """Every cell of a run, main table first then ablations, seed by seed (so early results are usable).
    ``settings``: one Settings, or a grid of them (a tuning sweep over adapt_lr and mixup_weight).

    ``methods``: none, bce, dallmi, upper (bce at r = 1.0), and the baselines tfidf and probe at r = 0.0
    (source only), every ratio and 1.0. ``ablations``: DALLMi variants at every ratio, except
    ``random_sampler`` (Table 4) which runs at r = 0.5 only.
    """
    grid = [settings] if isinstance(settings, Settings) else list(settings)
    cells: list[Cell] = []
    for corpus in corpora:
        for seed in seeds:
            for s in grid:
                if "none" in methods:
                    cells.append(Cell(corpus, "none", 1.0, seed, settings=s.for_method("none")))
                if "upper" in methods:
                    cells.append(Cell(corpus, "bce", 1.0, seed, settings=s.for_method("bce")))
                for ratio in ratios:
                    cells += [Cell(corpus, m, ratio, seed, settings=s.for_method(m))
                              for m in ("bce", "dallmi") if m in methods]
                cells += [Cell(corpus, m, ratio, seed, settings=s.for_method(m))
                          for m in BASELINES if m in methods for ratio in (0.0, *ratios, 1.0)]
    for corpus in corpora:
        for seed in seeds:
            for variant in ablations:
                var_ratios = [r for r in ratios if r == 0.5] if variant == "random_sampler" else ratios
                cells += [Cell(corpus, "dallmi", r, seed, variant, s) for s in grid for r in var_ratios]
    return list(dict.fromkeys(cells))  # a grid over lambda plans the same bce, none and baseline cells once


def data_hashes(data_dir: Path, corpus: str) -> dict[str, str]:
    """sha256 (16 hex) of each of the corpus's three CSV files."""
    return {name: hashlib.sha256((data_dir / corpus / f"{name}.csv").read_bytes()).hexdigest()[:16]
            for name in FILES}


def _subset(corpus: Corpus, max_rows: int) -> Corpus:
    if not max_rows or max_rows >= corpus.n_rows:
        return corpus
    import numpy as np

    order = np.random.default_rng(0).permutation(corpus.n_rows)
    return corpus.subset(np.sort(order[:max_rows]))


def load_corpora(data_dir: Path, corpus: str, settings: Settings) -> dict[str, Corpus]:
    """source, target_train (both capped by the row options) and target_test (always whole)."""
    out = {name: read_corpus(data_dir / corpus / f"{name}.csv") for name in FILES}
    out["source"] = _subset(out["source"], settings.max_source_rows)
    out["target_train"] = _subset(out["target_train"], settings.max_train_rows)
    return out


def hardware() -> dict[str, Any]:
    """CPU model, cores, torch threads and GPU of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "gpu": gpu,
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform()}


def _write_atomic(path: Path, record: dict[str, Any]) -> Path:
    """Write a cell's JSON through a temp file and a rename: a killed run never leaves half a cell."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True, allow_nan=True), encoding="utf-8")
    tmp.replace(path)
    return path


class CellCache:
    """One JSON file per finished cell, ``<cache>/cells/<cell name>-<key>.json``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.cells_dir = self.root / "cells"

    def path(self, cell: Cell, hashes: dict[str, str]) -> Path:
        return self.cells_dir / f"{cell.name}-{cell.key(hashes)}.json"

    def load(self, cell: Cell, hashes: dict[str, str]) -> dict[str, Any] | None:
        path = self.path(cell, hashes)
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def save(self, cell: Cell, hashes: dict[str, str], record: dict[str, Any]) -> Path:
        """Cache a finished cell's record with its full config, hardware and command."""
        full = {"key": cell.key(hashes), "name": cell.name, **cell.spec(hashes), **record,
                "hardware": hardware(), "command": "python " + shlex.join(sys.argv),
                "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        return _write_atomic(self.path(cell, hashes), full)

    def restore(self, records: list[dict[str, Any]]) -> int:
        """Put published records (a ``results.json``) back into the cache under their own name and key, so
        a new machine can report and extend an earlier run without re-running it; cells already cached are
        kept. Returns how many were restored.

        Raises:
            KeyError: a record without its ``cell``, ``settings`` or ``data``.
        """
        restored = 0
        for record in records:
            path = self.path(Cell.from_record(record), record["data"])
            if not path.is_file():
                _write_atomic(path, record)
                restored += 1
        return restored

    def records(self) -> dict[Cell, dict[str, Any]]:
        """Every cached cell with its record (to report settings beyond the ones planned)."""
        out: dict[Cell, dict[str, Any]] = {}
        for path in sorted(self.cells_dir.glob("*.json")) if self.cells_dir.is_dir() else []:
            record = json.loads(path.read_text(encoding="utf-8"))
            out[Cell.from_record(record)] = record
        return out

    def work_dir(self, cell: Cell, hashes: dict[str, str]) -> Path:
        """Scratch folder of a cell's training run (resumable state, checkpoint)."""
        return self.root / "work" / f"{cell.name}-{cell.key(hashes)}"
