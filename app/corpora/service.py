"""Corpus uploads: validate with ``dallmi_core.read_corpus``, store as wide CSV, record in the database."""

from __future__ import annotations

import re
from typing import BinaryIO

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.artifacts import ArtifactStore
from app.corpora.orm import Corpus
from app.corpora.schemas import CorpusFormat
from app.errors import ConflictError, InvalidInputError, NotFoundError, PayloadTooLargeError
from app.jobs.orm import ACTIVE_STATUSES, Job
from dallmi_core import Corpus as CoreCorpus
from dallmi_core import CorpusError, read_corpus

_CHUNK = 1 << 20
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean_filename(filename: str) -> str:
    """The client's file name as stored: its last path part, without control characters, at most 300
    characters (the column's size); ``upload`` when nothing is left."""
    name = _CONTROL.sub("", filename.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    return name[-300:] or "upload"


def read_limited(stream: BinaryIO, *, max_bytes: int) -> bytes:
    """Read a whole upload, refusing it (413) as soon as it passes ``max_bytes``."""
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLargeError(f"upload is larger than the limit of {max_bytes} bytes", loc=("body", "file"))
        chunks.append(chunk)
    return b"".join(chunks)


def parse_corpus(data: bytes, *, filename: str, format: CorpusFormat, labels_column: str, label_sep: str) -> CoreCorpus:
    """Validate an upload; a problem becomes a 422 naming the row and what is wrong."""
    if not data.strip():
        raise InvalidInputError("the uploaded file is empty", loc=("body", "file"), type="corpus_error")
    if format == "auto" and filename.lower().endswith((".jsonl", ".ndjson")):
        format = "jsonl"
    try:
        return read_corpus(data, format=format, labels_column=labels_column, label_sep=label_sep)
    except CorpusError as exc:
        loc: tuple[str | int, ...] = ("body", "file") if exc.row is None else ("body", "file", exc.row)
        raise InvalidInputError(str(exc), loc=loc, type="corpus_error") from exc


def check_size(corpus: CoreCorpus, *, max_rows: int, max_labels: int) -> None:
    """Refuse (422) a corpus with more rows or labels than the service takes."""
    if corpus.n_rows > max_rows:
        raise InvalidInputError(
            f"the corpus has {corpus.n_rows} rows; the limit is {max_rows}", loc=("body", "file"), type="corpus_error"
        )
    if len(corpus.labels) > max_labels:
        raise InvalidInputError(
            f"the corpus has {len(corpus.labels)} labels; the limit is {max_labels}",
            loc=("body", "file"),
            type="corpus_error",
        )


def create_corpus(
    session: Session,
    *,
    store: ArtifactStore,
    name: str,
    filename: str,
    stream: BinaryIO,
    max_bytes: int,
    format: CorpusFormat = "auto",
    labels_column: str = "labels",
    label_sep: str = "|",
    max_rows: int = 1_000_000,
    max_labels: int = 1000,
) -> Corpus:
    """Validate and store an uploaded corpus; nothing is stored when it is invalid.

    Raises:
        PayloadTooLargeError: the upload is over ``max_bytes``.
        InvalidInputError: the file is not a valid corpus (``dallmi_core.read_corpus``'s rules, the same the
            worker reads it with) or has more than ``max_rows`` rows or ``max_labels`` labels.
    """
    filename = clean_filename(filename)
    data = read_limited(stream, max_bytes=max_bytes)
    corpus = parse_corpus(data, filename=filename, format=format, labels_column=labels_column, label_sep=label_sep)
    check_size(corpus, max_rows=max_rows, max_labels=max_labels)
    relative = store.new_corpus_path()
    path = store.resolve(relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    corpus.to_wide_csv(path)
    row = Corpus(
        name=name or filename[:200],
        filename=filename,
        format=format,
        n_rows=corpus.n_rows,
        labels=list(corpus.labels),
        known_positives={k: int(v) for k, v in corpus.known_positives.items()},
        content_hash=corpus.content_hash,
        size_bytes=len(data),
        path=relative,
    )
    try:
        session.add(row)
        session.commit()
    except Exception:
        session.rollback()
        store.remove(relative)
        raise
    return row


def get_corpus(session: Session, *, corpus_id: int, loc: tuple[str, ...] = ("path", "corpus_id")) -> Corpus:
    """The corpus with this id, or ``NotFoundError``."""
    row = session.get(Corpus, corpus_id)
    if row is None:
        raise NotFoundError(f"corpus {corpus_id} does not exist", loc=loc)
    return row


def list_corpora(session: Session, *, offset: int = 0, limit: int = 100) -> tuple[list[Corpus], int]:
    """A page of corpora, newest first, and the total count."""
    rows = session.scalars(select(Corpus).order_by(Corpus.id.desc()).offset(offset).limit(limit)).all()
    return list(rows), session.scalar(select(func.count()).select_from(Corpus)) or 0


def delete_corpus(session: Session, *, store: ArtifactStore, corpus_id: int) -> None:
    """Delete a corpus and its file; refused (409) while a queued or running job uses it."""
    row = get_corpus(session, corpus_id=corpus_id)
    busy = session.scalars(
        select(Job.id).where(
            or_(Job.corpus_id == corpus_id, Job.eval_corpus_id == corpus_id),
            Job.status.in_(ACTIVE_STATUSES),
        )
    ).all()
    if busy:
        raise ConflictError(
            f"corpus {corpus_id} is used by active job(s) {', '.join(map(str, busy))}",
            loc=("path", "corpus_id"),
            type="corpus_in_use",
        )
    session.delete(row)
    session.commit()
    store.remove(row.path)


def load_corpus(*, store: ArtifactStore, corpus: Corpus) -> CoreCorpus:
    """Read a stored corpus back (the worker's side)."""
    return read_corpus(store.resolve(corpus.path), format="wide")
