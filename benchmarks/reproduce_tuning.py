"""docs/tuning.md from the cached ``--split holdout`` cells: the adaptation's learning rate and lambda scored
on a held-out 20% of target_train (never on target_test), and the setting each method would pick."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from reproduce_cells import BASELINES, HOLDOUT_FRACTION, Cell
from reproduce_figures import baseline_table, floors_line
from reproduce_report import aggregate

Setting = tuple[str, float, float | None]
"""(method, adaptation lr, lambda; None for bce)."""


def _setting(cell: Cell) -> Setting:
    s = cell.settings
    return cell.method, s.adapt_lr or s.lr, s.mixup_weight if cell.method == "dallmi" else None


def holdout_stats(records: dict[Cell, dict[str, Any]], corpus: str) -> dict[Setting, dict[float, dict[str, Any]]]:
    """Per (method, lr, lambda) and label ratio: mean and std over seeds of the held-out mAP (full labels)
    and of PU_mAP (known positives only), in %, with the seeds counted."""
    groups: dict[Setting, dict[float, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for cell, record in records.items():
        if (cell.corpus == corpus and cell.settings.split == "holdout" and cell.variant == "default"
                and cell.method in ("bce", "dallmi") and cell.ratio < 1.0):
            groups[_setting(cell)][cell.ratio].append(record["metrics"])
    out: dict[Setting, dict[float, dict[str, Any]]] = {}
    for setting, by_ratio in groups.items():
        out[setting] = {}
        for ratio, metrics in by_ratio.items():
            full = 100 * np.array([m["mAP"] for m in metrics])
            pu = 100 * np.array([m.get("PU_mAP", np.nan) for m in metrics])
            out[setting][ratio] = {"mAP": float(full.mean()), "mAP_std": float(full.std()), "n": len(metrics),
                                   "PU_mAP": float(pu.mean())}
    return out


def choose(stats: dict[Setting, dict[float, dict[str, Any]]], ratios: list[float], figure: str) -> dict[str, Setting]:
    """Per method, the setting with the best ``figure`` averaged over the ratios (one setting for every
    ratio: a user does not know in advance what share of positives is labelled)."""
    best: dict[str, tuple[float, Setting]] = {}
    for setting, by_ratio in stats.items():
        if not all(r in by_ratio for r in ratios):
            continue
        score = float(np.mean([by_ratio[r][figure] for r in ratios]))
        if setting[0] not in best or score > best[setting[0]][0]:
            best[setting[0]] = (score, setting)
    return {method: setting for method, (_, setting) in best.items()}


def _name(setting: Setting) -> str:
    method, lr, lam = setting
    return f"{method} lr={lr:.0e}" + ("" if lam is None else f" lambda={lam:g}")


def tuning_table(stats: dict[Setting, dict[float, dict[str, Any]]], ratios: list[float]) -> list[str]:
    """One row per setting: held-out mAP ± std and PU mAP per ratio; picks marked."""
    picked = choose(stats, ratios, "mAP")
    picked_pu = choose(stats, ratios, "PU_mAP")
    head = ["method", "lr", "lambda", *(f"mAP {r:.0%}" for r in ratios), *(f"PU mAP {r:.0%}" for r in ratios),
            "pick"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for setting in sorted(stats, key=lambda s: (s[0], s[1], s[2] or 0.0)):
        by_ratio = stats[setting]
        full = [f"{by_ratio[r]['mAP']:.1f} ± {by_ratio[r]['mAP_std']:.1f}" if r in by_ratio else "–" for r in ratios]
        pu = [f"{by_ratio[r]['PU_mAP']:.1f}" if r in by_ratio else "–" for r in ratios]
        marks = [m for m, chosen in (("by mAP", picked), ("by PU mAP", picked_pu)) if chosen.get(setting[0]) == setting]
        lam = "–" if setting[2] is None else f"{setting[2]:g}"
        figures = " | ".join(full + pu)
        lines.append(f"| {setting[0]} | {setting[1]:.0e} | {lam} | {figures} | {', '.join(marks)} |")
    return lines


def _baselines(records: dict[Cell, dict[str, Any]], corpus: str, ratios: list[float]) -> list[str]:
    """The baselines' held-out mAP (%) per training set and the floors of the held-out rows."""
    _, stats = aggregate({c: r for c, r in records.items() if c.corpus == corpus and c.method in BASELINES
                          and c.settings.split == "holdout"})
    table = [*baseline_table(stats, [corpus], ratios), ""] if stats else []
    return ["Baselines on the same held-out rows (mAP; source + r% target: the 80% part with labels hidden at r):",
            "", *table, floors_line(records, corpus, "the held-out rows"), ""]


def write_tuning(records: dict[Cell, dict[str, Any]], *, corpora: list[str], ratios: list[float], docs_dir: Path,
                 command: str) -> tuple[Path, Path]:
    """Write ``docs_dir/tuning.md`` and ``docs_dir/tuning.json`` (every holdout cell); returns both paths."""
    seeds = sorted({c.seed for c in records if c.settings.split == "holdout"})
    lines = ["# Tuning the adaptation on a held-out part of target_train", "",
             "Generated by `benchmarks/reproduce.py --split holdout --report`; do not edit by hand. Regenerate "
             "with:", "", f"    {command}", "",
             f"Every cell adapts the source model on {1 - HOLDOUT_FRACTION:.0%} of target_train (labels hidden at "
             f"the ratio) and is scored on the other {HOLDOUT_FRACTION:.0%} (`split_holdout`, the cell's seed); "
             "target_test is never scored. mAP uses the held-out rows' full labels (the benchmark has them); "
             "PU mAP uses only the known positives left after hiding labels at the same ratio, which is all a "
             "user with partial labels could measure. Figures in %, mean ± std over seeds "
             f"{seeds}; the pick is the setting with the best mean over the ratios.", ""]
    for corpus in corpora:
        stats = holdout_stats(records, corpus)
        none = [r["metrics"]["mAP"] for c, r in records.items()
                if c.corpus == corpus and c.method == "none" and c.settings.split == "holdout"]
        lines += [f"## {corpus}", ""]
        if none:
            lines += [f"No adaptation (`none`) on the same held-out rows: mAP {100 * np.mean(none):.1f}.", ""]
        picks = ", ".join(_name(s) for _, s in sorted(choose(stats, ratios, "mAP").items()))
        lines += [*tuning_table(stats, ratios), "", f"Picked by held-out mAP: {picks or 'none yet'}.", "",
                  *_baselines(records, corpus, ratios)]
    md, js = docs_dir / "tuning.md", docs_dir / "tuning.json"
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text("\n".join(lines), encoding="utf-8")
    holdout = [r for c, r in records.items() if c.settings.split == "holdout"]
    js.write_text(json.dumps(holdout, indent=1), encoding="utf-8")
    return md, js
