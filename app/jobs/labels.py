"""Label-set checks between a corpus and a model, and the declared label mapping."""

from __future__ import annotations

from collections.abc import Sequence

from app.errors import ErrorItem
from dallmi_core import Corpus


def mapped(labels: Sequence[str], label_map: dict[str, str] | None) -> list[str]:
    """Corpus label names after the mapping ``target label -> base label``."""
    label_map = label_map or {}
    return [label_map.get(label, label) for label in labels]


def differences(
    *,
    target: Sequence[str],
    base: Sequence[str],
    base_ref: str,
    label_map: dict[str, str] | None,
    field: str = "corpus_id",
) -> list[ErrorItem]:
    """One error item per label that is in one set and not in the other (empty when they match)."""
    loc = ("body", field)
    items = [
        ErrorItem(
            loc=("body", "label_map", key),
            msg=f"label_map names {key!r}, not a label of the corpus",
            type="label_mismatch",
        )
        for key in (label_map or {})
        if key not in target
    ]
    names = mapped(target, label_map)
    items += [
        ErrorItem(loc=loc, msg=f"label {name!r} maps onto the same label as another", type="label_mismatch")
        for name in sorted({n for n in names if names.count(n) > 1})
    ]
    items += [
        ErrorItem(loc=loc, msg=f"label {name!r} of the corpus is not a label of {base_ref}", type="label_mismatch")
        for name in names
        if name not in base
    ]
    items += [
        ErrorItem(loc=loc, msg=f"label {name!r} of {base_ref} is missing from the corpus", type="label_mismatch")
        for name in base
        if name not in names
    ]
    return items


def without_positives(known_positives: dict[str, int]) -> list[ErrorItem]:
    """An error item when no label has a known positive: there is nothing to adapt to. Labels without one
    are adapted around (``dallmi_core.adapt``: kept as the source model had them), so they are no error."""
    if any(count > 0 for count in known_positives.values()):
        return []
    return [ErrorItem(loc=("body", "corpus_id"), type="label_without_positive",
                      msg="the corpus has no known positive of any label; adaptation needs at least one")]


def align(corpus: Corpus, *, base_labels: Sequence[str], label_map: dict[str, str] | None) -> Corpus:
    """The corpus with labels renamed by ``label_map`` and columns in the base model's order."""
    names = mapped(corpus.labels, label_map)
    order = [names.index(label) for label in base_labels]
    return Corpus(ids=corpus.ids, texts=corpus.texts, labels=list(base_labels), y=corpus.y[:, order])
