# syntax=docker/dockerfile:1
# API image: FastAPI + uvicorn; CPU PyTorch for prediction. Also runs the migrate (prestart) step.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    DALLMI_ARTIFACTS_DIR=/data/artifacts

WORKDIR /srv/dallmi

# CPU wheels of torch first, so the project's "torch>=2.2" does not pull the CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.5.1"

COPY pyproject.toml README.md alembic.ini ./
COPY dallmi_core ./dallmi_core
COPY app ./app
COPY worker ./worker
COPY migrations ./migrations
RUN pip install -e . \
    && groupadd --system --gid 10001 dallmi \
    && useradd --system --uid 10001 --gid dallmi --home-dir /srv/dallmi dallmi \
    && mkdir -p /data/artifacts \
    && chown -R dallmi:dallmi /data

USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers"]
