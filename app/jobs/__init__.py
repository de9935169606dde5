"""Training jobs: fine-tuning and adaptation run by Celery workers."""
