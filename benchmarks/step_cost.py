"""Cost of one DALLMi training step against one BCE step on the same batches (issue: dallmi_core).

MiniLM-L6 (bundled), 128 tokens, L = 14 labels (PubMed), CPU by default. Each timed step is forward,
backward and optimiser step; DALLMi and BCE steps alternate on the same label-balanced batches so that
machine noise hits both alike. Prints the median times and the ratio against the goal
1.05 x (1 + L/B), the cost of the L extra mixed rows with gradient. A BCE step on B + L rows is timed
too: it is the floor for any implementation that sends the L mixed rows through the model with gradient.

    python benchmarks/step_cost.py --batch-sizes 64 32 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from dallmi_core import BUILTIN_MINILM, LabelBalancedSampler, TrainConfig, hide_labels, load_classifier, read_corpus
from dallmi_core.modeling import encode
from dallmi_core.steps import bce_step, dallmi_step

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _timed_step(model, optimizer, fn) -> float:
    start = time.perf_counter()
    out = fn()
    out.loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(batch_size: int, repeats: int, device: str, max_length: int) -> tuple[float, float, float]:
    corpus = hide_labels(read_corpus(DATA / "pubmed" / "target_train.csv"), 0.5, seed=0)
    model, tokenizer = load_classifier(BUILTIN_MINILM, corpus.labels, seed=0)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-7)  # tiny lr: the weights barely move
    encoded = encode(tokenizer, corpus.texts, max_length)
    sampler = LabelBalancedSampler(corpus.y, batch_size, seed=0)
    config = TrainConfig(batch_size=batch_size, max_length=max_length)
    rng = np.random.default_rng(0)
    batches = list(sampler)
    dallmi_times, bce_times, wide_times = [], [], []
    for i in range(repeats + 1):  # the first round warms up
        idx = batches[i % len(batches)]
        ids, mask = encoded.batch(torch.from_numpy(idx), device)
        known_host = corpus.y[idx]
        known = torch.from_numpy(known_host).float().to(device)
        t_dallmi = _timed_step(model, optimizer,
                               lambda: dallmi_step(model, ids, mask, known, known_host, config, rng))  # noqa: B023
        t_bce = _timed_step(model, optimizer, lambda: bce_step(model, ids, mask, known))  # noqa: B023
        wide = np.concatenate([idx, batches[(i + 1) % len(batches)][: corpus.y.shape[1]]])  # B + L rows
        w_ids, w_mask = encoded.batch(torch.from_numpy(wide), device)
        w_known = torch.from_numpy(corpus.y[wide]).float().to(device)
        t_wide = _timed_step(model, optimizer, lambda: bce_step(model, w_ids, w_mask, w_known))  # noqa: B023
        if i > 0:
            dallmi_times.append(t_dallmi)
            bce_times.append(t_bce)
            wide_times.append(t_wide)
        print(f"  B={batch_size} round {i}: dallmi {t_dallmi:.3f}s  bce {t_bce:.3f}s  bce(B+L) {t_wide:.3f}s")
    return statistics.median(dallmi_times), statistics.median(bce_times), statistics.median(wide_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 32])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    n_labels = 14
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, MiniLM-L6, {args.max_length} tokens")
    rows = []
    for b in args.batch_sizes:
        d, c, w = measure(b, args.repeats, args.device, args.max_length)
        rows.append((b, d, c, w, 1.05 * (1 + n_labels / b)))
    print("\n| B | DALLMi step (s) | BCE step (s) | BCE on B+L rows (s) | DALLMi / BCE | BCE(B+L) / BCE "
          "| DALLMi / BCE(B+L) | goal 1.05(1+L/B) | within goal |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for b, d, c, w, goal in rows:
        print(f"| {b} | {d:.3f} | {c:.3f} | {w:.3f} | {d / c:.3f} | {w / c:.3f} | {d / w:.3f} | {goal:.3f} "
              f"| {'yes' if d / c <= goal else 'no'} |")
    print("published loop (METHOD-NOTES): 1.57x at B=32, 1.15x at B=64, without MixUp gradient")


if __name__ == "__main__":
    main()
