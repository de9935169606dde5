"""Running cells by calling dallmi_core directly: the source model once per (corpus, seed, settings), then
'none' (the source checkpoint as is), 'bce' and 'dallmi' adaptations scored on target_test."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from reproduce_cells import HOLDOUT_FRACTION, Cell, CellCache

from dallmi_core import (
    Callback,
    Corpus,
    Predictor,
    Progress,
    adapt,
    evaluate_scores,
    finetune,
    hide_labels,
    split_holdout,
)

HEADLINE = ("mAP", "micro_AP", "macro_F1", "micro_F1", "roc_auc", "labels_without_positive", "n_rows")


class Timer(Callback):
    """Splits a run's time into training and per-epoch evaluation (``Progress.elapsed_s`` is since fit)."""

    def __init__(self) -> None:
        self.last_step_s = 0.0
        self.eval_s: list[float] = []
        self.fit_s = 0.0

    def on_step(self, progress: Progress) -> None:
        self.last_step_s = progress.elapsed_s

    def on_epoch_end(self, progress: Progress, metrics: dict[str, Any]) -> None:
        self.eval_s.append(progress.elapsed_s - self.last_step_s)
        self.fit_s = progress.elapsed_s

    @property
    def train_s(self) -> float:
        return self.fit_s - sum(self.eval_s)


def score_checkpoint(checkpoint: Path, test: Corpus, device: str, known: Corpus | None = None) -> dict[str, Any]:
    """Test metrics of a checkpoint; macro F1 at its stored thresholds (chosen on the source validation split
    or from PU data, never on test labels) and, as ``macro_F1_at_0.5``, at 0.5.

    ``known``: the same rows with labels hidden; adds ``PU_mAP``, the mAP against the known positives only
    (what a user with partial labels could measure on a held-out split).
    """
    predictor = Predictor.load(checkpoint, device=device)
    scores = predictor.predict_scores(test.texts, batch_size=64)  # (N, L)
    report = evaluate_scores(test.y, scores, test.labels, predictor.thresholds)
    metrics = {k: report[k] for k in HEADLINE}
    metrics["macro_F1_at_0.5"] = evaluate_scores(test.y, scores, test.labels)["macro_F1"]
    if known is not None:
        metrics["PU_mAP"] = evaluate_scores(known.y, scores, known.labels)["mAP"]
    return metrics


def target_sides(cell: Cell, corpora: dict[str, Corpus]) -> tuple[Corpus, Corpus, Corpus | None]:
    """(adaptation corpus with labels hidden, evaluation corpus, evaluation corpus with labels hidden or None).

    ``split='test'``: target_train and target_test (the protocol). ``split='holdout'``: target_train split
    by ``split_holdout`` (20%, the cell's seed) so that tuning never scores target_test.
    """
    if cell.settings.split == "holdout":
        train, held = split_holdout(corpora["target_train"], HOLDOUT_FRACTION, cell.seed)
        return hide_labels(train, cell.ratio, cell.seed), held, hide_labels(held, cell.ratio, cell.seed)
    return hide_labels(corpora["target_train"], cell.ratio, cell.seed), corpora["target_test"], None


def ensure_source(cell: Cell, cache: CellCache, hashes: dict[str, str], corpora: dict[str, Corpus],
                  log: Any = print) -> Path:
    """The source checkpoint of ``cell`` (fine-tuned on source.csv when not on disk yet)."""
    source = cell.source()
    out_dir = cache.root / "sources" / f"{source.name}-{source.key(hashes)}"
    checkpoint = out_dir / "checkpoint"
    if cache.load(source, hashes) is not None and checkpoint.is_dir():
        return checkpoint
    log(f"[source] fine-tuning {source.name} on {corpora['source'].n_rows} rows")
    timer, start = Timer(), time.perf_counter()
    result = finetune(base=cell.settings.base, corpus=corpora["source"], out_dir=out_dir, callbacks=[timer],
                      config=source.settings.train_config(source.seed))
    wall = time.perf_counter() - start
    cache.save(source, hashes, {"metrics": {}, "history": result.history, "wall_s": wall,
                                "train_s": timer.train_s, "rows": {"source": corpora["source"].n_rows}})
    shutil.rmtree(out_dir / "state", ignore_errors=True)
    return result.checkpoint_dir


def run_cell(cell: Cell, cache: CellCache, hashes: dict[str, str], corpora: dict[str, Corpus], *,
             keep_checkpoints: bool = False, log: Any = print) -> dict[str, Any]:
    """Run one cell (resuming its training state if a previous run was stopped) and cache its record."""
    source_ckpt = ensure_source(cell, cache, hashes, corpora, log)
    train, test, test_known = target_sides(cell, corpora)
    rows = {name: c.n_rows for name, c in corpora.items()}
    if cell.settings.split == "holdout":
        rows.update(target_train=train.n_rows, holdout=test.n_rows)
    start = time.perf_counter()
    if cell.method == "none":
        metrics = score_checkpoint(source_ckpt, test, cell.settings.device, test_known)
        record = {"metrics": metrics, "history": [], "wall_s": time.perf_counter() - start, "train_s": 0.0}
        cache.save(cell, hashes, {**record, "rows": rows})
        return record
    work = cache.work_dir(cell, hashes)
    timer = Timer()
    result = adapt(base=str(source_ckpt), corpus=train, config=cell.settings.train_config(cell.seed, cell.variant),
                   out_dir=work, method=cell.method, eval_corpus=test,  # type: ignore[arg-type]
                   callbacks=[timer])
    wall = time.perf_counter() - start
    metrics = score_checkpoint(result.checkpoint_dir, test, cell.settings.device, test_known)
    record = {"metrics": metrics, "history": result.history, "wall_s": wall, "train_s": timer.train_s,
              "eval_s": sum(timer.eval_s), "known_positives": train.known_positives}
    cache.save(cell, hashes, {**record, "rows": rows})
    if not keep_checkpoints:
        shutil.rmtree(work, ignore_errors=True)
    return record
