"""Batch samplers: the label-balanced sampler of DALLMi (section 3, "Label-balanced Sampling") and a
plain random sampler (the "unweighted sampler" of Table 4).

Both yield batches of row indices, are seeded and reseeded per epoch (``seed + epoch``), resumable from
:meth:`state_dict`, and shardable across ``world_size`` ranks (each rank gets whole batches, disjoint from
the other ranks', and every rank gets the same number of batches).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np


class _EpochBatchSampler:
    """Shared epoch, resume and sharding logic; subclasses build one epoch's global batch plan."""

    def __init__(self, n_rows: int, batch_size: int, *, seed: int = 0, rank: int = 0,
                 world_size: int = 1) -> None:
        if n_rows < 1:
            raise ValueError("the corpus has no rows")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        self.n_rows = n_rows
        self.batch_size = min(batch_size, n_rows)
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        self._start = 0  # batches of this rank already consumed in the current epoch
        self.batches_per_epoch = math.ceil(n_rows / self.batch_size)  # K, before padding for the ranks

    def _plan(self, rng: np.random.Generator) -> list[np.ndarray]:
        raise NotImplementedError

    def _global_batches(self) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch])
        batches = self._plan(rng)
        padded = -(-len(batches) // self.world_size) * self.world_size  # every rank runs as many steps
        return [batches[i % len(batches)] for i in range(padded)]

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (reseeds with ``seed + epoch``) and restart it from its first batch."""
        self.epoch, self._start = epoch, 0

    def __iter__(self) -> Iterator[np.ndarray]:
        mine = self._global_batches()[self.rank :: self.world_size]
        start, self._start = self._start, 0
        for position in range(start, len(mine)):
            yield mine[position]

    def __len__(self) -> int:
        """Batches per epoch on this rank, without building the epoch's plan."""
        return math.ceil(self.batches_per_epoch / self.world_size)

    def state_dict(self, consumed: int) -> dict[str, Any]:
        """State to resume from after ``consumed`` batches of the current epoch were trained on."""
        return {"seed": self.seed, "epoch": self.epoch, "consumed": consumed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume: the next iteration continues the saved epoch after its consumed batches.

        Raises:
            ValueError: the state was saved with another seed.
        """
        if state["seed"] != self.seed:
            raise ValueError(f"sampler state has seed {state['seed']}, this sampler {self.seed}")
        self.epoch, self._start = int(state["epoch"]), int(state["consumed"])


class RandomBatchSampler(_EpochBatchSampler):
    """Plain shuffled batches of every row, ``ceil(N / B)`` per epoch (Table 4's unweighted sampler)."""

    def _plan(self, rng: np.random.Generator) -> list[np.ndarray]:
        order = rng.permutation(self.n_rows)
        return [order[i : i + self.batch_size] for i in range(0, self.n_rows, self.batch_size)]


_STREAM_KEY = 7_919  # separates the filler stream's generators from the epoch generators


class LabelBalancedSampler(_EpochBatchSampler):
    """Batches that hold a known positive of every label, plus rows drawn from all of the corpus.

    With ``B > L`` each batch holds one known positive of every label (``P = L`` positive slots, a random
    positive per label) and ``F = B - L`` rows of a *filler stream*: consecutive permutations of all rows,
    so rows with no known positive are trained on too (unlike ``ClassCycleSampler``, which never draws
    them). With ``B <= L`` a quarter of the batch (``F >= 1``) stays for the filler stream and the labels
    rotate through the other ``P`` slots, so every label is covered once every ``ceil(L / P)`` batches.

    An epoch has ``ceil(N / B)`` batches, as a plain sampler (the paper's Table 4: training time like the
    unweighted sampler). Epoch ``e`` takes stream positions ``[e K F, (e + 1) K F)``, ``K`` its batches, so
    every row is drawn at least once in any ``ceil((2N - 1) / (K F))`` consecutive epochs. Rows appear at
    most once per batch: when labels share a positive, or the stream repeats a row, random other rows top
    the batch up to ``B``.

    Args:
        known: known-positive matrix ``(N, L)``, any dtype, nonzero = known positive.
        batch_size: rows per batch ``B`` (capped at ``N``).
        seed: base seed; epoch ``e`` uses ``(seed, e)``.
        rank, world_size: shard of the batch plan this sampler yields.

    Labels with no known positive are left out of the balancing (``L`` below counts the others).

    Raises:
        ValueError: no label has a known positive, or bad sizes.
    """

    def __init__(self, known: np.ndarray, batch_size: int, *, seed: int = 0, rank: int = 0,
                 world_size: int = 1) -> None:
        known = np.asarray(known).astype(bool)
        super().__init__(known.shape[0], batch_size, seed=seed, rank=rank, world_size=world_size)
        counts = known.sum(axis=0)  # (L,)
        self.active = np.flatnonzero(counts > 0)  # labels balanced: those with a known positive
        if self.active.size == 0:
            raise ValueError("no label has a known positive: nothing to balance")
        # CSR of positives per label: rows of label l are _pos_rows[_offsets[l]:_offsets[l + 1]]
        _, row_of = np.nonzero(known.T)  # sorted by label
        self._pos_rows, self._counts = row_of, counts
        self._offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        n_labels = self.n_labels = int(self.active.size)
        b = self.batch_size
        self.positive_slots = n_labels if b > n_labels else b - max(1, b // 4)
        self.fill_slots = b - self.positive_slots

    def _stream(self, start: int, length: int) -> np.ndarray:
        """Positions ``[start, start + length)`` of the filler stream, permutation ``k`` seeded (seed, k)."""
        n = self.n_rows
        first, last = start // n, (start + length - 1) // n
        perms = [np.random.default_rng([self.seed, _STREAM_KEY, k]).permutation(n) for k in range(first, last + 1)]
        offset = start - first * n
        return np.concatenate(perms)[offset : offset + length]

    def _top_up(self, used: np.ndarray, need: int, rng: np.random.Generator) -> np.ndarray:
        """``need`` random rows not in ``used``."""
        candidates = np.unique(rng.integers(0, self.n_rows, size=4 * need + 8))
        candidates = rng.permutation(candidates[~np.isin(candidates, used)])
        if candidates.size < need:  # tiny corpora
            candidates = rng.permutation(np.setdiff1d(np.arange(self.n_rows), used))
        return candidates[:need]

    def _plan(self, rng: np.random.Generator) -> list[np.ndarray]:
        b, p, f, k = self.batch_size, self.positive_slots, self.fill_slots, self.batches_per_epoch
        # label of slot j in batch i: all labels, or a rotation when B <= L
        slot_labels = self.active[(np.arange(k)[:, None] * p + np.arange(p)[None, :]) % self.n_labels]  # (K, P)
        draw = np.floor(rng.random((k, p)) * self._counts[slot_labels]).astype(np.int64)
        positives = self._pos_rows[self._offsets[slot_labels] + draw]  # (K, P) row ids
        windows = self._stream(self.epoch * k * f, k * f).reshape(k, f)  # (K, F) row ids
        batches = []
        for i in range(k):  # a loop over batches (not rows), vectorised within each batch
            chosen = np.union1d(positives[i], windows[i])
            if chosen.size < b:
                chosen = np.concatenate([chosen, self._top_up(chosen, b - chosen.size, rng)])
            batches.append(rng.permutation(chosen))
        return batches


def make_sampler(kind: str, known: np.ndarray, batch_size: int, *, seed: int, rank: int = 0,
                 world_size: int = 1) -> _EpochBatchSampler:
    """Build the ``"balanced"`` (:class:`LabelBalancedSampler`) or ``"random"`` sampler.

    Raises:
        ValueError: unknown kind, or what the sampler raises.
    """
    if kind == "balanced":
        return LabelBalancedSampler(known, batch_size, seed=seed, rank=rank, world_size=world_size)
    if kind == "random":
        return RandomBatchSampler(len(known), batch_size, seed=seed, rank=rank, world_size=world_size)
    raise ValueError(f"unknown sampler {kind!r}; expected 'balanced' or 'random'")
