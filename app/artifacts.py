"""The artifact folder: uploaded corpora, job working folders and model checkpoints.

Layout (all relative to ``DALLMI_ARTIFACTS_DIR``)::

    corpora/{uuid}.csv            validated corpus, wide CSV
    jobs/{job_id}/                out_dir of a training run (state/ for resuming, checkpoint/ when done)
    models/{name}/{version}/      an immutable checkpoint of a registered version
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


class ArtifactStore:
    """Paths and atomic file operations inside the artifact folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def resolve(self, relative: str) -> Path:
        """Absolute path of a stored relative path."""
        return self.root / relative

    def new_corpus_path(self) -> str:
        """A fresh relative path for an uploaded corpus."""
        return f"corpora/{uuid.uuid4().hex}.csv"

    def job_dir(self, job_id: int) -> Path:
        """The training ``out_dir`` of a job (kept across redeliveries so training resumes)."""
        return self.root / "jobs" / str(job_id)

    def version_path(self, name: str, version: int) -> str:
        """Relative folder of a registered model version."""
        return f"models/{name}/{version}"

    def check_writable(self) -> None:
        """Raise ``OSError`` unless files can be created in the artifact folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        probe = self.root / f".probe-{uuid.uuid4().hex}"
        probe.write_bytes(b"ok")
        probe.unlink()

    def publish_dir(self, source: Path, relative: str) -> Path:
        """Copy folder ``source`` to ``relative`` atomically (copy to a temporary name, then rename).

        A leftover folder at the destination (from a crash before its database row was written) is
        replaced, so the destination is complete when this returns.
        """
        target = self.resolve(relative)
        staging = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex}")
        staging.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
        return target

    def remove(self, relative: str) -> None:
        """Delete a stored file or folder if present."""
        path = self.resolve(relative)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
