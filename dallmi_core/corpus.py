"""Multi-label corpora: texts, label names and a known-positive matrix ``Y: (N, L)``.

A 1 in ``Y`` is a known positive; a 0 is *unknown* (unlabeled), not a negative (paper section 3).
Three on-disk formats are read: CSV "wide" (``text`` plus one 0/1 column per label, the layout of
``../shared/data/*/*.csv``), CSV with one labels column (separator configurable) and JSONL
(``{"text": ..., "labels": [...]}``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

CorpusFormat = Literal["auto", "wide", "labels", "jsonl"]
_ID_COLUMNS = ("id",)
_TEXT_COLUMN = "text"
RESERVED_NAMES = (_TEXT_COLUMN, *_ID_COLUMNS)
"""Column names of the stored (wide) form, so never label names."""
MAX_TEXT_CHARS = 100_000
"""Longest text (characters); longer ones are refused rather than silently cut (a model reads at most
``max_length`` tokens, and the CSV reader refuses fields over 131,072 characters)."""
MAX_NAME_CHARS = 200
"""Longest id or label name."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class CorpusError(ValueError):
    """A corpus that cannot be used, with the 1-based data row (``None`` for the whole file)."""

    def __init__(self, problem: str, row: int | None = None) -> None:
        self.problem = problem
        self.row = row
        super().__init__(f"row {row}: {problem}" if row is not None else problem)


@dataclass
class Corpus:
    """A multi-label corpus.

    Attributes:
        ids: ``N`` unique row ids (strings).
        texts: ``N`` non-empty texts.
        labels: ``L`` unique label names.
        y: known-positive matrix ``(N, L)`` uint8; 1 = known positive, 0 = unknown.
    """

    ids: list[str]
    texts: list[str]
    labels: list[str]
    y: np.ndarray

    def __post_init__(self) -> None:
        self.y = np.ascontiguousarray(self.y, dtype=np.uint8)
        n, n_labels = len(self.texts), len(self.labels)
        if self.y.shape != (n, n_labels):
            raise CorpusError(f"label matrix has shape {self.y.shape}, expected ({n}, {n_labels})")
        if len(self.ids) != n:
            raise CorpusError(f"{len(self.ids)} ids for {n} texts")
        _check_labels(self.labels)
        _check_rows(self.ids, self.texts)

    @property
    def n_rows(self) -> int:
        """Number of rows ``N``."""
        return len(self.texts)

    @property
    def known_positives(self) -> dict[str, int]:
        """Known positives per label name."""
        return dict(zip(self.labels, self.y.sum(axis=0).astype(int).tolist(), strict=True))

    @property
    def content_hash(self) -> str:
        """sha256 hex of ids, texts, label names and ``Y``; the same corpus always yields the same hash,
        whatever file format it was read from."""
        digest = hashlib.sha256()
        digest.update(json.dumps([self.ids, self.texts, self.labels], ensure_ascii=False).encode("utf-8"))
        digest.update(self.y.tobytes())
        return digest.hexdigest()

    def require_known_positives(self) -> None:
        """Check every label has at least one known positive (needed by the variational loss, Eq. 1).

        Raises:
            CorpusError: naming every label with no known positive.
        """
        missing = [name for name, count in self.known_positives.items() if count == 0]
        if missing:
            raise CorpusError(f"label(s) with no known positive: {', '.join(missing)}")

    def subset(self, indices: Sequence[int] | np.ndarray) -> Corpus:
        """The rows at ``indices`` (any order), as a new corpus."""
        idx = np.asarray(indices, dtype=np.int64)
        return Corpus(
            ids=[self.ids[i] for i in idx], texts=[self.texts[i] for i in idx],
            labels=list(self.labels), y=self.y[idx],
        )

    def to_wide_csv(self, path: str | Path) -> None:
        """Write the corpus as a wide CSV (``id,text,<label 1>,...``), readable by :func:`read_corpus`."""
        with open(path, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", _TEXT_COLUMN, *self.labels])
            for row_id, text, row in zip(self.ids, self.texts, self.y.tolist(), strict=True):
                writer.writerow([row_id, text, *row])


def _decode(source: str | Path | bytes) -> tuple[str, str]:
    """Return (text, name hint) of a path or raw bytes; raises CorpusError on non-UTF-8 input."""
    if isinstance(source, bytes):
        raw, hint = source, ""
    else:
        path = Path(source)
        if not path.is_file():
            raise CorpusError(f"no such file: {path}")
        raw, hint = path.read_bytes(), path.name.lower()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CorpusError(f"file is not UTF-8 (invalid byte at line {line}, offset {exc.start})") from exc
    if not text.strip():
        raise CorpusError("file is empty")
    return text, hint


def _name_problem(name: str, what: str) -> str | None:
    """Why ``name`` cannot be an id or label name (it must survive the stored CSV unchanged), or None."""
    if not name:
        return f"empty {what}"
    if name != name.strip():
        return f"{what} {name!r} has leading or trailing whitespace"
    if len(name) > MAX_NAME_CHARS:
        return f"{what} {name[:20]!r}... is longer than {MAX_NAME_CHARS} characters"
    if _CONTROL.search(name):
        return f"{what} {name!r} holds a control character"
    return None


def _check_labels(labels: Sequence[str]) -> None:
    """Raise CorpusError for a label name that is empty, padded, too long, reserved or repeated."""
    for name in labels:
        if not isinstance(name, str):
            raise CorpusError(f"label name {name!r} is not a string")
        if problem := _name_problem(name, "label name"):
            raise CorpusError(problem)
        if name in RESERVED_NAMES:
            raise CorpusError(f"label name {name!r} is reserved (a column of the stored corpus: {RESERVED_NAMES})")
    if len(set(labels)) != len(labels):
        raise CorpusError(f"duplicate label names: {sorted({n for n in labels if list(labels).count(n) > 1})}")


def _check_rows(ids: Sequence[str], texts: Sequence[str]) -> None:
    """Raise CorpusError for the first bad text (empty, too long, a NUL) or bad or duplicate id (rows are
    1-based data rows)."""
    for row, text in enumerate(texts, start=1):
        if not text.strip():
            raise CorpusError("empty text", row=row)
        if len(text) > MAX_TEXT_CHARS:
            raise CorpusError(f"text of {len(text)} characters; the limit is {MAX_TEXT_CHARS}", row=row)
        if "\x00" in text:
            raise CorpusError("text holds a NUL character", row=row)
    seen: dict[str, int] = {}
    for row, row_id in enumerate(ids, start=1):
        if problem := _name_problem(row_id, "id"):
            raise CorpusError(problem, row=row)
        if row_id in seen:
            raise CorpusError(f"duplicate id {row_id!r} (first seen at row {seen[row_id]})", row=row)
        seen[row_id] = row


def _read_csv_rows(text: str) -> tuple[list[str], list[list[str]]]:
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        raise CorpusError(f"malformed CSV: {exc}") from exc
    header, body = [h.strip() for h in rows[0]], [r for r in rows[1:] if r]
    if _TEXT_COLUMN not in header:
        raise CorpusError(f"missing '{_TEXT_COLUMN}' column (header: {header})")
    if len(set(header)) != len(header):
        raise CorpusError(f"duplicate column names in header: {header}")
    if "" in header:
        raise CorpusError(f"blank column name in header at column {header.index('') + 1}: {header}")
    for row, values in enumerate(body, start=1):
        if len(values) != len(header):
            raise CorpusError(f"{len(values)} fields, header has {len(header)}", row=row)
    if not body:
        raise CorpusError("no data rows")
    return header, body


def _ids_of(header: list[str], body: list[list[str]]) -> list[str]:
    if "id" in header:
        col = header.index("id")
        return [r[col].strip() for r in body]
    return [str(i) for i in range(len(body))]


def _read_wide(text: str, label_set: Sequence[str] | None) -> Corpus:
    header, body = _read_csv_rows(text)
    label_cols = [i for i, h in enumerate(header) if h not in (_TEXT_COLUMN, *_ID_COLUMNS)]
    labels = [header[i] for i in label_cols]
    if not labels:
        raise CorpusError("no label columns: a wide CSV needs one 0/1 column per label")
    if label_set is not None:
        unknown = [name for name in labels if name not in set(label_set)]
        if unknown:
            raise CorpusError(f"label column(s) not in the label set: {', '.join(unknown)}")
    cells = np.array([[r[i].strip() for i in label_cols] for r in body], dtype=object)
    bad = ~np.isin(cells, ["0", "1"])
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise CorpusError(f"label {labels[col]!r} has value {cells[row, col]!r}, expected 0 or 1", row=row + 1)
    texts = [r[header.index(_TEXT_COLUMN)] for r in body]
    ids = _ids_of(header, body)
    _check_rows(ids, texts)
    return Corpus(ids=ids, texts=texts, labels=labels, y=(cells == "1").astype(np.uint8))


def _from_label_lists(
    ids: list[str], texts: list[str], lists: list[list[str]], label_set: Sequence[str] | None
) -> Corpus:
    _check_rows(ids, texts)
    if label_set is None:
        labels = sorted({name for names in lists for name in names})
    else:
        labels = list(label_set)
    index = {name: j for j, name in enumerate(labels)}
    y = np.zeros((len(texts), len(labels)), dtype=np.uint8)
    for row, names in enumerate(lists, start=1):
        unknown = [name for name in names if name not in index]
        if unknown:
            raise CorpusError(f"unknown label(s) {', '.join(map(repr, unknown))}", row=row)
        y[row - 1, [index[name] for name in names]] = 1
    if not labels:
        raise CorpusError("no labels found in the corpus")
    return Corpus(ids=ids, texts=texts, labels=labels, y=y)


def _read_labels_csv(text: str, column: str, sep: str, label_set: Sequence[str] | None) -> Corpus:
    header, body = _read_csv_rows(text)
    if column not in header:
        raise CorpusError(f"missing labels column {column!r} (header: {header})")
    col, text_col = header.index(column), header.index(_TEXT_COLUMN)
    lists = [[name.strip() for name in r[col].split(sep) if name.strip()] for r in body]
    return _from_label_lists(_ids_of(header, body), [r[text_col] for r in body], lists, label_set)


def _read_jsonl(text: str, label_set: Sequence[str] | None) -> Corpus:
    ids, texts, lists = [], [], []
    for row, line in enumerate((ln for ln in text.splitlines() if ln.strip()), start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"invalid JSON: {exc.msg}", row=row) from exc
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise CorpusError("missing 'text' string field", row=row)
        names = record.get("labels", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise CorpusError("'labels' must be a list of strings", row=row)
        row_id = record.get("id", row - 1)
        if isinstance(row_id, bool) or not isinstance(row_id, (str, int)):
            raise CorpusError("'id' must be a string or an integer", row=row)
        ids.append(str(row_id).strip())  # as the CSV readers do
        texts.append(record["text"])
        lists.append(names)
    return _from_label_lists(ids, texts, lists, label_set)


def _sniff(text: str, hint: str, labels_column: str) -> CorpusFormat:
    if hint.endswith((".jsonl", ".ndjson")) or text.lstrip().startswith("{"):
        return "jsonl"
    try:
        header = {h.strip() for h in next(csv.reader(io.StringIO(text, newline="")), [])}
    except csv.Error as exc:
        raise CorpusError(f"malformed CSV header: {exc}") from exc
    return "labels" if labels_column in header and header <= {labels_column, _TEXT_COLUMN, *_ID_COLUMNS} else "wide"


def read_corpus(
    source: str | Path | bytes,
    *,
    format: CorpusFormat = "auto",
    labels_column: str = "labels",
    label_sep: str = "|",
    label_set: Sequence[str] | None = None,
) -> Corpus:
    """Read and validate a corpus from a path or raw bytes.

    Args:
        source: a file path, or the file's raw bytes (an upload).
        format: "wide" CSV, "labels"-column CSV, "jsonl", or "auto" (JSONL for ``.jsonl`` or a leading
            ``{``; labels-column CSV when the header holds only ``labels_column``, ``text`` and ``id``; wide CSV
            otherwise).
        labels_column: name of the labels column of a labels-column CSV.
        label_sep: separator between label names in that column.
        label_set: the allowed label names, in order; labels outside it are an error. For labels-column
            CSV and JSONL it fixes the column order of ``Y`` (default: sorted names found).

    Returns:
        The corpus, ``Y: (N, L)`` uint8.

    Raises:
        CorpusError: naming the problem and the 1-based data row: missing text column, empty text, a value
            other than 0/1, a label not in the label set, duplicate ids, malformed CSV/JSON, non-UTF-8.
    """
    if label_set is not None and len(set(label_set)) != len(label_set):
        raise CorpusError(f"duplicate names in the label set: {list(label_set)}")
    text, hint = _decode(source)
    fmt = _sniff(text, hint, labels_column) if format == "auto" else format
    if fmt == "jsonl":
        return _read_jsonl(text, label_set)
    if fmt == "labels":
        return _read_labels_csv(text, labels_column, label_sep, label_set)
    if fmt == "wide":
        return _read_wide(text, label_set)
    raise CorpusError(f"unknown corpus format {format!r}")


def _seed_of(corpus: Corpus, ratio: float, seed: int) -> np.random.Generator:
    corpus_key = int(corpus.content_hash[:16], 16)
    return np.random.default_rng([corpus_key, int(round(ratio * 1_000_000)), seed])


def hide_labels(corpus: Corpus, ratio: float, seed: int) -> Corpus:
    """Keep a random share ``ratio`` of each label's positives and turn the rest into unknown (0).

    Implements step 2 of the evaluation protocol (``../shared/data/README.md``): per label independently,
    ``max(1, round(ratio * n_pos))`` positives stay known. The draw depends only on (corpus, ratio, seed).

    Args:
        corpus: a fully labelled corpus, ``Y: (N, L)``.
        ratio: share of positives kept, in (0, 1].
        seed: seed of the draw.

    Raises:
        ValueError: ratio outside (0, 1].
    """
    if not 0 < ratio <= 1:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    rng = _seed_of(corpus, ratio, seed)
    positive = corpus.y.astype(bool)  # (N, L)
    n_pos = positive.sum(axis=0)  # (L,)
    keep_count = np.where(n_pos > 0, np.maximum(1, np.round(ratio * n_pos)), 0)  # (L,)
    keys = np.where(positive, rng.random(positive.shape), np.inf)  # (N, L)
    rank = np.argsort(np.argsort(keys, axis=0, kind="stable"), axis=0, kind="stable")  # (N, L)
    kept = positive & (rank < keep_count[None, :])
    return Corpus(ids=list(corpus.ids), texts=list(corpus.texts), labels=list(corpus.labels),
                  y=kept.astype(np.uint8))


def split_holdout(corpus: Corpus, fraction: float, seed: int) -> tuple[Corpus, Corpus]:
    """Split rows at random into (train, held-out) with ``fraction`` of the rows held out, used for VPU
    model selection on a positive-unlabeled validation split. Every label with a known positive keeps at
    least one on the training side (the sampler and Eq. 1 need it): such a row is given back to training,
    so the held-out side can be smaller than ``round(fraction * N)``.

    Raises:
        ValueError: fraction outside (0, 1) or a split that leaves either side empty.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    order = np.random.default_rng(seed).permutation(corpus.n_rows)
    n_held = int(round(fraction * corpus.n_rows))
    held = np.zeros(corpus.n_rows, dtype=bool)
    held[order[:n_held]] = True
    known = corpus.y.astype(bool)  # (N, L)
    lost = np.flatnonzero(known.any(axis=0) & ~(known & ~held[:, None]).any(axis=0))
    for label in lost:  # labels whose every known positive was held out (rare): give one back
        if not (known[:, label] & ~held).any():  # a row given back for another label may cover it
            held[order[known[order, label] & held[order]][0]] = False
    if not held.any() or held.all():
        raise ValueError(f"a held-out fraction of {fraction} leaves one side of {corpus.n_rows} rows empty")
    return corpus.subset(np.flatnonzero(~held)), corpus.subset(np.flatnonzero(held))
