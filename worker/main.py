"""Worker entry point: ``celery -A worker.main worker --pool solo -Q train``."""

from app.config import get_settings
from worker import tasks  # noqa: F401  (registers the tasks on the app below)
from worker.celery_app import make_celery

celery_app = make_celery(get_settings())
