"""Sharding gives every rank the same number of batches, even when an epoch has fewer batches than ranks."""
import numpy as np

from dallmi_core import LabelBalancedSampler, RandomBatchSampler


def test_random_sampler_ranks_get_equal_batches_when_plan_is_short():
    shards = [RandomBatchSampler(4, 4, rank=r, world_size=3) for r in range(3)]
    counts = [len(list(s)) for s in shards]
    assert counts == [1, 1, 1], counts  # before the fix [1, 1, 0]
    assert [len(s) for s in shards] == counts  # before the fix len() is 0 on every rank


def test_balanced_sampler_ranks_get_equal_batches_when_plan_is_short():
    known = np.array([[1, 0], [0, 1], [0, 0], [0, 0]], dtype=bool)
    assert len(LabelBalancedSampler(known, 4)) == 1
    shards = [LabelBalancedSampler(known, 4, rank=r, world_size=5) for r in range(5)]
    counts = [len(list(s)) for s in shards]
    assert len(set(counts)) == 1, counts  # before the fix [1, 1, 1, 1, 0]
