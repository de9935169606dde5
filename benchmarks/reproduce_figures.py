"""Figures over seeds (mean ± std) and the baselines' and floors' Markdown, shared by docs/results.md
(``reproduce_report``) and docs/tuning.md (``reproduce_tuning``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from reproduce_cells import BASELINES, Cell

Key = tuple[str, str, str, float]
"""(corpus, method, variant label, ratio): a group of cells over seeds."""
FIGURES = ("mAP", "micro_AP", "macro_F1", "roc_auc", "macro_F1_at_0.5")
"""Metrics aggregated per cell group; a baseline's macro_F1 is at cross-validated thresholds, macro_F1_at_0.5
at 0.5."""
FLOORS = ("label_prior_mAP", "all_positive_macro_F1")


def mean_std(values: list[float]) -> tuple[float, float, int]:
    """(mean, std with ddof=1 or 0 for one value, n)."""
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return float(np.mean(values)), std, len(values)


def floor_stats(records: dict[Cell, dict[str, Any]], corpus: str) -> dict[str, tuple]:
    """The floors (label prior mAP, all-positive macro F1) of a corpus's evaluation split in %, mean ± std
    over seeds, read from its baseline cells (one per seed: the holdout split depends on the seed)."""
    by_seed: dict[int, dict[str, Any]] = {}
    for cell, record in records.items():
        if cell.corpus == corpus and cell.method in BASELINES and FLOORS[0] in record.get("metrics", {}):
            by_seed.setdefault(cell.seed, record["metrics"])
    if not by_seed:
        return {}
    return {name: mean_std([100 * m[name] for m in by_seed.values()]) for name in FLOORS}


def floors_line(records: dict[Cell, dict[str, Any]], corpus: str, split: str = "target_test") -> str:
    """One sentence with the floors of ``corpus``, or a pointer to the cells that compute them."""
    floor = floor_stats(records, corpus)
    if not floor:
        return f"Floors of {split}: run a `tfidf` or `probe` cell to compute them."
    return (f"Floors of {split} (no training): label prior mAP (random scores) {fmt(floor['label_prior_mAP'])}, "
            f"all-positive macro F1 (yes to every label) {fmt(floor['all_positive_macro_F1'])}.")


def training_set(ratio: float) -> str:
    """A baseline's training rows: ``source only``, ``source + 50% target`` or ``source + 100% target``."""
    return "source only" if ratio == 0.0 else f"source + {ratio:.0%} target"


def baseline_name(method: str, ratio: float) -> str:
    """``tfidf (source only)``, ``tfidf (source + 50% target)``, ..."""
    return f"{method} ({training_set(ratio)})"


def baseline_rows(stats: dict[Key, dict], corpus: str) -> list[str]:
    """Rows of the per-corpus metrics table for each baseline cell group: mAP, micro AP, macro F1 at 0.5
    and at cross-validated thresholds, ROC AUC (%), wall time (s); source only first, 100% last."""
    lines = []
    ratios = sorted({k[3] for k in stats if k[0] == corpus and k[1] in BASELINES},
                    key=lambda r: (r != 0.0, r == 1.0, -r))
    for method in BASELINES:
        for ratio in ratios:
            row = stats.get((corpus, method, "default", ratio))
            if row is not None:
                figures = " | ".join(fmt(row[m]) for m in ("mAP", "micro_AP", "macro_F1_at_0.5", "macro_F1",
                                                          "roc_auc"))
                lines.append(f"| {baseline_name(method, ratio)} | {'-' if ratio == 0.0 else f'{ratio:.0%}'} | "
                             f"{figures} | {fmt(row['wall_s'], 0)} |")
    return lines


def baseline_table(stats: dict[Key, dict], corpora: list[str], ratios: list[float]) -> list[str]:
    """mAP (%) of each baseline per training set: source only, source + r% target, source + 100% target."""
    columns = [0.0, *sorted(set(ratios) - {0.0, 1.0}, reverse=True), 1.0]
    head = ["corpus", "baseline", *(training_set(r) for r in columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for corpus in corpora:
        for method in BASELINES:
            if any(stats.get((corpus, method, "default", r)) for r in columns):
                row = [fmt(stats.get((corpus, method, "default", r), {}).get("mAP")) for r in columns]
                lines.append(f"| {corpus} | {method} | " + " | ".join(row) + " |")
    return lines


def floors_table(records: dict[Cell, dict[str, Any]], corpora: list[str]) -> list[str]:
    """Label prior mAP and all-positive macro F1 (%) per corpus."""
    lines = ["| corpus | label prior mAP | all-positive macro F1 |", "| --- | --- | --- |"]
    for corpus in corpora:
        floor = floor_stats(records, corpus)
        lines.append(f"| {corpus} | {fmt(floor.get('label_prior_mAP'))} | "
                     f"{fmt(floor.get('all_positive_macro_F1'))} |")
    return lines


def fmt(figure: tuple | None, digits: int = 1) -> str:
    """``mean ± std`` of a (mean, std, n) figure, with ``(n=...)`` when n is not 3; '–' for none or NaN."""
    if figure is None or np.isnan(figure[0]):
        return "–"
    mean, std, n = figure
    return f"{mean:.{digits}f} ± {std:.{digits}f}" + (f" (n={n})" if n != 3 else "")
