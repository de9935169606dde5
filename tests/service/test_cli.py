"""The ``dallmi`` console script: the library's commands plus ``serve``."""

from __future__ import annotations

import subprocess
import sys

from app.cli import worker_command

from .helpers import REPO


def test_serve_is_added_to_the_library_commands():
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    for command in ("serve", "finetune", "adapt", "predict"):
        assert command in result.stdout


def test_serve_options():
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    for option in ("--host", "--port", "--workers"):
        assert option in result.stdout


def test_the_worker_is_one_solo_process_on_the_train_queue():
    command = worker_command("train")
    assert command[command.index("--pool") + 1] == "solo" and command[command.index("-Q") + 1] == "train"
