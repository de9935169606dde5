"""A bounded cache of loaded model versions, each with a micro-batcher, living in the API process.

Scoring never runs on the event loop's default thread pool (which also serves database lookups and sync
routes): every forward pass goes to the cache's own executor of ``threads`` threads, and the texts waiting
for it are bounded (``max_pending``); past that bound a request is refused at once with
:class:`~app.errors.OverloadedError` (503 with ``Retry-After``) instead of queueing without end.
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app import metrics
from app.errors import OverloadedError
from dallmi_core import Predictor, verify_checkpoint


@dataclass(frozen=True)
class VersionFiles:
    """What the cache needs to load a version: its id, checkpoint folder and recorded checksums."""

    version_id: int
    path: Path
    checksums: dict[str, str]


class MicroBatcher:
    """Joins texts of concurrent requests into one forward pass, run on the cache's scoring executor.

    A request waits at most ``wait_s`` for others to join (``arrival_wait_s`` more while requests are still
    resolving their model), and a batch holds at most ``max_batch`` texts (a single larger request still
    runs whole). At most ``max_pending`` texts wait or run at once;
    a request that would pass that bound is refused (a request arriving at an empty batcher always runs).
    """

    def __init__(
        self,
        predict: Callable[[list[str]], np.ndarray],
        *,
        max_batch: int,
        wait_s: float,
        executor: ThreadPoolExecutor,
        max_pending: int,
        arriving: Callable[[], int] = lambda: 0,
    ) -> None:
        self._predict, self.max_batch, self.wait_s = predict, max_batch, wait_s
        self._executor, self.max_pending, self._arriving = executor, max_pending, arriving
        self.arrival_wait_s = max(10 * wait_s, 0.05)
        self._queue: asyncio.Queue[tuple[list[str], asyncio.Future]] = asyncio.Queue()
        self._runner: asyncio.Task | None = None
        self.forward_passes = 0
        self.pending_texts = 0
        self._s_per_text = 0.01  # running estimate of scoring time per text, for Retry-After

    def retry_after_s(self) -> int:
        """Whole seconds until the texts now pending are likely scored (at least 1)."""
        return max(1, math.ceil(self.pending_texts * self._s_per_text))

    async def score(self, texts: list[str]) -> np.ndarray:
        """Scores ``(len(texts), L)`` for these texts.

        Raises:
            OverloadedError: ``max_pending`` texts are already waiting (503 with ``Retry-After``).
        """
        if self.pending_texts and self.pending_texts + len(texts) > self.max_pending:
            metrics.PREDICT_REJECTED.inc()
            raise OverloadedError(
                f"prediction queue is full ({self.pending_texts} texts waiting); retry later",
                retry_after_s=self.retry_after_s(),
            )
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self.pending_texts += len(texts)
        try:
            await self._queue.put((texts, future))
            if self._runner is None or self._runner.done():
                self._runner = asyncio.create_task(self._run())
            return await future
        finally:
            self.pending_texts -= len(texts)

    async def _collect(self) -> list[tuple[list[str], asyncio.Future]]:
        """One batch: the first waiting request and those that join within ``wait_s``.

        While requests are still resolving their model (``arriving() > 0``) the batch waits for them up to
        ``arrival_wait_s`` longer: under load their database lookups lag behind, and a forward pass started
        without them is a small, slow one.
        """
        batch = [await self._queue.get()]
        size, loop = len(batch[0][0]), asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        while size < self.max_batch:
            end = deadline + self.arrival_wait_s if self._arriving() else deadline
            if (timeout := end - loop.time()) <= 0:
                break
            timeout = min(timeout, max(self.wait_s, 0.001))  # look at arriving() again at least this often
            try:
                item = await asyncio.wait_for(self._queue.get(), timeout)
            except TimeoutError:
                continue
            batch.append(item)
            size += len(item[0])
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._queue.empty():
            batch = await self._collect()
            texts = [text for request, _ in batch for text in request]
            started = loop.time()
            try:
                scores = await loop.run_in_executor(self._executor, self._predict, texts)  # (N, L)
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self._s_per_text = 0.8 * self._s_per_text + 0.2 * (loop.time() - started) / len(texts)
            self.forward_passes += 1
            metrics.PREDICT_BATCH_TEXTS.observe(len(texts))
            start = 0
            for request, future in batch:
                if not future.done():
                    future.set_result(scores[start : start + len(request)])
                start += len(request)

    def close(self) -> None:
        """Stop the runner task."""
        if self._runner is not None:
            self._runner.cancel()


@dataclass
class LoadedModel:
    """A loaded version: its predictor and micro-batcher."""

    predictor: Predictor
    batcher: MicroBatcher
    labels: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.labels = list(self.predictor.labels)


class ModelCache:
    """Least-recently-used cache of at most ``max_size`` loaded versions; checksums verified on load.

    Args:
        threads: scoring threads shared by every loaded version (forward passes run on these only).
        max_pending: texts that may wait for scoring per version before requests get 503.
    """

    def __init__(
        self, *, max_size: int, device: str, max_batch: int, wait_s: float, threads: int = 1, max_pending: int = 256
    ) -> None:
        self.max_size, self.device, self.max_batch, self.wait_s = max_size, device, max_batch, wait_s
        self.max_pending = max_pending
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dallmi-predict")
        self._models: OrderedDict[int, LoadedModel] = OrderedDict()
        self._locks: dict[int, asyncio.Lock] = {}
        self.loads = 0
        self.arriving = 0
        """Prediction requests between their start and their turn in a batcher (see :meth:`arrival`)."""

    @contextmanager
    def arrival(self) -> Iterator[None]:
        """Count a request as arriving while it resolves its model and loads it (batchers wait for it)."""
        self.arriving += 1
        try:
            yield
        finally:
            self.arriving -= 1

    def _load(self, files: VersionFiles) -> Predictor:
        verify_checkpoint(files.path, files.checksums)
        return Predictor.load(files.path, device=self.device)

    def pending_texts(self) -> int:
        """Texts waiting for or in scoring, over every loaded version."""
        return sum(loaded.batcher.pending_texts for loaded in list(self._models.values()))

    async def get(self, files: VersionFiles) -> LoadedModel:
        """The loaded version, loading it (off the event loop, once) on first use."""
        key = files.version_id
        if key in self._models:
            metrics.MODEL_CACHE_HITS.inc()
            self._models.move_to_end(key)
            return self._models[key]
        async with self._locks.setdefault(key, asyncio.Lock()):
            if key not in self._models:
                predictor = await asyncio.to_thread(self._load, files)
                self.loads += 1
                metrics.MODEL_CACHE_LOADS.inc()
                batcher = MicroBatcher(
                    predictor.predict_scores,
                    max_batch=self.max_batch,
                    wait_s=self.wait_s,
                    executor=self.executor,
                    max_pending=self.max_pending,
                    arriving=lambda: self.arriving,
                )
                self._models[key] = LoadedModel(predictor=predictor, batcher=batcher)
                while len(self._models) > self.max_size:
                    _, evicted = self._models.popitem(last=False)
                    evicted.batcher.close()
            else:
                metrics.MODEL_CACHE_HITS.inc()
        self._models.move_to_end(key)
        return self._models[key]

    def close(self) -> None:
        """Drop every loaded model and stop the scoring threads."""
        for loaded in self._models.values():
            loaded.batcher.close()
        self._models.clear()
        self.executor.shutdown(wait=False, cancel_futures=True)
