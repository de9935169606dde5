"""Probe of DALLMi's loss terms on a source model: the magnitude and the gradient norm of the variational
loss (Eq. 1), the MixUp penalty (Eq. 2) and BCE on the same batches, the score separation of known
positives from unlabeled rows, and what the label-balanced and random samplers put in a batch.

It reads what the investigation of docs/results.md reports; it trains nothing beyond the source model
(taken from, or added to, the reproduction cache, so it is the same model as the reproduce cells').

    python benchmarks/loss_terms.py --corpus pubmed --ratios 0.5 0.1 --seed 0 --epochs 4 --max-tokens 64
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from reproduce_cells import Cell, CellCache, Settings, data_hashes, load_corpora
from reproduce_local import ensure_source

from dallmi_core import TrainConfig, hide_labels, load_classifier
from dallmi_core.losses import bce_loss
from dallmi_core.modeling import encode
from dallmi_core.sampler import make_sampler
from dallmi_core.steps import dallmi_terms

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default="pubmed")
    p.add_argument("--ratios", nargs="+", type=float, default=[0.5, 0.1])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batches", type=int, default=4, help="batches probed per sampler and ratio")
    p.add_argument("--epochs", type=int, default=4, help="of the source model (its cache key)")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--base", default="minilm-l6")
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--cache", type=Path, default=ROOT / "runs" / "reproduce")
    p.add_argument("--json", type=Path, help="also write the figures here")
    return p.parse_args(argv)


def _grad_norm(loss: torch.Tensor, params: list[torch.Tensor]) -> float:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads if g is not None)))


def probe_batch(model: Any, ids: torch.Tensor, mask: torch.Tensor, known: np.ndarray,
                rng: np.random.Generator) -> dict[str, float]:
    """Loss terms (summed over labels, as in L_final) and their gradient norms on one batch ``(B, T)``."""
    params = [p for p in model.parameters() if p.requires_grad]
    known_t = torch.from_numpy(known.astype(np.float32))  # (B, L)
    logits, var, mix = dallmi_terms(model, ids, mask, known_t, known, TrainConfig(), rng)  # paper's defaults
    bce = bce_loss(logits, known_t)
    scores = torch.sigmoid(logits.detach())
    pos, unl = known.astype(bool), ~known.astype(bool)
    return {"var": var.item(), "mixup": mix.item(), "bce": bce.item(), "grad_var": _grad_norm(var, params),
            "grad_mixup": _grad_norm(mix, params), "grad_bce": _grad_norm(bce, params),
            "score_pos": float(scores[torch.from_numpy(pos)].mean()) if pos.any() else float("nan"),
            "score_unl": float(scores[torch.from_numpy(unl)].mean())}


def batch_composition(known: np.ndarray) -> dict[str, float]:
    """What a batch ``(B, L)`` of known positives gives the loss: labels with a positive, positives per label."""
    per_label = known.sum(axis=0)  # (L,)
    return {"labels_with_positive": float((per_label > 0).mean()), "positives_per_label": float(per_label.mean()),
            "min_positives": float(per_label.min())}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings(base=args.base, epochs=args.epochs, max_length=args.max_tokens, batch_size=args.batch_size)
    hashes = data_hashes(args.data_dir, args.corpus)
    corpora = load_corpora(args.data_dir, args.corpus, settings)
    cell = Cell(args.corpus, "dallmi", args.ratios[0], args.seed, settings=settings)
    checkpoint = ensure_source(cell, CellCache(args.cache), hashes, corpora)
    model, tokenizer = load_classifier(str(checkpoint), corpora["target_train"].labels)
    model.eval()  # dropout off: the figures are the terms' own, not the noise's
    out: dict[str, Any] = {}
    for ratio in args.ratios:
        train = hide_labels(corpora["target_train"], ratio, args.seed)
        encoded = encode(tokenizer, train.texts, args.max_tokens)
        for kind in ("balanced", "random"):
            sampler = make_sampler(kind, train.y, args.batch_size, seed=args.seed)
            rng = np.random.default_rng(args.seed)
            rows = []
            for idx in list(sampler)[: args.batches]:
                ids, mask = encoded.batch(torch.from_numpy(idx), "cpu")
                known = train.y[idx]  # (B, L)
                rows.append({**batch_composition(known), **probe_batch(model, ids, mask, known, rng)})
            mean = {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}  # NaN: a batch without positives
            out[f"r{ratio:g}-{kind}"] = mean
            print(f"r={ratio:g} {kind:8s} " + " ".join(f"{k}={v:.3f}" for k, v in mean.items()), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
