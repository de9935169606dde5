"""DALLMi (arXiv 2405.01883) as a library: domain adaptation of BERT-family multi-label classifiers from a
labelled source domain to a target domain with a few known positives.

Knows nothing of HTTP, databases or brokers; the service (``app/``, ``worker/``) calls it.
"""

from .checkpoint import (
    CheckpointIntegrityError,
    checkpoint_sha256,
    load_checkpoint_meta,
    save_checkpoint,
    verify_checkpoint,
)
from .classifier import MultiLabelClassifier
from .config import TrainConfig
from .corpus import Corpus, CorpusError, hide_labels, read_corpus, split_holdout
from .decisions import collapse_warnings, estimate_prior, lee_liu_thresholds, prior_thresholds
from .evaluate import Predictor, best_f1_thresholds, evaluate_scores, predict_scores
from .losses import (
    VariationalLoss,
    bce_loss,
    mixup_penalty_per_label,
    variational_loss,
    variational_loss_per_label,
)
from .mixup import MixupPairs, draw_pairs, forward_with_mixup, mixup_target
from .modeling import BUILTIN_MINILM, Encoded, encode, load_classifier, make_tiny_bert, resolve_base_model
from .sampler import LabelBalancedSampler, RandomBatchSampler, make_sampler
from .train import Callback, Progress, TrainingCancelled, TrainingPaused, TrainResult, adapt, finetune

__version__ = "0.1.0"

__all__ = [
    "BUILTIN_MINILM",
    "Callback",
    "CheckpointIntegrityError",
    "Corpus",
    "CorpusError",
    "Encoded",
    "LabelBalancedSampler",
    "MixupPairs",
    "MultiLabelClassifier",
    "Predictor",
    "Progress",
    "RandomBatchSampler",
    "TrainConfig",
    "TrainResult",
    "TrainingCancelled",
    "TrainingPaused",
    "VariationalLoss",
    "adapt",
    "bce_loss",
    "collapse_warnings",
    "estimate_prior",
    "best_f1_thresholds",
    "checkpoint_sha256",
    "draw_pairs",
    "encode",
    "evaluate_scores",
    "finetune",
    "forward_with_mixup",
    "hide_labels",
    "lee_liu_thresholds",
    "load_checkpoint_meta",
    "load_classifier",
    "make_sampler",
    "make_tiny_bert",
    "mixup_penalty_per_label",
    "mixup_target",
    "predict_scores",
    "prior_thresholds",
    "read_corpus",
    "resolve_base_model",
    "save_checkpoint",
    "split_holdout",
    "variational_loss",
    "variational_loss_per_label",
    "verify_checkpoint",
]
