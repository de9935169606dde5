"""``dallmi`` command line: finetune, adapt, evaluate and predict on files, without the service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .config import TrainConfig
from .corpus import Corpus, CorpusError, hide_labels, read_corpus
from .evaluate import Predictor, evaluate_scores
from .train import Callback, TrainingCancelled, adapt, finetune
from .train import Progress as TrainProgress

app = typer.Typer(help="DALLMi: adapt BERT-family multi-label classifiers to a partially labelled domain.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
console = Console(stderr=True, soft_wrap=True)

ParamsOpt = Annotated[list[str] | None, typer.Option(
    "--param", "-p", help="Training parameter KEY=VALUE (JSON value), e.g. -p epochs=3 -p lr=3e-5.")]
FormatOpt = Annotated[str, typer.Option(help="Corpus format: auto, wide, labels or jsonl.")]


class _RichProgress(Callback):
    def __init__(self, bar: Progress) -> None:
        self.bar, self.task = bar, bar.add_task("training", total=None)

    def on_step(self, progress: TrainProgress) -> None:
        self.bar.update(self.task, total=progress.total_steps, completed=progress.step,
                        description=f"epoch {progress.epoch}/{progress.epochs} loss {progress.loss:.4f}")

    def on_epoch_end(self, progress: TrainProgress, metrics: dict[str, Any]) -> None:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        self.bar.console.print(f"epoch {progress.epoch}: {shown}")


def _config(params: list[str] | None) -> TrainConfig:
    values: dict[str, Any] = {}
    for item in params or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--param")
        try:
            values[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            values[key.strip()] = raw
    try:
        return TrainConfig.from_dict(values)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--param") from exc


def _read(path: Path, fmt: str, label_set: list[str] | None = None) -> Corpus:
    try:
        return read_corpus(path, format=fmt, label_set=label_set)  # type: ignore[arg-type]
    except CorpusError as exc:
        console.print(f"[red]error:[/red] {path}: {exc}")
        raise typer.Exit(2) from exc


def _run_training(fn: Any, **kwargs: Any) -> None:
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console) as bar:
            result = fn(callbacks=[_RichProgress(bar)], **kwargs)
    except (ValueError, TrainingCancelled) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"checkpoint: [bold]{result.checkpoint_dir}[/bold]")
    _print_summary(result.metrics)


def _print_summary(metrics: dict[str, Any]) -> None:
    """Evaluation figures (with --eval), how the thresholds were chosen, and the adaptation's warnings."""
    if "mAP" in metrics:
        _print_metrics(metrics)
    if metrics.get("threshold_rule"):
        console.print(f"thresholds: {metrics['threshold_rule']}")
    if metrics.get("labels_not_adapted"):
        console.print(f"[yellow]not adapted[/yellow] (no known positive; kept as the source model had them): "
                      f"{', '.join(metrics['labels_not_adapted'])}")
    for warning in metrics.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {warning}")


def _print_metrics(metrics: dict[str, Any]) -> None:
    table = Table("metric", "value")
    for key in ("mAP", "micro_AP", "macro_F1", "micro_F1", "roc_auc", "n_rows"):
        table.add_row(key, f"{metrics[key]:.4f}" if isinstance(metrics[key], float) else str(metrics[key]))
    Console().print(table)
    if metrics.get("labels_without_positive"):
        console.print(f"labels without a positive (not averaged): {metrics['labels_without_positive']}")


@app.command("finetune")
def finetune_cmd(
    corpus: Annotated[Path, typer.Argument(help="Fully labelled source corpus.")],
    out: Annotated[Path, typer.Option(help="Run folder (checkpoint in OUT/checkpoint).")],
    base: Annotated[str, typer.Option(help="minilm-l6, a local HF directory or a hub name.")] = "minilm-l6",
    eval_corpus: Annotated[Path | None, typer.Option("--eval", help="Labelled evaluation corpus.")] = None,
    fmt: FormatOpt = "auto",
    params: ParamsOpt = None,
) -> None:
    """Fine-tune the source model with BCE on a fully labelled corpus."""
    train = _read(corpus, fmt)
    evaluation = _read(eval_corpus, fmt, train.labels) if eval_corpus else None
    _run_training(finetune, base=base, corpus=train, config=_config(params), out_dir=out, eval_corpus=evaluation)


@app.command("adapt")
def adapt_cmd(
    corpus: Annotated[Path, typer.Argument(help="Partially labelled target corpus (1 = known positive).")],
    base: Annotated[Path, typer.Option(help="Source checkpoint to adapt.")],
    out: Annotated[Path, typer.Option(help="Run folder (checkpoint in OUT/checkpoint).")],
    method: Annotated[str, typer.Option(help="dallmi or bce.")] = "dallmi",
    eval_corpus: Annotated[Path | None, typer.Option("--eval", help="Labelled evaluation corpus.")] = None,
    hide_ratio: Annotated[float | None, typer.Option(help="Keep only this share of positives (protocol).")] = None,
    hide_seed: Annotated[int, typer.Option(help="Seed of --hide-ratio.")] = 0,
    fmt: FormatOpt = "auto",
    params: ParamsOpt = None,
) -> None:
    """Adapt a checkpoint to a partially labelled target corpus with DALLMi (or the BCE baseline)."""
    target = _read(corpus, fmt)
    if hide_ratio is not None:
        target = hide_labels(target, hide_ratio, hide_seed)
    evaluation = _read(eval_corpus, fmt, target.labels) if eval_corpus else None
    _run_training(adapt, base=str(base), corpus=target, config=_config(params), out_dir=out,
                  method=method, eval_corpus=evaluation)


@app.command("evaluate")
def evaluate_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint directory.")],
    corpus: Annotated[Path, typer.Argument(help="Labelled evaluation corpus.")],
    fmt: FormatOpt = "auto",
    device: str = "auto",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full report here.")] = None,
) -> None:
    """Score a labelled corpus: mAP on scores, micro AP, F1 at the stored thresholds, ROC AUC."""
    predictor = _load(checkpoint, device)
    data = _read(corpus, fmt, predictor.labels)
    if data.labels != predictor.labels:
        console.print(f"[red]error:[/red] corpus labels {data.labels} differ from the model's {predictor.labels}")
        raise typer.Exit(2)
    report = evaluate_scores(data.y, predictor.predict_scores(data.texts), data.labels, predictor.thresholds)
    _print_metrics(report)
    if json_out:
        json_out.write_text(json.dumps(report, indent=2), encoding="utf-8")


@app.command("predict")
def predict_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint directory.")],
    texts: Annotated[list[str], typer.Argument(help="Texts to score.")],
    top_k: Annotated[int, typer.Option(help="Scores shown per text.")] = 5,
    device: str = "auto",
) -> None:
    """Print each text's top label scores and the labels predicted at the stored thresholds (JSON lines)."""
    predictor = _load(checkpoint, device)
    try:
        scores = predictor.predict_scores(texts)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    for text, row in zip(texts, scores, strict=True):
        order = np.argsort(-row)[:top_k]
        predicted = [predictor.labels[j] for j in np.flatnonzero(row >= predictor.thresholds)]
        print(json.dumps({"text": text, "scores": {predictor.labels[j]: round(float(row[j]), 4) for j in order},
                          "predicted": predicted}))


def _load(checkpoint: Path, device: str) -> Predictor:
    try:
        return Predictor.load(checkpoint, device)
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


if __name__ == "__main__":  # pragma: no cover
    app()
