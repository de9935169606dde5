"""Baselines a user would pick instead of adapting a BERT model, as cells of the reproduction: ``tfidf``
(TF-IDF of word 1-2 grams + one-vs-rest logistic regression) and ``probe`` (the same regression on the frozen
encoder's mean-pooled, L2-normalised sentence embeddings), trained on the source only (ratio 0.0), on the
source plus target_train with labels hidden at a ratio, or on the source plus all of target_train (1.0).

Macro F1 uses per-label F1-optimal thresholds chosen on 5-fold cross-validated predictions of the training
rows (a hidden positive counts as a negative there, as it would for a user), never on evaluation labels.
Beside them, the floors of the evaluation split: the label prior (the mAP of random scores) and the macro F1
of saying yes to every label.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from reproduce_cells import BASELINE_CONFIG, LOGREG, Cell, CellCache
from reproduce_local import HEADLINE, target_sides
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline

from dallmi_core import Corpus, best_f1_thresholds, encode, evaluate_scores, load_classifier
from dallmi_core.modeling import resolve_device
from dallmi_core.probe import pooled_embeddings


def floors(y: np.ndarray) -> dict[str, float]:
    """The floors of an evaluation split, over its labels with at least one positive.

    Args:
        y: ``(N, L)`` 0/1 labels of the evaluation rows.

    Returns:
        ``label_prior_mAP``: the expected mAP of random scores (mean prevalence p); ``all_positive_macro_F1``:
        the macro F1 of saying yes to every label (mean of 2p / (1 + p)). Fractions in [0, 1], NaN without
        any positive.
    """
    prevalence = np.asarray(y, dtype=np.float64).mean(axis=0)  # (L,)
    p = prevalence[prevalence > 0]
    if p.size == 0:
        return {"label_prior_mAP": float("nan"), "all_positive_macro_F1": float("nan")}
    return {"label_prior_mAP": float(p.mean()), "all_positive_macro_F1": float(np.mean(2 * p / (1 + p)))}


def make_model(method: str, n_rows: int, seed: int) -> Pipeline:
    """An unfitted one-vs-rest logistic regression (``LOGREG``), behind TF-IDF for ``tfidf``; min_df is 2
    from 50 training rows on, else 1."""
    clf = OneVsRestClassifier(LogisticRegression(**LOGREG, random_state=seed))
    if method != "tfidf":
        return Pipeline([("clf", clf)])
    config = BASELINE_CONFIG["tfidf"]
    tfidf = TfidfVectorizer(ngram_range=tuple(config["ngram_range"]), sublinear_tf=config["sublinear_tf"],
                            min_df=2 if n_rows >= 50 else 1)
    return Pipeline([("tfidf", tfidf), ("clf", clf)])


def fit_predict(method: str, x_train: np.ndarray, y_train: np.ndarray, x_eval: np.ndarray,
                seed: int) -> np.ndarray:
    """Fit on the labels that have both classes among the training rows and score ``x_eval``; a label
    without a positive (or without a negative) gets its training frequency as a constant score.

    Args:
        x_train: ``(N,)`` object texts (tfidf) or ``(N, H)`` float32 embeddings (probe).
        y_train: ``(N, L)`` 0/1, 1 = known positive.
        x_eval: ``(M,)`` or ``(M, H)``, as ``x_train``.

    Returns:
        ``(M, L)`` float64 scores in [0, 1].
    """
    y_train = np.asarray(y_train, dtype=np.int64)
    counts = y_train.sum(axis=0)  # (L,)
    scores = np.tile(counts / len(y_train), (len(x_eval), 1))  # (M, L)
    fitted = np.flatnonzero((counts > 0) & (counts < len(y_train)))
    if fitted.size:
        model = make_model(method, len(x_train), seed)
        if fitted.size == 1:  # a single column is a binary target: predict_proba gives (M, 2)
            scores[:, fitted] = model.fit(x_train, y_train[:, fitted[0]]).predict_proba(x_eval)[:, 1:]
        else:
            scores[:, fitted] = model.fit(x_train, y_train[:, fitted]).predict_proba(x_eval)
    return scores


def cv_thresholds(method: str, x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Per-label F1-optimal thresholds on out-of-fold predictions of the training rows (``cv_folds``
    folds, shuffled with ``seed``).

    Args:
        x: ``(N,)`` texts or ``(N, H)`` embeddings; y: ``(N, L)`` 0/1 training labels.

    Returns:
        ``(L,)`` float64 thresholds (0.5 for a label without a positive).
    """
    folds = min(BASELINE_CONFIG[method]["cv_folds"], len(y))
    out_of_fold = np.zeros(y.shape, dtype=np.float64)  # (N, L)
    for train_idx, held_idx in KFold(folds, shuffle=True, random_state=seed).split(x):
        out_of_fold[held_idx] = fit_predict(method, x[train_idx], y[train_idx], x[held_idx], seed)
    return best_f1_thresholds(y, out_of_fold)


def sentence_embeddings(texts: list[str], base: str, max_length: int, device: str = "cpu",
                        batch_size: int = 64) -> np.ndarray:
    """The frozen encoder's sentence embeddings: the attention-mask-weighted mean of the last hidden state
    (``dallmi_core.probe.pooled_embeddings`` of a mean-pooled classifier), L2-normalised, in eval mode.

    Returns:
        ``(N, H)`` float32.
    """
    model, tokenizer = load_classifier(base, ["_"], pooling="mean")
    model.to(resolve_device(device))
    pooled = pooled_embeddings(model, encode(tokenizer, texts, max_length), batch_size=batch_size,
                               device=resolve_device(device))  # (N, H)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def cached_embeddings(root: Path, corpus: str, file: str, texts: list[str], cell: Cell,
                      log: Any = print) -> np.ndarray:
    """``sentence_embeddings`` of one corpus file, computed once and kept as
    ``<root>/embeddings/<corpus>-<file>-<hash>.npy`` (the hash covers the encoder, the truncation and the
    texts). Returns ``(N, H)`` float32."""
    s = cell.settings
    key = json.dumps({"base": s.base, "max_length": s.max_length, "texts": texts}, ensure_ascii=False)
    path = root / "embeddings" / f"{corpus}-{file}-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:16]}.npy"
    if path.is_file():
        return np.load(path)
    log(f"[probe] embedding {len(texts)} rows of {corpus}/{file} with {s.base}")
    embeddings = sentence_embeddings(texts, s.base, s.max_length, s.device,
                                     BASELINE_CONFIG["probe"]["batch_size"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, embeddings)
    tmp.replace(path)
    return embeddings


def _positions(full: Corpus, part: Corpus) -> np.ndarray:
    """``(n,)`` int64 positions of ``part``'s rows in ``full`` (ids are unique in a corpus)."""
    ids = np.asarray(full.ids)
    order = np.argsort(ids, kind="stable")
    return order[np.searchsorted(ids, np.asarray(part.ids), sorter=order)].astype(np.int64)


@dataclass(frozen=True)
class BaselineRows:
    """The rows of a baseline cell as positions in the corpus files.

    Attributes:
        train: ``(file, positions (n_i,) int64)`` of the training rows, the source first.
        y_train: ``(N, L)`` uint8 known positives of those rows (hidden = 0).
        eval_file: ``target_test``, or ``target_train`` for the holdout split.
        eval_rows: ``(M,)`` int64 positions of the evaluation rows in ``eval_file``.
        evaluation: those rows with their full labels; ``known``: with labels hidden at the cell's ratio.
        target_train_rows: rows of the target side that ``target_sides`` adapts on (all of target_train, or
            its 80% in the holdout split), also for a source-only cell.
    """

    train: list[tuple[str, np.ndarray]]
    y_train: np.ndarray
    eval_file: str
    eval_rows: np.ndarray
    evaluation: Corpus
    known: Corpus | None
    target_train_rows: int


def baseline_rows(cell: Cell, corpora: dict[str, Corpus]) -> BaselineRows:
    """Training and evaluation rows of a baseline cell: the source, plus ``target_sides``'s adaptation
    corpus when the ratio is above 0 (at 1.0 it has every label).

    Raises:
        ValueError: the source and target files name different labels.
    """
    source, target = corpora["source"], corpora["target_train"]
    if source.labels != target.labels:
        raise ValueError(f"source labels {source.labels} differ from target labels {target.labels}")
    adapt_side, evaluation, known = target_sides(replace(cell, ratio=cell.ratio or 1.0), corpora)
    train = [("source", np.arange(source.n_rows, dtype=np.int64))]
    ys = [source.y]
    if cell.ratio > 0:
        train.append(("target_train", _positions(target, adapt_side)))
        ys.append(adapt_side.y)
    eval_file = "target_train" if cell.settings.split == "holdout" else "target_test"
    return BaselineRows(train=train, y_train=np.concatenate(ys).astype(np.uint8), eval_file=eval_file,
                        eval_rows=_positions(corpora[eval_file], evaluation), evaluation=evaluation,
                        known=known, target_train_rows=adapt_side.n_rows)


def _features(cell: Cell, root: Path, corpora: dict[str, Corpus], files: set[str],
              log: Any) -> dict[str, np.ndarray]:
    """Per file: ``(N,)`` object texts (tfidf) or ``(N, H)`` float32 cached embeddings (probe)."""
    if cell.method == "tfidf":
        return {f: np.asarray(corpora[f].texts, dtype=object) for f in files}
    return {f: cached_embeddings(root, cell.corpus, f, corpora[f].texts, cell, log) for f in sorted(files)}


def baseline_metrics(evaluation: Corpus, scores: np.ndarray, thresholds: np.ndarray,
                     known: Corpus | None) -> dict[str, Any]:
    """HEADLINE metrics at ``thresholds`` (``(L,)``), ``macro_F1_at_0.5``, the floors and, with ``known``,
    ``PU_mAP``; ``scores`` is ``(M, L)``."""
    report = evaluate_scores(evaluation.y, scores, evaluation.labels, thresholds)
    metrics = {k: report[k] for k in HEADLINE}
    metrics["macro_F1_at_0.5"] = evaluate_scores(evaluation.y, scores, evaluation.labels)["macro_F1"]
    metrics.update(floors(evaluation.y))
    if known is not None:
        metrics["PU_mAP"] = evaluate_scores(known.y, scores, known.labels)["mAP"]
    return metrics


def run_baseline_cell(cell: Cell, cache: CellCache, hashes: dict[str, str], corpora: dict[str, Corpus],
                      log: Any = print) -> dict[str, Any]:
    """Fit a baseline cell, score its evaluation rows and cache its record (no source checkpoint)."""
    start = time.perf_counter()
    rows = baseline_rows(cell, corpora)
    features = _features(cell, cache.root, corpora, {f for f, _ in rows.train} | {rows.eval_file}, log)
    features_s = time.perf_counter() - start
    x_train = np.concatenate([features[f][idx] for f, idx in rows.train])  # (N,) or (N, H)
    thresholds = cv_thresholds(cell.method, x_train, rows.y_train, cell.seed)
    scores = fit_predict(cell.method, x_train, rows.y_train, features[rows.eval_file][rows.eval_rows], cell.seed)
    counts = rows.y_train.sum(axis=0)
    sizes = {name: c.n_rows for name, c in corpora.items()}
    if cell.settings.split == "holdout":
        sizes.update(target_train=rows.target_train_rows, holdout=rows.evaluation.n_rows)
    record = {"metrics": baseline_metrics(rows.evaluation, scores, thresholds, rows.known), "history": [],
              "wall_s": time.perf_counter() - start, "train_s": time.perf_counter() - start - features_s,
              "features_s": features_s, "thresholds": thresholds.tolist(),
              "constant_labels": [label for label, n in zip(rows.evaluation.labels, counts, strict=True)
                                  if n in (0, len(rows.y_train))],
              "known_positives": dict(zip(rows.evaluation.labels, counts.astype(int).tolist(), strict=True)),
              "rows": {**sizes, "train": len(rows.y_train)}}
    cache.save(cell, hashes, record)
    return record
