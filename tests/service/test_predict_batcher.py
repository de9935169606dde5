"""The micro-batcher's own rules: a bounded queue, and waiting for requests still resolving their model."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from app.errors import OverloadedError
from app.predict.cache import MicroBatcher


def _scores(calls: list[list[str]]):
    def predict(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.arange(len(texts), dtype=np.float32)[:, None]  # (N, 1)

    return predict


def test_a_request_still_resolving_its_model_joins_the_forward_pass():
    calls: list[list[str]] = []
    arriving = {"n": 1}

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as executor:
            batcher = MicroBatcher(
                _scores(calls), max_batch=8, wait_s=0.001, executor=executor, max_pending=8,
                arriving=lambda: arriving["n"],
            )  # fmt: skip
            batcher.arrival_wait_s = 30.0
            first = asyncio.create_task(batcher.score(["a"]))
            await asyncio.sleep(0.1)  # far past wait_s: without the arrival rule "a" runs alone
            second = asyncio.create_task(batcher.score(["b"]))
            await asyncio.sleep(0.1)
            arriving["n"] = 0  # nobody else is on the way: the batch is complete
            assert (await first)[0, 0] == 0 and (await second)[0, 0] == 1

    asyncio.run(scenario())
    assert calls == [["a", "b"]]


def test_a_full_queue_refuses_with_a_retry_after_and_an_empty_one_takes_any_size():
    async def scenario() -> None:
        with ThreadPoolExecutor(1) as executor:
            batcher = MicroBatcher(_scores([]), max_batch=4, wait_s=0.05, executor=executor, max_pending=3)
            big = await batcher.score(["x"] * 10)  # alone in the queue: runs whole
            assert big.shape == (10, 1)
            waiting = [asyncio.create_task(batcher.score([str(i)])) for i in range(3)]
            await asyncio.sleep(0)
            with pytest.raises(OverloadedError) as refused:
                await batcher.score(["one too many"])
            assert refused.value.retry_after_s >= 1 and refused.value.status_code == 503
            await asyncio.gather(*waiting)
            assert batcher.pending_texts == 0

    asyncio.run(scenario())
