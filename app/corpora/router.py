"""HTTP routes of corpora."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile, status

from app.config import SettingsDep
from app.corpora import service
from app.corpora.schemas import CorporaPublic, CorpusFormat, CorpusPublic
from app.db import SessionDep
from app.deps import StoreDep
from app.errors import error_responses
from app.fields import IdPath, Limit, Offset

router = APIRouter(prefix="/corpora", tags=["corpora"])


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=CorpusPublic, responses=error_responses(400, 413, 422)
)
def upload_corpus(
    session: SessionDep,
    settings: SettingsDep,
    store: StoreDep,
    file: Annotated[UploadFile, File(description="CSV (wide or labels-column) or JSONL")],
    name: Annotated[str, Form(max_length=200, pattern=r"^[^\x00]*$")] = "",
    format: Annotated[CorpusFormat, Form()] = "auto",
    labels_column: Annotated[str, Form()] = "labels",
    label_sep: Annotated[str, Form(min_length=1)] = "|",
):
    """Upload a corpus; it is validated whole and stored only when valid."""
    return service.create_corpus(
        session,
        store=store,
        name=name,
        filename=file.filename or "upload",
        stream=file.file,
        max_bytes=settings.max_upload_bytes,
        format=format,
        labels_column=labels_column,
        label_sep=label_sep,
        max_rows=settings.max_corpus_rows,
        max_labels=settings.max_corpus_labels,
    )


@router.get("", response_model=CorporaPublic, responses=error_responses(422))
def list_corpora(session: SessionDep, offset: Offset = 0, limit: Limit = 100):
    """Stored corpora, newest first."""
    rows, count = service.list_corpora(session, offset=offset, limit=limit)
    return CorporaPublic(data=[CorpusPublic.model_validate(r) for r in rows], count=count)


@router.get("/{corpus_id}", response_model=CorpusPublic, responses=error_responses(404, 422))
def get_corpus(session: SessionDep, corpus_id: IdPath):
    """One corpus."""
    return service.get_corpus(session, corpus_id=corpus_id)


@router.delete("/{corpus_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404, 409, 422))
def delete_corpus(session: SessionDep, store: StoreDep, corpus_id: IdPath) -> None:
    """Delete a corpus; refused while a queued or running job uses it."""
    service.delete_corpus(session, store=store, corpus_id=corpus_id)
