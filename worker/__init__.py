"""Celery workers that run dallmi_core training jobs."""
