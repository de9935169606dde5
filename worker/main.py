"""Worker entry point: ``celery -A worker.main worker --pool solo -Q train``."""

from celery import signals

from app.config import get_settings
from app.observability import configure_logging, disable_progress_bars
from worker import tasks  # noqa: F401  (registers the tasks on the app below)
from worker.celery_app import make_celery

celery_app = make_celery(get_settings())


@signals.setup_logging.connect
def _json_logs(**_kwargs) -> None:
    """Celery leaves logging to us (issue #9): JSON lines like the API's, and no progress bars."""
    configure_logging()
    disable_progress_bars()
