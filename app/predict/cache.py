"""A bounded cache of loaded model versions, each with a micro-batcher, living in the API process."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dallmi_core import Predictor, verify_checkpoint


@dataclass(frozen=True)
class VersionFiles:
    """What the cache needs to load a version: its id, checkpoint folder and recorded checksums."""

    version_id: int
    path: Path
    checksums: dict[str, str]


class MicroBatcher:
    """Joins texts of concurrent requests into one forward pass, run in a worker thread.

    A request waits at most ``wait_s`` for others to join, and a batch holds at most ``max_batch``
    texts (a single larger request still runs whole).
    """

    def __init__(self, predict: Callable[[list[str]], np.ndarray], *, max_batch: int, wait_s: float) -> None:
        self._predict, self.max_batch, self.wait_s = predict, max_batch, wait_s
        self._queue: asyncio.Queue[tuple[list[str], asyncio.Future]] = asyncio.Queue()
        self._runner: asyncio.Task | None = None
        self.forward_passes = 0

    async def score(self, texts: list[str]) -> np.ndarray:
        """Scores ``(len(texts), L)`` for these texts."""
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        await self._queue.put((texts, future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        return await future

    async def _collect(self) -> list[tuple[list[str], asyncio.Future]]:
        batch = [await self._queue.get()]
        size, loop = len(batch[0][0]), asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        while size < self.max_batch and (timeout := deadline - loop.time()) > 0:
            try:
                item = await asyncio.wait_for(self._queue.get(), timeout)
            except TimeoutError:
                break
            batch.append(item)
            size += len(item[0])
        return batch

    async def _run(self) -> None:
        while not self._queue.empty():
            batch = await self._collect()
            texts = [text for request, _ in batch for text in request]
            try:
                scores = await asyncio.to_thread(self._predict, texts)  # (N, L)
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.forward_passes += 1
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
    """Least-recently-used cache of at most ``max_size`` loaded versions; checksums verified on load."""

    def __init__(self, *, max_size: int, device: str, max_batch: int, wait_s: float) -> None:
        self.max_size, self.device, self.max_batch, self.wait_s = max_size, device, max_batch, wait_s
        self._models: OrderedDict[int, LoadedModel] = OrderedDict()
        self._locks: dict[int, asyncio.Lock] = {}
        self.loads = 0

    def _load(self, files: VersionFiles) -> Predictor:
        verify_checkpoint(files.path, files.checksums)
        return Predictor.load(files.path, device=self.device)

    async def get(self, files: VersionFiles) -> LoadedModel:
        """The loaded version, loading it (off the event loop, once) on first use."""
        key = files.version_id
        if key in self._models:
            self._models.move_to_end(key)
            return self._models[key]
        async with self._locks.setdefault(key, asyncio.Lock()):
            if key not in self._models:
                predictor = await asyncio.to_thread(self._load, files)
                self.loads += 1
                batcher = MicroBatcher(predictor.predict_scores, max_batch=self.max_batch, wait_s=self.wait_s)
                self._models[key] = LoadedModel(predictor=predictor, batcher=batcher)
                while len(self._models) > self.max_size:
                    _, evicted = self._models.popitem(last=False)
                    evicted.batcher.close()
        self._models.move_to_end(key)
        return self._models[key]

    def close(self) -> None:
        """Drop every loaded model."""
        for loaded in self._models.values():
            loaded.batcher.close()
        self._models.clear()
