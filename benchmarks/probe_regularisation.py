"""The frozen-embedding probe's regularisation on held-out target_train rows (docs/recipe.md, second session):
scikit-learn's one-vs-rest logistic regression on L2-normalised MiniLM-L6 sentence embeddings of the source
corpus, C in a grid, with and without balanced class weights, scored by mAP on the seed's 20 % held-out
target_train rows (never target_test).

    python benchmarks/probe_regularisation.py --corpus pubmed reuters --max-source-rows 2000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from reproduce_baselines import sentence_embeddings
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier

from dallmi_core import evaluate_scores, read_corpus
from dallmi_core.corpus import split_holdout

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", nargs="+", default=["pubmed"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--max-source-rows", type=int, default=2000)
    p.add_argument("--c", nargs="+", type=float, default=[0.1, 1.0, 10.0])
    p.add_argument("--data-dir", type=Path, default=DATA)
    args = p.parse_args(argv)
    for name in args.corpus:
        source = read_corpus(args.data_dir / name / "source.csv")
        if source.n_rows > args.max_source_rows:  # the same rows as recipe.py's --max-source-rows
            source = source.subset(np.sort(np.random.default_rng(0).permutation(source.n_rows)[:args.max_source_rows]))
        _, held = split_holdout(read_corpus(args.data_dir / name / "target_train.csv"), 0.2, args.seed)
        x_source = sentence_embeddings(source.texts, "minilm-l6", args.max_tokens)  # (N, H), L2-normalised
        x_held = sentence_embeddings(held.texts, "minilm-l6", args.max_tokens)
        fit = source.y.sum(axis=0) > 0  # (L,) labels the source corpus has positives of
        for c in args.c:
            for weight in (None, "balanced"):
                probe = OneVsRestClassifier(LogisticRegression(C=c, class_weight=weight, max_iter=2000,
                                                               solver="liblinear"))
                probe.fit(x_source, source.y[:, fit])
                scores = np.zeros(held.y.shape, dtype=np.float32)  # (N_held, L)
                scores[:, fit] = probe.predict_proba(x_held)
                report = evaluate_scores(held.y, scores, held.labels)
                print(f"{name} C={c:g} class_weight={weight}: held-out mAP {100 * report['mAP']:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    torch.set_num_threads(2)
    sys.exit(main())
