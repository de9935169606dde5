"""Pydantic schemas of the jobs API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.fields import DbId, LabelMap, UtcDatetime
from app.jobs.params import TrainParams
from app.models.schemas import ModelName, ModelRef


class FinetuneCreate(BaseModel):
    """Supervised fine-tuning of a base model on a fully labelled source corpus."""

    corpus_id: DbId
    base_model: ModelRef
    name: ModelName = Field(description="model name the resulting version is registered under")
    eval_corpus_id: DbId | None = None
    params: TrainParams = Field(  # type: ignore[valid-type]
        default_factory=TrainParams, description="dallmi_core.TrainConfig fields; unset ones come from the preset"
    )

    def train_params(self) -> dict:
        """The parameters the request set, as ``TrainConfig.from_dict`` takes them."""
        return self.params.model_dump(exclude_unset=True)


class AdaptCreate(FinetuneCreate):
    """Adaptation of a fine-tuned model to a partially labelled target corpus."""

    method: Literal["dallmi", "bce"] = "dallmi"
    label_map: LabelMap | None = Field(
        default=None, description="target label -> base model label, where the names differ"
    )


class JobSubmitted(BaseModel):
    """Answer to a submission."""

    job_id: int
    status: str


class JobProgress(BaseModel):
    """Where a running job is."""

    model_config = ConfigDict(from_attributes=True)

    epoch: int
    epochs: int
    step: int
    total_steps: int
    loss: float | None
    eta_s: float | None


class JobPublic(BaseModel):
    """A job with its progress, per-epoch metrics and result."""

    id: int
    kind: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    name: str
    method: str
    corpus_id: int | None
    eval_corpus_id: int | None
    base_model: str
    params: dict
    label_map: dict[str, str] | None
    progress: JobProgress
    metrics: list[dict]
    error: str | None
    cancel_requested: bool
    attempts: int = Field(description="runs started; a job whose worker is lost DALLMI_MAX_ATTEMPTS times fails")
    heartbeat_at: UtcDatetime | None = Field(description=(
        "last sign of life of the worker running the job (every few seconds); older than DALLMI_HEARTBEAT_TIMEOUT_S "
        "means the worker died and the job is about to be queued again"))
    result_version: str | None
    warnings: list[str] = Field(default_factory=list, description=(
        "What the user should check in the result: labels whose scores collapsed towards positive, labels "
        "not adapted for want of a known positive (from the result version's metrics)"))
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None


class JobsPublic(BaseModel):
    """A page of jobs."""

    data: list[JobPublic]
    count: int


def _warnings(metrics: dict | None) -> list[str]:
    """The collapse guard's warnings and the labels left as the source model had them."""
    metrics = metrics or {}
    out = [str(w) for w in metrics.get("warnings") or []]
    if metrics.get("labels_not_adapted"):
        out.append("not adapted (no known positive; kept as the source model had them): "
                   + ", ".join(map(str, metrics["labels_not_adapted"])))
    return out


def job_public(job) -> JobPublic:
    """The public form of a ``Job`` row."""
    return JobPublic(
        id=job.id,
        kind=job.kind,
        status=job.status,
        name=job.name,
        method=job.method,
        corpus_id=job.corpus_id,
        eval_corpus_id=job.eval_corpus_id,
        base_model=job.base_version.ref,
        params=job.params,
        label_map=job.label_map,
        progress=JobProgress.model_validate(job),
        metrics=[e.metrics for e in job.epoch_metrics],
        error=job.error,
        cancel_requested=job.cancel_requested,
        attempts=job.attempts,
        heartbeat_at=job.heartbeat_at,
        result_version=job.result_version.ref if job.result_version else None,
        warnings=_warnings(job.result_version.metrics if job.result_version else None),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )
