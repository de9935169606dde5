# syntax=docker/dockerfile:1
# CUDA training worker: one Celery worker, solo pool, one job at a time on the GPU it is given.
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    DALLMI_ARTIFACTS_DIR=/data/artifacts

WORKDIR /srv/dallmi

COPY pyproject.toml README.md alembic.ini ./
COPY dallmi_core ./dallmi_core
COPY app ./app
COPY worker ./worker
COPY migrations ./migrations
# torch comes with the base image (CUDA build); pip keeps it since it satisfies "torch>=2.2".
RUN pip install -e . \
    && groupadd --system --gid 10001 dallmi \
    && useradd --system --uid 10001 --gid dallmi --home-dir /srv/dallmi dallmi \
    && mkdir -p /data/artifacts \
    && chown -R dallmi:dallmi /data

USER 10001:10001
HEALTHCHECK --interval=30s --timeout=15s --start-period=60s --retries=3 \
    CMD ["sh", "-c", "celery -A worker.main inspect ping --destination celery@$(hostname) --timeout 10"]
# Warm shutdown on SIGTERM finishes nothing mid-way: an interrupted job is redelivered (acks_late) and
# resumes from its last epoch checkpoint on the shared artifact volume.
STOPSIGNAL SIGTERM
CMD ["celery", "-A", "worker.main", "worker", "--pool", "solo", "--queues", "train", "--loglevel", "INFO", "--hostname", "celery@%h"]
