"""Reproduce the DALLMi paper's Table 2 (none / bce / dallmi at label ratios, bce at 100%), its ablations
(Table 3: MixUp place, log loss), its sampler comparison (Table 4) and Fig. 5 (mAP per epoch) on the corpora
of ../shared/data/, following the evaluation protocol of ../shared/data/README.md; beside them, the baselines
a user would pick instead (``tfidf``, ``probe``: ``reproduce_baselines.py``) and the floors of each split.

Every finished cell (corpus, method, variant, ratio, seed, settings) is cached as one JSON file under
``--cache`` keyed by its full config, so a stopped run resumes where it stopped (a cell whose training was
interrupted resumes from its last epoch). ``--report`` regenerates docs/results.md and docs/img/*.png from
the cache for the cells the other options define.

    # the full protocol (MiniLM-L6 on this CPU machine; hours per corpus)
    python benchmarks/reproduce.py --corpus pubmed
    python benchmarks/reproduce.py --corpus pubmed --report
    # only the baselines (minutes; no source model is trained)
    python benchmarks/reproduce.py --corpus pubmed --methods tfidf probe --ablations
    # a smoke run
    python benchmarks/reproduce.py --corpus pubmed --seeds 0 --ratios 0.5 --epochs 1 --max-tokens 64 \\
        --max-source-rows 200 --ablations
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from reproduce_cells import (
    ABLATIONS,
    BASELINES,
    METHODS,
    Cell,
    CellCache,
    Settings,
    data_hashes,
    load_corpora,
    plan_cells,
)
from reproduce_report import write_report
from reproduce_tuning import write_tuning

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", nargs="+", default=["pubmed", "reuters", "movies"])
    p.add_argument("--ratios", nargs="+", type=float, default=[0.5, 0.3, 0.1])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--methods", nargs="*", choices=METHODS, default=list(METHODS),
                   help="none, bce, dallmi, upper (bce at 100%% labels) and the baselines tfidf and probe "
                        "(source only, source + target at each ratio, source + all of target)")
    p.add_argument("--ablations", nargs="*", choices=ABLATIONS, default=list(ABLATIONS),
                   help="DALLMi variants (give the flag alone for none)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--min-steps", type=int, default=None,
                   help="TrainConfig.min_steps of the neural cells (default: the preset's)")
    p.add_argument("--preset", choices=("default", "paper"), default="default",
                   help="TrainConfig preset of the neural cells: the product's recipe or the paper's")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--adapt-lr", nargs="+", type=float, default=[0.0],
                   help="learning rate(s) of the adaptation; 0: --lr. Several: a tuning grid")
    p.add_argument("--mixup-weight", nargs="+", type=float, default=[1.0],
                   help="lambda(s) of the MixUp term for dallmi cells. Several: a tuning grid")
    p.add_argument("--split", choices=("test", "holdout"), default="test",
                   help="holdout: adapt on 80%% of target_train and score the other 20%% (tuning; "
                        "target_test is never scored); --report then writes docs/tuning.md")
    p.add_argument("--max-source-rows", nargs="+", type=_row_cap, default=[(None, 0)], metavar="[CORPUS=]N",
                   help="cap on source.csv rows, for every corpus or per corpus (reuters=2000); 0: all rows")
    p.add_argument("--max-train-rows", type=int, default=0, help="0: all rows of target_train.csv")
    p.add_argument("--base", default="minilm-l6", help="encoder: minilm-l6, a local folder or a hub name")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--data-dir", type=Path, default=DATA)
    p.add_argument("--cache", type=Path, default=ROOT / "runs" / "reproduce")
    p.add_argument("--docs-dir", type=Path, default=ROOT / "docs")
    p.add_argument("--via-api", metavar="URL", help="submit the cells through the service's REST API")
    p.add_argument("--restore", type=Path, metavar="JSON",
                   help="first put the cells of a published results.json (docs/results.json) back into the cache")
    p.add_argument("--report", action="store_true", help="only regenerate the report from cached cells")
    p.add_argument("--dry-run", action="store_true", help="list the planned cells and whether they are cached")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep adapted checkpoints under --cache")
    return p.parse_args(argv)


def _row_cap(text: str) -> tuple[str | None, int]:
    """``N`` (every corpus) or ``CORPUS=N``."""
    corpus, _, rows = text.rpartition("=")
    try:
        return corpus or None, int(rows)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or CORPUS=N, got {text!r}") from None


def source_cap(args: argparse.Namespace, corpus: str) -> int:
    """The source row cap of ``corpus`` (a per-corpus entry wins over a global one)."""
    caps = dict(args.max_source_rows)
    return caps.get(corpus, caps.get(None, 0))


def settings_of(args: argparse.Namespace, corpus: str) -> list[Settings]:
    """The run's settings for a corpus: one, or a grid over --adapt-lr x --mixup-weight."""
    return [Settings(base=args.base, epochs=args.epochs, max_length=args.max_tokens, batch_size=args.batch_size,
                     lr=args.lr, max_source_rows=source_cap(args, corpus), max_train_rows=args.max_train_rows,
                     device=args.device, via="api" if args.via_api else "core", adapt_lr=lr, mixup_weight=lam,
                     split=args.split, preset=args.preset,
                     min_steps=args.min_steps)
            for lr in args.adapt_lr for lam in args.mixup_weight]


def _runner(args: argparse.Namespace, cache: CellCache) -> Any:
    """A function ``(cell, hashes, corpora) -> record`` for the chosen way of running; baselines always run
    here (they need neither a source model nor the service)."""
    from reproduce_baselines import run_baseline_cell

    if args.via_api:
        from reproduce_api import ApiClient, ApiRunner

        neural = ApiRunner(ApiClient(args.via_api), args.via_api, cache).run_cell
    else:
        from reproduce_local import run_cell

        def neural(cell: Cell, hashes: dict[str, str], corpora: dict[str, Any]) -> dict[str, Any]:
            return run_cell(cell, cache, hashes, corpora, keep_checkpoints=args.keep_checkpoints)

    def runner(cell: Cell, hashes: dict[str, str], corpora: dict[str, Any]) -> dict[str, Any]:
        if cell.method in BASELINES:
            return run_baseline_cell(cell, cache, hashes, corpora)
        return neural(cell, hashes, corpora)

    return runner


def run(cells: list[Cell], args: argparse.Namespace, cache: CellCache) -> list[str]:
    """Run every planned cell not cached yet; returns the names of the cells that failed."""
    hashes = {c: data_hashes(args.data_dir, c) for c in args.corpus}
    corpora: dict[str, Any] = {}
    runner, failed = None, []
    for i, cell in enumerate(cells, 1):
        cached = cache.load(cell, hashes[cell.corpus])
        if cached is not None or args.dry_run:
            state = "cached" if cached is not None else "to run"
            print(f"[{i}/{len(cells)}] {cell.name}: {state}", flush=True)
            continue
        runner = runner or _runner(args, cache)
        if cell.corpus not in corpora:
            corpora[cell.corpus] = load_corpora(args.data_dir, cell.corpus, cell.settings)
        start = time.perf_counter()
        try:
            record = runner(cell, hashes[cell.corpus], corpora[cell.corpus])
        except Exception as exc:  # one failed cell must not lose a night's run; reported at the end
            print(f"[{i}/{len(cells)}] {cell.name}: FAILED {type(exc).__name__}: {exc}", flush=True)
            failed.append(cell.name)
            continue
        m = record["metrics"]
        print(f"[{i}/{len(cells)}] {cell.name}: mAP {m['mAP']:.4f} micro AP {m['micro_AP']:.4f} "
              f"macro F1 {m['macro_F1']:.4f} ROC AUC {m['roc_auc']:.4f}  "
              f"{time.perf_counter() - start:.1f} s", flush=True)
    return failed


def _same_run(cell: Cell, planned: set[Settings]) -> bool:
    """Whether a cached cell was made with the run's settings apart from the adaptation's lr and lambda (a
    baseline: with the settings that matter to it)."""
    if cell.method in BASELINES:
        return any(cell.settings == p.for_method(cell.method) for p in planned)
    return any(replace(cell.settings, adapt_lr=p.adapt_lr, mixup_weight=p.mixup_weight) == p for p in planned)


def collect(cells: list[Cell], args: argparse.Namespace, cache: CellCache) -> dict[Cell, dict[str, Any]]:
    """The cached records of the planned cells, of their source models and, for a report, of any other
    cached cell of the same corpora and settings that differs only in the adaptation's lr or lambda (a
    tuned setting confirmed on target_test); writes ``<cache>/results.json``."""
    hashes = {c: data_hashes(args.data_dir, c) for c in args.corpus}
    records: dict[Cell, dict[str, Any]] = {}
    for cell in [*cells, *dict.fromkeys(c.source() for c in cells if c.method not in BASELINES)]:
        record = cache.load(cell, hashes[cell.corpus])
        if record is not None:
            records[cell] = record
    if args.report:
        planned = {s for corpus in args.corpus for s in settings_of(args, corpus)}
        for cell, record in cache.records().items():
            if (cell.corpus in hashes and record.get("data") == hashes[cell.corpus] and cell.seed in args.seeds
                    and record.get("key") == cell.key(hashes[cell.corpus])  # not a cell of an older recipe
                    and cell.ratio in (0.0, *args.ratios, 1.0) and _same_run(cell, planned)):
                records.setdefault(cell, record)
    cache.root.mkdir(parents=True, exist_ok=True)
    (cache.root / "results.json").write_text(json.dumps(list(records.values()), indent=1), encoding="utf-8")
    return records


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.via_api and args.split != "test":
        print("--split holdout runs with dallmi_core only (the service scores whole corpora)", file=sys.stderr)
        return 2
    cache = CellCache(args.cache)
    if args.restore:
        restored = cache.restore(json.loads(args.restore.read_text(encoding="utf-8")))
        print(f"restored {restored} cell(s) from {args.restore} into {cache.cells_dir}")
    cells = [cell for corpus in args.corpus
             for cell in plan_cells([corpus], ratios=args.ratios, seeds=args.seeds, methods=args.methods,
                                    ablations=args.ablations, settings=settings_of(args, corpus))]
    failed = [] if args.report else run(cells, args, cache)
    records = collect(cells, args, cache)
    command = "python benchmarks/reproduce.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.report and args.split == "holdout":
        paths = write_tuning(records, corpora=args.corpus, ratios=args.ratios, docs_dir=args.docs_dir,
                             command=command)
        print(f"wrote {' and '.join(map(str, paths))}")
    elif args.report:
        path = write_report(records, corpora=args.corpus, ratios=args.ratios, planned=len(cells),
                            docs_dir=args.docs_dir, data_dir=args.data_dir, command=command)
        published = args.docs_dir / "results.json"  # the JSON of every reported cell, beside the tables
        published.write_text(json.dumps(list(records.values()), indent=1), encoding="utf-8")
        print(f"wrote {path} and {published}")
    if failed:
        print(f"{len(failed)} cell(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
