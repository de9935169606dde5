"""Property tests of dallmi_core.sampler: the label-balanced sampler (paper section 3) and the random one."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dallmi_core import LabelBalancedSampler, RandomBatchSampler, make_sampler

SETTINGS = settings(max_examples=50, deadline=None)


@st.composite
def known_matrices(draw: st.DrawFn, min_rows: int = 2) -> np.ndarray:
    """A known-positive matrix (N, L): every label has >= 1 positive and >= 1 row has no positive."""
    n_labels = draw(st.integers(1, 6))
    n_rows = draw(st.integers(max(min_rows, 2), 30))
    density = draw(st.floats(0.05, 0.9))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    known = rng.random((n_rows, n_labels)) < density
    n_empty = draw(st.integers(1, n_rows - 1))
    known[n_rows - n_empty :] = False  # rows with no known positive
    for label in np.flatnonzero(~known.any(axis=0)):
        known[rng.integers(0, n_rows - n_empty), label] = True
    assert known.any(axis=0).all() and (~known.any(axis=1)).any()
    return known


def _epoch(sampler: LabelBalancedSampler | RandomBatchSampler, epoch: int = 0) -> list[np.ndarray]:
    sampler.set_epoch(epoch)
    return [np.asarray(b) for b in sampler]


def _batch_size(data: st.DataObject, n_labels: int, above_labels: bool) -> int:
    if above_labels:
        return data.draw(st.integers(n_labels + 1, n_labels + 8), label="batch_size")
    return data.draw(st.integers(2, max(2, n_labels)), label="batch_size")


@SETTINGS
@given(known=known_matrices(), data=st.data(), above=st.booleans(), seed=st.integers(0, 1000))
def test_balanced_batches_are_distinct_rows_of_full_size(known: np.ndarray, data: st.DataObject, above: bool,
                                                         seed: int) -> None:
    n_rows, n_labels = known.shape
    batch_size = _batch_size(data, n_labels, above)
    sampler = LabelBalancedSampler(known, batch_size, seed=seed)
    assert sampler.batch_size == min(batch_size, n_rows)
    batches = _epoch(sampler)
    assert len(batches) == len(sampler)
    assert len(batches) == math.ceil(n_rows / sampler.batch_size)  # as many steps as a plain sampler
    for batch in batches:
        assert batch.shape == (min(batch_size, n_rows),)
        assert np.issubdtype(batch.dtype, np.integer)
        assert len(set(batch.tolist())) == batch.size, "a row twice in one batch"
        assert ((batch >= 0) & (batch < n_rows)).all()
    # the epoch's stretch of the filler stream (permutations of all rows) is in the epoch's batches
    seen = np.unique(np.concatenate(batches))
    stretch = sampler._stream(0, len(batches) * sampler.fill_slots)
    assert set(stretch.tolist()) <= set(seen.tolist())
    # every row, including the rows with no known positive, is drawn within ceil((2N - 1) / (K F)) epochs
    span = math.ceil((2 * n_rows - 1) / (len(batches) * sampler.fill_slots))
    drawn = set()
    for epoch in range(span):
        sampler.set_epoch(epoch)
        drawn.update(np.concatenate(list(sampler)).tolist())
    assert drawn == set(range(n_rows))


@SETTINGS
@given(known=known_matrices(), extra=st.integers(1, 8), seed=st.integers(0, 1000), epoch=st.integers(0, 3))
def test_balanced_every_batch_has_every_label_when_batch_exceeds_labels(known: np.ndarray, extra: int,
                                                                        seed: int, epoch: int) -> None:
    n_rows, n_labels = known.shape
    assume(n_rows > n_labels)
    batch_size = min(n_rows, n_labels + extra)
    sampler = LabelBalancedSampler(known, batch_size, seed=seed)
    assert sampler.positive_slots == n_labels
    for batch in _epoch(sampler, epoch):
        covered = known[batch].any(axis=0)
        assert covered.all(), f"labels {np.flatnonzero(~covered).tolist()} missing from batch {batch.tolist()}"


@SETTINGS
@given(known=known_matrices(), data=st.data(), seed=st.integers(0, 1000), epoch=st.integers(0, 3))
def test_balanced_labels_rotate_when_batch_at_most_labels(known: np.ndarray, data: st.DataObject, seed: int,
                                                          epoch: int) -> None:
    n_rows, n_labels = known.shape
    assume(n_labels >= 2)
    batch_size = data.draw(st.integers(2, n_labels), label="batch_size")
    sampler = LabelBalancedSampler(known, batch_size, seed=seed)
    slots = sampler.positive_slots
    assert 1 <= slots < sampler.batch_size  # at least one slot is left to the all-rows stream
    window = math.ceil(n_labels / slots)
    batches = _epoch(sampler, epoch)
    for start in range(0, len(batches) - window + 1):
        covered = np.zeros(n_labels, dtype=bool)
        for batch in batches[start : start + window]:
            covered |= known[batch].any(axis=0)
        assert covered.all(), f"window {start}..{start + window - 1} misses labels {np.flatnonzero(~covered)}"


@SETTINGS
@given(known=known_matrices(min_rows=8), data=st.data(), above=st.booleans(), seed=st.integers(0, 1000),
       epoch=st.integers(0, 5))
def test_balanced_is_seeded_per_epoch(known: np.ndarray, data: st.DataObject, above: bool, seed: int,
                                      epoch: int) -> None:
    batch_size = _batch_size(data, known.shape[1], above)
    a = _epoch(LabelBalancedSampler(known, batch_size, seed=seed), epoch)
    b = _epoch(LabelBalancedSampler(known, batch_size, seed=seed), epoch)
    assert [x.tolist() for x in a] == [x.tolist() for x in b]
    other = _epoch(LabelBalancedSampler(known, batch_size, seed=seed), epoch + 1)
    assert [x.tolist() for x in a] != [x.tolist() for x in other]
    # iterating the same sampler twice replays the epoch
    sampler = LabelBalancedSampler(known, batch_size, seed=seed)
    sampler.set_epoch(epoch)
    assert [x.tolist() for x in sampler] == [x.tolist() for x in sampler] == [x.tolist() for x in a]


def _flat(batches: list[np.ndarray]) -> list[list[int]]:
    return [np.asarray(b).tolist() for b in batches]


@SETTINGS
@given(known=known_matrices(), data=st.data(), above=st.booleans(), seed=st.integers(0, 1000),
       epoch=st.integers(0, 3), kind=st.sampled_from(["balanced", "random"]))
def test_resume_yields_exactly_the_remaining_batches(known: np.ndarray, data: st.DataObject, above: bool,
                                                     seed: int, epoch: int, kind: str) -> None:
    batch_size = _batch_size(data, known.shape[1], above)
    sampler = make_sampler(kind, known, batch_size, seed=seed)
    full = _flat(_epoch(sampler, epoch))
    consumed = data.draw(st.integers(0, len(full)), label="consumed")
    sampler.set_epoch(epoch)
    iterator = iter(sampler)
    taken = [next(iterator).tolist() for _ in range(consumed)]
    assert taken == full[:consumed]
    state = sampler.state_dict(consumed)
    fresh = make_sampler(kind, known, batch_size, seed=seed)
    fresh.load_state_dict(state)
    assert fresh.epoch == epoch
    assert _flat(list(fresh)) == full[consumed:]
    # the resume offset applies once: the next iteration is the whole epoch again
    assert _flat(list(fresh)) == full


def test_load_state_dict_rejects_another_seed() -> None:
    known = np.eye(3, dtype=bool)
    state = LabelBalancedSampler(known, 2, seed=1).state_dict(1)
    with pytest.raises(ValueError, match="seed"):
        LabelBalancedSampler(known, 2, seed=2).load_state_dict(state)


def _check_shards(make: object, world_size: int) -> None:
    single = _flat(list(make(0, 1)))  # type: ignore[operator]
    shards = [make(rank, world_size) for rank in range(world_size)]  # type: ignore[operator]
    mine = [_flat(list(s)) for s in shards]
    lengths = {len(m) for m in mine}
    assert len(lengths) == 1, f"ranks got {[len(m) for m in mine]} batches"
    assert {len(s) for s in shards} == lengths
    per_rank = lengths.pop()
    assert per_rank == math.ceil(len(single) / world_size)
    # position i of the padded plan goes to rank i % W: together the ranks hold every position once
    padded = [single[i % len(single)] for i in range(per_rank * world_size)]
    for position, batch in enumerate(padded):
        assert mine[position % world_size][position // world_size] == batch


@SETTINGS
@given(known=known_matrices(), data=st.data(), above=st.booleans(), seed=st.integers(0, 1000),
       world_size=st.integers(1, 4))
def test_balanced_shards_partition_the_plan(known: np.ndarray, data: st.DataObject, above: bool, seed: int,
                                            world_size: int) -> None:
    batch_size = _batch_size(data, known.shape[1], above)
    assume(len(LabelBalancedSampler(known, batch_size, seed=seed)) >= world_size)

    def make(rank: int, size: int) -> LabelBalancedSampler:
        return LabelBalancedSampler(known, batch_size, seed=seed, rank=rank, world_size=size)

    _check_shards(make, world_size)


@SETTINGS
@given(n_rows=st.integers(1, 40), batch_size=st.integers(1, 12), seed=st.integers(0, 1000),
       world_size=st.integers(1, 4))
def test_random_shards_partition_the_plan(n_rows: int, batch_size: int, seed: int, world_size: int) -> None:
    assume(math.ceil(n_rows / batch_size) >= world_size)

    def make(rank: int, size: int) -> RandomBatchSampler:
        return RandomBatchSampler(n_rows, batch_size, seed=seed, rank=rank, world_size=size)

    _check_shards(make, world_size)


@SETTINGS
@given(n_rows=st.integers(1, 40), batch_size=st.integers(1, 12), seed=st.integers(0, 1000),
       epoch=st.integers(0, 3))
def test_random_sampler_covers_every_row_once(n_rows: int, batch_size: int, seed: int, epoch: int) -> None:
    sampler = RandomBatchSampler(n_rows, batch_size, seed=seed)
    batches = _epoch(sampler, epoch)
    assert len(batches) == len(sampler) == math.ceil(n_rows / batch_size)
    assert sorted(np.concatenate(batches).tolist()) == list(range(n_rows))
    assert all(b.size == min(batch_size, n_rows) for b in batches[:-1])
    assert _flat(_epoch(RandomBatchSampler(n_rows, batch_size, seed=seed), epoch)) == _flat(batches)


def test_random_sampler_differs_between_epochs() -> None:
    sampler = RandomBatchSampler(50, 8, seed=3)
    assert _flat(_epoch(sampler, 0)) != _flat(_epoch(sampler, 1))
    assert _flat(_epoch(sampler, 0)) != _flat(_epoch(RandomBatchSampler(50, 8, seed=4), 0))


def test_label_with_no_positive_is_left_out_of_the_balancing() -> None:
    known = np.array([[1, 0, 0], [1, 0, 1], [0, 0, 0], [0, 0, 0], [0, 0, 1], [0, 0, 0]], dtype=bool)
    sampler = LabelBalancedSampler(known, 4, seed=0)
    assert sampler.active.tolist() == [0, 2]
    for epoch in range(5):
        sampler.set_epoch(epoch)
        for batch in sampler:
            assert known[batch][:, 0].any() and known[batch][:, 2].any(), "every batch: a positive of 0 and 2"
    with pytest.raises(ValueError, match="no label has a known positive"):
        make_sampler("balanced", np.zeros((3, 2), dtype=bool), 2, seed=0)
    # the random sampler does not need positives
    assert len(make_sampler("random", known, 2, seed=0)) == 3


def test_bad_arguments_raise() -> None:
    known = np.eye(3, dtype=bool)
    with pytest.raises(ValueError, match="batch_size"):
        LabelBalancedSampler(known, 0)
    with pytest.raises(ValueError, match="rank"):
        LabelBalancedSampler(known, 2, rank=2, world_size=2)
    with pytest.raises(ValueError, match="no rows"):
        RandomBatchSampler(0, 2)
    with pytest.raises(ValueError, match="unknown sampler 'weighted'"):
        make_sampler("weighted", known, 2, seed=0)
    assert isinstance(make_sampler("balanced", known, 2, seed=0), LabelBalancedSampler)
    assert isinstance(make_sampler("random", known, 2, seed=0), RandomBatchSampler)


def test_balanced_sampler_accepts_uint8_and_draws_unlabeled_rows() -> None:
    # 2 labels, 4 labelled rows and 16 rows with no known positive
    known = np.zeros((20, 2), dtype=np.uint8)
    known[[0, 1], 0] = 1
    known[[2, 3], 1] = 1
    sampler = LabelBalancedSampler(known, 6, seed=0)
    batches = _epoch(sampler)
    assert len(batches) == math.ceil(20 / 6)
    for batch in batches:
        assert known[batch].any(axis=0).all()
    counts = np.zeros(20, dtype=int)
    for epoch in range(math.ceil((2 * 20 - 1) / (len(batches) * 4))):
        sampler.set_epoch(epoch)
        counts += np.bincount(np.concatenate(list(sampler)), minlength=20)
    assert (counts[4:] >= 1).all()  # every row with no known positive was trained on
