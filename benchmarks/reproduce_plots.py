"""PNG plots of the reproduction (matplotlib, Agg backend): mAP per epoch (the paper's Fig. 5) and mAP
against the label ratio per method."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

FIG5 = (("bce", 0.5, "tab:blue", "fine-tuning (bce), 50% labels"),
        ("dallmi", 0.5, "tab:green", "DALLMi, 50% labels"),
        ("bce", 1.0, "tab:red", "fine-tuning (bce), 100% labels"))


def _curves(records: list[dict[str, Any]]) -> np.ndarray | None:
    """``(S, E)`` mAP per seed and epoch, in %, or None without per-epoch figures."""
    rows = [[100 * h["mAP"] for h in r["history"] if "mAP" in h] for r in records]
    rows = [r for r in rows if r]
    if not rows:
        return None
    width = min(len(r) for r in rows)
    return np.array([r[:width] for r in rows])


def plot_epochs(groups: dict[tuple, list[dict[str, Any]]], corpus: str, path: Path, title: str) -> bool:
    """Fig. 5: mean test mAP per epoch over seeds (band: +- one standard deviation). False: nothing to plot."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    drawn = False
    for method, ratio, colour, label in FIG5:
        curves = _curves(groups.get((corpus, method, "default", ratio), []))
        if curves is None:
            continue
        epochs = np.arange(1, curves.shape[1] + 1)
        mean, std = curves.mean(axis=0), curves.std(axis=0)
        ax.plot(epochs, mean, marker="o", color=colour, label=f"{label} (n={curves.shape[0]})")
        ax.fill_between(epochs, mean - std, mean + std, color=colour, alpha=0.15)
        drawn = True
    if drawn:
        ax.set(xlabel="epoch", ylabel="test mAP (%)", title=title)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return drawn


def plot_ratios(stats: dict[tuple, dict[str, Any]], corpus: str, ratios: list[float], path: Path,
                title: str) -> bool:
    """mAP (mean +- std over seeds) against the label ratio for bce and dallmi, and for the baselines (0%:
    trained on the source only, dashed); 'none' as a line."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    drawn = False
    for method, colour, xs in (("bce", "tab:blue", {*ratios, 1.0}), ("dallmi", "tab:green", set(ratios)),
                               ("tfidf", "tab:orange", {0.0, *ratios, 1.0}),
                               ("probe", "tab:purple", {0.0, *ratios, 1.0})):
        points = [(x, stats[(corpus, method, "default", x)]) for x in sorted(xs)
                  if (corpus, method, "default", x) in stats]
        if points:
            ax.errorbar([100 * x for x, _ in points], [s["mAP"][0] for _, s in points],
                        yerr=[s["mAP"][1] for _, s in points], marker="o", capsize=3, color=colour, label=method,
                        linestyle="--" if method in ("tfidf", "probe") else "-")
            drawn = True
    none = stats.get((corpus, "none", "default", 1.0))
    if none is not None:
        ax.axhline(none["mAP"][0], color="grey", linestyle="--", label="none (source model)")
        drawn = True
    if drawn:
        ax.set(xlabel="labels available (%)", ylabel="test mAP (%)", title=title)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return drawn
