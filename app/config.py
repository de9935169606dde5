"""Service settings: one pydantic-settings class, read from ``DALLMI_*`` environment variables."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_HOME = Path(".dallmi")


class Settings(BaseSettings):
    """Everything the API and the worker read from the environment (prefix ``DALLMI_``)."""

    model_config = SettingsConfigDict(env_prefix="DALLMI_", env_file=".env", extra="ignore")

    database_url: str = f"sqlite:///{DEFAULT_HOME}/dallmi.db"
    """SQLAlchemy URL; ``postgresql+psycopg://...`` in production, SQLite for the embedded mode."""
    broker_url: str = "filesystem://"
    """Celery broker; ``redis://...`` in production, ``filesystem://`` (no server) for the embedded mode."""
    artifacts_dir: Path = DEFAULT_HOME / "artifacts"
    """Uploaded corpora, job training state and model checkpoints (a shared volume in compose)."""
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    """Largest accepted corpus upload; a larger one gets 413."""
    train_queue: str = "train"
    """Celery queue the training tasks go to."""
    visibility_timeout_s: int = Field(default=6 * 3600, gt=0)
    """Redis: seconds before an unacknowledged task is delivered again; only a backstop, the reaper rescues
    the jobs of dead workers (see ``heartbeat_timeout_s``)."""
    heartbeat_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    """A running job whose heartbeat is older than this is orphaned: the reaper queues it again."""
    model_cache_size: int = Field(default=4, ge=1)
    """How many model versions the API keeps loaded for prediction."""
    predict_batch_size: int = Field(default=32, ge=1)
    """Largest micro-batch of texts scored in one forward pass."""
    predict_batch_wait_ms: float = Field(default=5.0, ge=0)
    """How long a prediction waits for other requests to join its micro-batch."""
    max_predict_texts: int = Field(default=256, ge=1)
    """Most texts in one ``POST /predict``."""
    builtin_base_model: str = "minilm-l6"
    """Base model registered on first start."""
    device: str = "auto"
    """Torch device for prediction in the API process."""

    # --- limits of what one request may ask for (issue 9, findings 4-5: validation at the door) ---
    max_corpus_rows: int = Field(default=1_000_000, ge=1)
    """Most rows of one uploaded corpus; a larger one gets 422."""
    max_corpus_labels: int = Field(default=1000, ge=1)
    """Most labels of one uploaded corpus."""
    max_job_epochs: int = Field(default=100, ge=1)
    """Most epochs one job may run (after ``min_steps`` raised them); more gets 422 at submission."""
    max_job_steps: int = Field(default=200_000, ge=1)
    """Most optimiser steps one job may run, from its corpus size, batch size, epochs and ``min_steps``."""


    # -- issue #9, prediction under load, body limits (app/predict, app/limits.py) --
    max_json_bytes: int = Field(default=2 * 1024 * 1024, gt=0)
    """Largest request body of every route but the corpus upload; counted as it streams, 413 past it."""
    predict_threads: int = Field(default=1, ge=1)
    """Threads that run prediction forward passes (each uses torch's intra-op threads)."""
    predict_queue_texts: int = Field(default=256, ge=1)
    """Texts that may wait for scoring per loaded version; a request past that gets 503 with Retry-After."""

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("DALLMI_DATABASE_URL must be a sqlite:// or postgresql+psycopg:// URL")
        return value

    @field_validator("broker_url")
    @classmethod
    def _known_broker(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "filesystem://", "sqla+", "amqp://")):
            raise ValueError("DALLMI_BROKER_URL must be redis://, filesystem://, sqla+... or amqp://")
        return value

    @model_validator(mode="after")
    def _absolute_artifacts(self) -> Settings:
        self.artifacts_dir = self.artifacts_dir.expanduser().resolve()
        return self

    @property
    def broker_dir(self) -> Path:
        """Folder of the ``filesystem://`` broker (embedded mode)."""
        return self.artifacts_dir.parent / "broker"

    # --- Authentication and model sources (issue 9, finding 6; see docs/service.md "Security model") ---
    auth: Literal["required", "disabled"] | None = None
    """``required``: every route but ``/health`` and ``/ready`` needs an API key; ``disabled``: none does.
    Unset means required, except that ``dallmi serve`` on a loopback address with no key created yet runs
    without keys (and says so); ``dallmi serve`` refuses a non-loopback address without keys."""
    auth_cache_ttl_s: float = Field(default=30.0, ge=0, le=3600)
    """How long a verified key is remembered per API process; a revoked key stops working within this."""
    model_roots: Annotated[list[Path], NoDecode] = []
    """Folders under which local base models may be registered (``os.pathsep``- or comma-separated)."""
    allow_hub: bool = False
    """Whether base models may be Hugging Face hub names (downloaded by the worker)."""

    @field_validator("model_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        if isinstance(value, str):
            parts = value.replace(",", os.pathsep).split(os.pathsep)
            return [part.strip() for part in parts if part.strip()]
        return value

    @field_validator("model_roots")
    @classmethod
    def _absolute_roots(cls, value: list[Path]) -> list[Path]:
        if any(not root.is_absolute() for root in value):
            raise ValueError("DALLMI_MODEL_ROOTS must list absolute folders")
        return [Path(os.path.realpath(root)) for root in value]

    @property
    def auth_required(self) -> bool:
        """True unless authentication was switched off with ``DALLMI_AUTH=disabled``."""
        return self.auth != "disabled"


    # --- jobs never get lost or stuck (worker liveness, the reaper, supervision) ---
    max_attempts: int = Field(default=3, ge=1)
    """Runs a job may start; a job whose worker is lost this many times is failed (a retry grants one more)."""
    heartbeat_interval_s: float = Field(default=10.0, gt=0)
    """How often a worker writes its heartbeats and runs the reaper (at most a quarter of the timeout)."""
    ready_requires_worker: bool = True
    """``/ready`` answers 503 when no training worker has sent a heartbeat within ``heartbeat_timeout_s``."""
    supervisor_backoff_max_s: float = Field(default=60.0, gt=0)
    """``dallmi serve``: longest wait before restarting a worker that keeps dying."""
    worker_stop_timeout_s: float = Field(default=120.0, gt=0)
    """``dallmi serve``: how long a stopping worker may take to pause its job before it is killed."""

    @property
    def beat_every_s(self) -> float:
        """Seconds between two heartbeats of a worker: ``heartbeat_interval_s``, at most a quarter of the timeout."""
        return min(self.heartbeat_interval_s, self.heartbeat_timeout_s / 4)


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once; tests replace it through ``app.dependency_overrides``."""
    return Settings()


SettingsDep = Annotated[Settings, Depends(get_settings)]
