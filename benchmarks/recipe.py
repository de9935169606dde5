"""Recipe investigation (issue #8): source fine-tuning and adaptation variants scored on held-out
target_train rows only (``split_holdout`` 20 %, the seed's), never on target_test.

Each (corpus, seed, source config) trains one source model, cached under ``--cache``; each adaptation
variant is one cached JSON line in ``<cache>/results.jsonl`` keyed by its full config, so a stopped run
resumes. Threshold rules are compared post hoc on the same scores (macro F1 at each rule's thresholds).

    python benchmarks/recipe.py --corpus pubmed --seeds 0 --ratios 0.3 0.1 --max-tokens 64 \\
        --source default paper --variants paper prediction default bce
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from reproduce_baselines import floors
from safetensors.torch import load_file

from dallmi_core import (
    Predictor,
    TrainConfig,
    adapt,
    best_f1_thresholds,
    evaluate_scores,
    finetune,
    hide_labels,
    read_corpus,
)
from dallmi_core.checkpoint import save_checkpoint
from dallmi_core.corpus import split_holdout
from dallmi_core.decisions import estimate_prior, lee_liu_thresholds, prior_thresholds
from dallmi_core.probe import wise_interpolate

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

SOURCES: dict[str, dict[str, Any]] = {
    "default": {},
    "paper": {"preset": "paper"},
    "random_head": {"head_init": "random"},
    "cls": {"pooling": "cls", "head_init": "random"},
    "wise": {"wise_alpha": 0.5},
}
"""Source fine-tuning configs (epochs and max_length come from the options)."""

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "paper": ("dallmi", {"mixup_grad": "full", "anchor_weight": 0.0}),
    "prediction": ("dallmi", {"anchor_weight": 0.0}),
    "default": ("dallmi", {}),
    "no_mixup": ("dallmi", {"mixup_weight": 0.0}),
    "anchor_full": ("dallmi", {"mixup_grad": "full"}),
    "lambda0.1": ("dallmi", {"mixup_weight": 0.1}),
    "no_min_steps": ("dallmi", {"min_steps": 0}),
    "pu_select": ("dallmi", {"val_fraction": 0.2, "selection": "best"}),
    "bce": ("bce", {}),
}
"""Adaptation variants: (method, TrainConfig overrides)."""


def _key(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _score(ckpt: Path | Predictor, held: Any, train_known: Any, teacher_ckpt: Path | None) -> dict[str, Any]:
    """Held-out metrics at the stored thresholds and at each PU rule's thresholds."""
    predictor = ckpt if isinstance(ckpt, Predictor) else Predictor.load(ckpt, device="cpu")
    scores = predictor.predict_scores(held.texts, batch_size=64)
    out = evaluate_scores(held.y, scores, held.labels, predictor.thresholds)
    metrics = {k: out[k] for k in ("mAP", "micro_AP", "macro_F1", "roc_auc")}
    train_scores = predictor.predict_scores(train_known.texts, batch_size=64)
    teacher = Predictor.load(teacher_ckpt, device="cpu").predict_scores(train_known.texts, batch_size=64) \
        if teacher_ckpt else train_scores
    prior = estimate_prior(teacher, train_known.y)
    rules = {"prior": prior_thresholds(train_scores, prior), "lee_liu": lee_liu_thresholds(train_known.y, train_scores),
             "half": np.full(len(held.labels), 0.5)}
    for name, cut in rules.items():
        metrics[f"macro_F1_{name}"] = evaluate_scores(held.y, scores, held.labels, cut)["macro_F1"]
    metrics["macro_F1_oracle"] = evaluate_scores(held.y, scores, held.labels,
                                                 best_f1_thresholds(held.y, scores))["macro_F1"]  # a ceiling only
    means = scores.mean(axis=0)
    prevalence = held.y.mean(axis=0)
    metrics["score_prior_spearman"] = float(np.corrcoef(np.argsort(np.argsort(means)),
                                                        np.argsort(np.argsort(prevalence)))[0, 1])
    metrics["mean_score"] = float(scores.mean())
    return metrics


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", nargs="+", default=["pubmed"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--ratios", nargs="+", type=float, default=[0.3])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--source", nargs="+", default=["default"], choices=sorted(SOURCES))
    p.add_argument("--variants", nargs="*", default=["default"], choices=sorted(VARIANTS))
    p.add_argument("--adapt-source", default="default", choices=sorted(SOURCES), help="source model adapted")
    p.add_argument("--max-source-rows", type=int, default=0)
    p.add_argument("--cache", type=Path, default=ROOT / "runs" / "recipe")
    p.add_argument("--data-dir", type=Path, default=DATA)
    p.add_argument("--base", default="minilm-l6")
    p.add_argument("--min-steps", type=int, default=None, help="TrainConfig.min_steps (default: the recipe's)")
    p.add_argument("--adapt-wise-alpha", type=float, default=None,
                   help="adapt the --adapt-source run's weights re-mixed at this WiSE-FT coefficient (1: its selected "
                        "fine-tuned weights) instead of its stored checkpoint; saves training a second source model")
    p.add_argument("--wise-grid", nargs="*", type=float, default=[0.0, 0.25, 0.5, 0.75, 1.0],
                   help="WiSE-FT coefficients scored post hoc for a source config with wise_alpha (0: the probe)")
    args = p.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    results = args.cache / "results.jsonl"
    done = {json.loads(line)["key"] for line in results.read_text().splitlines()} if results.is_file() else set()
    common: dict[str, Any] = {"epochs": args.epochs, "max_length": args.max_tokens, "device": "cpu"}
    if args.min_steps is not None:
        common["min_steps"] = args.min_steps
    for corpus_name in args.corpus:
        files = {n: read_corpus(args.data_dir / corpus_name / f"{n}.csv") for n in ("source", "target_train")}
        source = files["source"]
        if args.max_source_rows and source.n_rows > args.max_source_rows:
            source = source.subset(np.sort(np.random.default_rng(0).permutation(source.n_rows)[:args.max_source_rows]))
        for seed in args.seeds:
            train, held = split_holdout(files["target_train"], 0.2, seed)
            ckpts: dict[str, Path] = {}
            for name in dict.fromkeys([*args.source, args.adapt_source]):
                spec = {"corpus": corpus_name, "seed": seed, "source": SOURCES[name], **common,
                        "rows": source.n_rows, "v": 3, **({"base": args.base} if args.base != "minilm-l6" else {})}
                out = args.cache / "sources" / f"{corpus_name}-{name}-s{seed}-{_key(spec)}"
                if not (out / "checkpoint").is_dir():
                    start = time.perf_counter()
                    finetune(base=args.base, corpus=source, out_dir=out,
                             config=TrainConfig.from_dict({**SOURCES[name], **common, "seed": seed}))
                    (out / "wall_s.txt").write_text(f"{time.perf_counter() - start:.1f}")
                ckpts[name] = out / "checkpoint"
                if name == args.adapt_source and args.adapt_wise_alpha is not None:
                    ckpts[name] = _wise_checkpoint(out, args.adapt_wise_alpha)
                key = _key({**spec, "method": "none"})
                if key not in done:
                    m = _score(ckpts[name], held, hide_labels(train, 1.0, seed), None)
                    _log(results, {"key": key, "corpus": corpus_name, "seed": seed, "source": name,
                                   "method": "none", "ratio": 1.0, "wall_s": float((out / "wall_s.txt").read_text()),
                                   **floors(held.y), **m})
                    done.add(key)
                for alpha in args.wise_grid if "wise_alpha" in SOURCES[name] else ():
                    key = _key({**spec, "method": "none", "wise": alpha})
                    if key not in done:
                        m = _score(_wise_predictor(out, alpha), held, hide_labels(train, 1.0, seed), None)
                        _log(results, {"key": key, "corpus": corpus_name, "seed": seed, "source": name,
                                       "method": "none", "wise_alpha": alpha, "ratio": 1.0, **floors(held.y), **m})
                        done.add(key)
            for ratio in args.ratios:
                known = hide_labels(train, ratio, seed)
                for variant in args.variants:
                    method, overrides = VARIANTS[variant]
                    spec = {"corpus": corpus_name, "seed": seed, "source": args.adapt_source, "ratio": ratio,
                            "variant": variant, "overrides": overrides, **common, "v": 3,
                            **({"wise": args.adapt_wise_alpha} if args.adapt_wise_alpha is not None else {})}
                    key = _key(spec)
                    if key in done:
                        continue
                    work = args.cache / "work" / key
                    start = time.perf_counter()
                    result = adapt(base=str(ckpts[args.adapt_source]), corpus=known, out_dir=work,
                                   method=method,  # type: ignore[arg-type]
                                   config=TrainConfig.from_dict({**overrides, **common, "seed": seed}))
                    wall = time.perf_counter() - start
                    m = _score(result.checkpoint_dir, held, known, ckpts[args.adapt_source])
                    _log(results, {"key": key, "corpus": corpus_name, "seed": seed, "source": args.adapt_source,
                                   "method": method, "variant": variant, "ratio": ratio, "wall_s": wall,
                                   "warnings": len(result.metrics.get("warnings", [])), **m})
                    done.add(key)
    return 0


def _wise_predictor(run_dir: Path, alpha: float) -> Predictor:
    """The run's source model re-mixed at ``alpha`` from its selected fine-tuned weights and its start."""
    predictor = Predictor.load(run_dir / "checkpoint", device="cpu")
    tuned = run_dir / "best.safetensors"
    if not tuned.is_file():
        raise FileNotFoundError(f"{tuned}: the run kept no selected fine-tuned weights")
    predictor.model.load_state_dict(load_file(str(tuned)))
    start = load_file(str(run_dir / "init.safetensors"))
    if alpha > 0:
        wise_interpolate(predictor.model, start, alpha)
    else:
        predictor.model.load_state_dict(start)
    return predictor


def _wise_checkpoint(run_dir: Path, alpha: float) -> Path:
    """The run's model re-mixed at ``alpha``, saved once as a checkpoint beside the run's own (same meta: its
    thresholds are the stored model's, which an adaptation recomputes from PU data anyway)."""
    path = run_dir / f"checkpoint-wise{alpha:g}"
    if not (path / "dallmi.json").is_file():
        predictor = _wise_predictor(run_dir, alpha)
        meta = dict(predictor.meta)
        meta["config"] = {**meta["config"], "wise_alpha": alpha}
        save_checkpoint(path, predictor.model, predictor.tokenizer, meta)
    return path


def _log(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in record.items() if k != "key"}
    print(json.dumps(shown), flush=True)


if __name__ == "__main__":
    torch.set_num_threads(2)
    sys.exit(main())
