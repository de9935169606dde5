"""The Celery application, configured from the service settings.

Start a worker with ``celery -A worker.main worker --pool solo -Q train``: one job per GPU, so one
solo worker per GPU with ``CUDA_VISIBLE_DEVICES`` set per worker.
"""

from __future__ import annotations

from celery import Celery

from app.config import Settings

TRAIN_TASK = "dallmi.train"


def _transport_options(settings: Settings) -> dict:
    if settings.broker_url.startswith("filesystem://"):
        folder = settings.broker_dir
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
        }
    # Redis: a task of a killed worker is delivered again after this many seconds; it must be longer
    # than any job, or a second worker would start the same job (the heartbeat check then skips it).
    return {
        "visibility_timeout": settings.visibility_timeout_s,
        "unacked_restore_throttle": 1,
    }


def make_celery(settings: Settings) -> Celery:
    """A Celery app for these settings: late acks, no result backend, one task at a time."""
    app = Celery("dallmi", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        broker_transport_options=_transport_options(settings),
        broker_connection_retry_on_startup=True,
        # A task is acknowledged only when it returns: a worker killed mid-job (SIGKILL, OOM, lost
        # node) leaves the message unacknowledged so the broker delivers it again and the job resumes
        # from its last epoch checkpoint. reject_on_worker_lost re-queues it also when a prefork child
        # dies under a live parent.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # A training job takes minutes to hours: fetch one at a time so none waits behind a busy worker.
        worker_prefetch_multiplier=1,
        # Results live in the database (jobs table); nothing is stored in a result backend.
        task_ignore_result=True,
        result_backend=None,
        task_default_queue=settings.train_queue,
        task_routes={TRAIN_TASK: {"queue": settings.train_queue}},
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        worker_enable_remote_control=not settings.broker_url.startswith("filesystem://"),
    )
    app.conf.imports = ("worker.tasks",)  # registered when a worker boots; the API only sends by name
    return app
