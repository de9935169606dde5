"""The public surface of dallmi_core: ``__all__`` is exactly the names below, every one of them exists, and
every public function or class defined in a dallmi_core module is either exported or listed as internal."""

from __future__ import annotations

import importlib
import inspect

import dallmi_core

MODULES = ["checkpoint", "classifier", "cli", "config", "corpus", "decisions", "evaluate", "losses", "mixup",
           "modeling", "probe", "sampler", "steps", "train"]

EXPORTED = {
    # checkpoint
    "CheckpointIntegrityError", "checkpoint_sha256", "load_checkpoint_meta", "save_checkpoint",
    "verify_checkpoint",
    # classifier
    "MultiLabelClassifier",
    # config
    "TrainConfig",
    # decisions
    "collapse_warnings", "estimate_prior", "lee_liu_thresholds", "prior_thresholds",
    # corpus
    "Corpus", "CorpusError", "Encoded", "hide_labels", "read_corpus", "split_holdout",
    # evaluate
    "Predictor", "best_f1_thresholds", "evaluate_scores", "predict_scores",
    # losses
    "VariationalLoss", "bce_loss", "mixup_penalty_per_label", "variational_loss", "variational_loss_per_label",
    # mixup
    "MixupPairs", "draw_pairs", "forward_with_mixup", "mixup_target",
    # modeling
    "BUILTIN_MINILM", "encode", "load_classifier", "make_tiny_bert", "resolve_base_model",
    # sampler
    "LabelBalancedSampler", "RandomBatchSampler", "make_sampler",
    # train
    "Callback", "Progress", "TrainResult", "TrainingCancelled", "TrainingPaused", "adapt", "finetune",
}

# Public-looking names that are internal on purpose: used by train.py / cli.py, not part of the library API.
INTERNAL = {
    "checkpoint": {"load_train_state", "restore_rng", "rng_state", "save_train_state"},
    "cli": {"adapt_cmd", "evaluate_cmd", "finetune_cmd", "predict_cmd"},
    "decisions": {"decision_summary"},
    "modeling": {"checkpoint_labels", "checkpoint_pooling", "is_checkpoint", "resolve_device"},
    "probe": {"fit_probe_head", "pooled_embeddings", "wise_interpolate"},
    "steps": {"StepOutput", "anchor_loss", "bce_step", "dallmi_step", "dallmi_terms", "heldout_variational_loss"},
}


def test_all_is_exactly_the_exported_names() -> None:
    assert len(dallmi_core.__all__) == len(set(dallmi_core.__all__)), "a name twice in __all__"
    assert set(dallmi_core.__all__) == EXPORTED


def test_every_exported_name_exists() -> None:
    for name in dallmi_core.__all__:
        assert hasattr(dallmi_core, name), name
    namespace: dict[str, object] = {}
    exec("from dallmi_core import *", namespace)  # noqa: S102 - star import honours __all__
    assert EXPORTED <= set(namespace)


def test_exported_objects_are_the_module_definitions() -> None:
    for name in dallmi_core.__all__:
        obj = getattr(dallmi_core, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert obj.__module__.startswith("dallmi_core."), name
            module = importlib.import_module(obj.__module__)
            assert getattr(module, name) is obj


def test_every_public_definition_is_exported_or_listed_internal() -> None:
    assert set(INTERNAL) <= set(MODULES)
    for short in MODULES:
        module = importlib.import_module(f"dallmi_core.{short}")
        defined = {
            name for name, obj in vars(module).items()
            if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
            and obj.__module__ == module.__name__
        }
        internal = INTERNAL.get(short, set())
        assert internal <= defined, f"{short}: listed internal names no longer defined: {internal - defined}"
        assert not (internal & EXPORTED), f"{short}: names both exported and internal"
        missing = defined - EXPORTED - internal
        assert not missing, f"dallmi_core.{short} defines public {sorted(missing)}: export them or list as internal"


def test_version_matches_the_installed_distribution() -> None:
    from importlib.metadata import version

    assert dallmi_core.__version__ == version("dallmi")
