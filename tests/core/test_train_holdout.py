"""adapt(val_fraction > 0) must not hold out a label's only known positive: the training split keeps one
per label, so the label-balanced sampler and Eq. 1 always have a positive of every label."""
import numpy as np

from dallmi_core import Corpus, TrainConfig, adapt, finetune, make_tiny_bert, split_holdout


def _corpus():
    y = np.zeros((12, 2), dtype=np.uint8)
    y[:6, 0] = 1
    y[7, 1] = 1  # label B: one known positive (as after hide_labels with r = 0.1)
    return Corpus(ids=[str(i) for i in range(12)], texts=[f"text number {i}" for i in range(12)],
                  labels=["A", "B"], y=y)


def test_adapt_with_val_fraction_keeps_a_positive_per_label(tmp_path):
    corpus = _corpus()
    # a seed whose random permutation holds out row 7, the only positive of label B
    seed = next(s for s in range(50) if 7 in np.random.default_rng(s).permutation(12)[:3])
    train, held = split_holdout(corpus, 0.25, seed)
    assert train.y[:, 1].sum() == 1 and held.y[:, 1].sum() == 0
    base = str(make_tiny_bert(tmp_path / "tiny", hidden=16, layers=1))
    cfg = dict(batch_size=4, epochs=1, max_length=16, device="cpu", seed=seed)
    src = finetune(base=base, corpus=corpus, config=TrainConfig(**cfg), out_dir=tmp_path / "src")
    adapt(base=str(src.checkpoint_dir), corpus=corpus, config=TrainConfig(**cfg, val_fraction=0.25),
          out_dir=tmp_path / "tgt")
    assert (tmp_path / "tgt" / "checkpoint" / "dallmi.json").is_file()
