"""Unit tests of dallmi_core.mixup (Eq. 3-5, Fig. 4) and of the MixUp term of steps.dallmi_step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from transformers import BertConfig, BertModel

from dallmi_core import (
    MixupPairs,
    TrainConfig,
    draw_pairs,
    forward_with_mixup,
    mixup_penalty_per_label,
    mixup_target,
    variational_loss,
)
from dallmi_core.classifier import MultiLabelClassifier
from dallmi_core.steps import dallmi_step

PLACES = ["word", "encoder", "pooled"]
N_LABELS = 3


def _tiny_model(seed: int = 0, pooling: str = "cls") -> MultiLabelClassifier:
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, initializer_range=0.5)  # large weights: logits of order 1
    model = MultiLabelClassifier(BertModel(config), N_LABELS, pooling=pooling)
    with torch.no_grad():
        model.classifier.weight.normal_(0, 0.5)
    return model


@pytest.fixture
def model() -> MultiLabelClassifier:
    return _tiny_model().eval()


def _batch(seed: int = 0, batch: int = 5, length: int = 7, ragged: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 100, (batch, length), generator=gen)
    mask = torch.ones(batch, length, dtype=torch.long)
    if ragged:  # rows 1 and 3 are shorter (right padding with id 0)
        mask[1, 4:] = 0
        mask[3, 5:] = 0
        ids[mask == 0] = 0
    return ids, mask


KNOWN = np.array([
    [1, 0, 0],
    [0, 1, 0],
    [1, 0, 1],
    [0, 0, 0],
    [0, 1, 0],
], dtype=bool)


def _pairs(pos: list[int], unl: list[int], mu: list[float], valid: list[bool] | None = None) -> MixupPairs:
    return MixupPairs(torch.tensor(pos), torch.tensor(unl), torch.tensor(mu, dtype=torch.float32),
                      torch.tensor(valid if valid is not None else [True] * len(pos)))


# ----------------------------------------------------------------------------------------------- draw_pairs

@settings(max_examples=50, deadline=None)
@given(
    batch=st.integers(1, 8),
    n_labels=st.integers(1, 5),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_draw_pairs_picks_real_positive_and_unlabeled_rows(batch: int, n_labels: int, density: float,
                                                           seed: int) -> None:
    rng = np.random.default_rng(seed)
    known = rng.random((batch, n_labels)) < density
    pairs = draw_pairs(known.astype(np.uint8), 0.3, 0.3, np.random.default_rng(seed + 1))
    for t in (pairs.pos_idx, pairs.unl_idx, pairs.mu, pairs.valid):
        assert isinstance(t, torch.Tensor) and t.shape == (n_labels,)
    assert pairs.pos_idx.dtype == torch.int64 and pairs.unl_idx.dtype == torch.int64
    assert pairs.mu.dtype == torch.float32 and pairs.valid.dtype == torch.bool
    assert ((pairs.mu >= 0) & (pairs.mu <= 1)).all()
    for label in range(n_labels):
        has_both = known[:, label].any() and (~known[:, label]).any()
        assert bool(pairs.valid[label]) == has_both
        p, u = int(pairs.pos_idx[label]), int(pairs.unl_idx[label])
        assert 0 <= p < batch and 0 <= u < batch
        if has_both:
            assert known[p, label], "pos_idx must be a known positive of the label"
            assert not known[u, label], "unl_idx must be an unlabeled row of the label"


def test_draw_pairs_is_random_over_candidates_and_seeded() -> None:
    known = np.array([[1], [1], [0], [1], [0]], dtype=bool)
    rng = np.random.default_rng(0)
    seen_pos, seen_unl = set(), set()
    for _ in range(200):
        pairs = draw_pairs(known, 0.3, 0.3, rng)
        seen_pos.add(int(pairs.pos_idx[0]))
        seen_unl.add(int(pairs.unl_idx[0]))
    assert seen_pos == {0, 1, 3}
    assert seen_unl == {2, 4}
    a = draw_pairs(known, 0.3, 0.3, np.random.default_rng(7))
    b = draw_pairs(known, 0.3, 0.3, np.random.default_rng(7))
    for x, y in zip((a.pos_idx, a.unl_idx, a.mu, a.valid), (b.pos_idx, b.unl_idx, b.mu, b.valid), strict=True):
        assert torch.equal(x, y)


def test_draw_pairs_mu_follows_beta() -> None:
    known = np.eye(4, dtype=bool)
    rng = np.random.default_rng(0)
    mus = np.concatenate([draw_pairs(known, 2.0, 6.0, rng).mu.numpy() for _ in range(500)])
    # Beta(2, 6) has mean 0.25; Beta(0.3, 0.3) would have mean 0.5
    assert abs(mus.mean() - 0.25) < 0.02
    mus = np.concatenate([draw_pairs(known, 0.3, 0.3, rng).mu.numpy() for _ in range(500)])
    assert abs(mus.mean() - 0.5) < 0.04
    # U-shaped: most of the mass near 0 and 1
    assert ((mus < 0.1) | (mus > 0.9)).mean() > 0.5


def test_mixup_pairs_to_keeps_values() -> None:
    pairs = _pairs([0, 1], [2, 3], [0.25, 0.75], [True, False])
    moved = pairs.to("cpu")
    assert torch.equal(moved.pos_idx, pairs.pos_idx) and torch.equal(moved.mu, pairs.mu)
    assert torch.equal(moved.valid, pairs.valid) and torch.equal(moved.unl_idx, pairs.unl_idx)


# ---------------------------------------------------------------------------------------- forward_with_mixup

@pytest.mark.parametrize("at", PLACES)
def test_forward_shapes_and_batch_logits_equal_plain_forward(model: nn.Module, at: str) -> None:
    ids, mask = _batch()
    pairs = draw_pairs(KNOWN, 0.3, 0.3, np.random.default_rng(0))
    with torch.no_grad():
        logits, mixed = forward_with_mixup(model, ids, mask, pairs, at)  # type: ignore[arg-type]
        plain = model(input_ids=ids, attention_mask=mask).logits
    assert logits.shape == (5, N_LABELS)
    assert mixed.shape == (N_LABELS, N_LABELS)
    torch.testing.assert_close(logits, plain, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("at", ["encoder", "pooled"])
@pytest.mark.parametrize("mu", [1.0, 0.0])
def test_mu_extremes_reproduce_the_positive_or_unlabeled_row(model: nn.Module, at: str, mu: float) -> None:
    ids, mask = _batch()
    pos, unl = [0, 4, 2], [3, 0, 1]
    with torch.no_grad():
        logits, mixed = forward_with_mixup(model, ids, mask, _pairs(pos, unl, [mu] * 3), at)  # type: ignore[arg-type]
    source = pos if mu == 1.0 else unl
    torch.testing.assert_close(mixed, logits[source], atol=1e-5, rtol=1e-5)


def test_mu_one_at_word_level_equals_forward_of_the_positive_row(model: nn.Module) -> None:
    ids, mask = _batch(ragged=False)  # equal lengths: the union of the masks is the positive's mask
    pos, unl = [0, 4, 2], [3, 0, 1]
    with torch.no_grad():
        _, mixed = forward_with_mixup(model, ids, mask, _pairs(pos, unl, [1.0] * 3), "word")
        for label, p in enumerate(pos):
            alone = model(input_ids=ids[p : p + 1], attention_mask=mask[p : p + 1]).logits[0]
            torch.testing.assert_close(mixed[label], alone, atol=1e-5, rtol=1e-5)


def test_word_level_mixed_row_attends_over_union_of_masks(model: nn.Module) -> None:
    ids, mask = _batch()  # row 1 is padded after 4 tokens, row 0 is full length
    emb = model.get_input_embeddings()
    with torch.no_grad():
        _, mixed = forward_with_mixup(model, ids, mask, _pairs([1], [0], [0.3]), "word")
        e = 0.3 * emb(ids[1:2]) + 0.7 * emb(ids[0:1])  # Eq. 4: mu on the positive side
        want = model(inputs_embeds=e, attention_mask=torch.ones(1, ids.shape[1], dtype=torch.long)).logits
        swapped = model(inputs_embeds=0.7 * emb(ids[1:2]) + 0.3 * emb(ids[0:1]),
                        attention_mask=torch.ones(1, ids.shape[1], dtype=torch.long)).logits
        own_mask = model(inputs_embeds=e, attention_mask=mask[1:2]).logits
    torch.testing.assert_close(mixed[:1], want, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(mixed[:1], swapped, atol=1e-4)
    assert not torch.allclose(mixed[:1], own_mask, atol=1e-4)


def test_pooled_mixing_weights_positive_side_by_mu(model: nn.Module) -> None:
    # the classifier head is linear and dropout is off in eval mode, so mixing pooled embeddings mixes logits
    ids, mask = _batch()
    pos, unl, mu = [0, 4, 2], [3, 0, 1], [0.3, 0.8, 0.5]
    with torch.no_grad():
        logits, mixed = forward_with_mixup(model, ids, mask, _pairs(pos, unl, mu), "pooled")
    m = torch.tensor(mu)[:, None]
    torch.testing.assert_close(mixed, m * logits[pos] + (1 - m) * logits[unl], atol=1e-5, rtol=1e-5)


def test_encoder_mixing_interpolates_hidden_states(model: nn.Module) -> None:
    ids, mask = _batch()
    with torch.no_grad():
        _, mixed = forward_with_mixup(model, ids, mask, _pairs([2], [3], [0.3]), "encoder")
        hidden = model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        h = 0.3 * hidden[2:3] + 0.7 * hidden[3:4]
        want = model.classifier(model.encoder.pooler(h))
    torch.testing.assert_close(mixed[:1], want, atol=1e-5, rtol=1e-5)


def test_encoder_mixing_with_mean_pooling_averages_over_the_union_of_masks() -> None:
    model = _tiny_model(pooling="mean").eval()
    ids, mask = _batch()  # row 3 is padded after 5 tokens, row 2 is full length
    with torch.no_grad():
        _, mixed = forward_with_mixup(model, ids, mask, _pairs([3], [2], [0.4]), "encoder")
        hidden = model.encode(ids, mask)
        h = 0.4 * hidden[3] + 0.6 * hidden[2]  # (T, H), the union mask is row 2's (all ones)
        want = model.classifier(h.mean(0, keepdim=True))
    torch.testing.assert_close(mixed[:1], want, atol=1e-5, rtol=1e-5)


def test_unknown_place_raises(model: nn.Module) -> None:
    ids, mask = _batch()
    pairs = _pairs([0, 1, 2], [3, 3, 3], [0.5] * 3)
    with pytest.raises(ValueError, match="unknown MixUp place 'cls'"):
        forward_with_mixup(model, ids, mask, pairs, "cls")  # type: ignore[arg-type]
# ----------------------------------------------------------------------------------- the MixUp term's gradient

def _mixup_penalty_alone(model: nn.Module, at: str, *, detach_target: bool) -> torch.Tensor:
    ids, mask = _batch()
    pairs = draw_pairs(KNOWN, 0.3, 0.3, np.random.default_rng(1))
    logits, mixed = forward_with_mixup(model, ids, mask, pairs, at)  # type: ignore[arg-type]
    unl_logits = logits[pairs.unl_idx, torch.arange(N_LABELS)]
    target = mixup_target(pairs.mu, unl_logits.detach() if detach_target else unl_logits)
    return mixup_penalty_per_label(target, mixed, pairs.valid).sum()


@pytest.mark.parametrize("at", PLACES)
@pytest.mark.parametrize("detach_target", [False, True])
def test_mixup_penalty_alone_puts_gradient_on_word_embeddings(model: nn.Module, at: str,
                                                              detach_target: bool) -> None:
    model.zero_grad()
    penalty = _mixup_penalty_alone(model, at, detach_target=detach_target)
    assert penalty.item() > 0
    penalty.backward()
    grad = model.get_input_embeddings().weight.grad
    assert grad is not None and torch.isfinite(grad).all()
    assert grad.abs().sum().item() > 0
    assert model.classifier.weight.grad.abs().sum().item() > 0


def _step_grads(model: nn.Module, mixup_weight: float, at: str = "word") -> tuple[dict[str, torch.Tensor], dict]:
    ids, mask = _batch()
    model.zero_grad()
    config = TrainConfig(mixup_weight=mixup_weight, mixup_at=at)  # type: ignore[arg-type]
    out = dallmi_step(model, ids, mask, torch.from_numpy(KNOWN).float(), KNOWN, config, np.random.default_rng(5))
    out.loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    return grads, out.parts | {"loss": out.loss.detach()}


@pytest.mark.parametrize("at", PLACES)
def test_dallmi_step_mixup_term_changes_the_gradient(model: nn.Module, at: str) -> None:
    g0, parts0 = _step_grads(model, 0.0, at)
    g1, parts1 = _step_grads(model, 1.0, at)
    key = "encoder.embeddings.word_embeddings.weight"
    assert parts0["mixup"].item() == 0.0
    assert parts1["mixup"].item() > 0
    # the variational part is the same forward (eval mode), only the MixUp term differs
    torch.testing.assert_close(parts0["var"], parts1["var"], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(g0[key], g1[key], atol=1e-7, rtol=0)
    # the MixUp term's own gradient, g1 - g0, is non-zero on the word embeddings
    assert (g1[key] - g0[key]).abs().sum().item() > 1e-7


def test_dallmi_step_loss_is_var_plus_lambda_times_mixup(model: nn.Module) -> None:
    ids, mask = _batch()
    known = torch.from_numpy(KNOWN).float()
    for lam in (0.5, 2.0):
        config = TrainConfig(mixup_weight=lam)
        out = dallmi_step(model, ids, mask, known, KNOWN, config, np.random.default_rng(9))
        torch.testing.assert_close(out.loss, out.parts["var"] + lam * out.parts["mixup"])
        # recompute the parts by hand with the same draw
        pairs = draw_pairs(KNOWN, config.alpha, config.beta, np.random.default_rng(9))
        with torch.no_grad():
            logits, mixed = forward_with_mixup(model, ids, mask, pairs, "word")
            target = mixup_target(pairs.mu, logits[pairs.unl_idx, torch.arange(N_LABELS)])
            mix = mixup_penalty_per_label(target, mixed, pairs.valid).sum()
            var = variational_loss(logits, known, "norm")
        torch.testing.assert_close(out.parts["mixup"], mix, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(out.parts["var"], var, atol=1e-6, rtol=1e-5)


def test_dallmi_step_with_lambda_zero_draws_nothing(model: nn.Module) -> None:
    ids, mask = _batch()
    rng = np.random.default_rng(3)
    before = rng.bit_generator.state
    out = dallmi_step(model, ids, mask, torch.from_numpy(KNOWN).float(), KNOWN, TrainConfig(mixup_weight=0.0), rng)
    assert rng.bit_generator.state == before
    with torch.no_grad():
        plain = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(out.loss, variational_loss(plain, torch.from_numpy(KNOWN), "norm"))


# ------------------------------------------------------------------------------------- the other step losses

def test_bce_step_is_bce_on_all_labels(model: nn.Module) -> None:
    from dallmi_core import bce_loss
    from dallmi_core.steps import bce_step

    ids, mask = _batch()
    known = torch.from_numpy(KNOWN).float()
    out = bce_step(model, ids, mask, known)
    with torch.no_grad():
        want = bce_loss(model(input_ids=ids, attention_mask=mask).logits, known)
    torch.testing.assert_close(out.loss.detach(), want)
    torch.testing.assert_close(out.parts["bce"], want)
    assert out.loss.requires_grad


@pytest.mark.parametrize("form", ["norm", "log"])
def test_heldout_variational_loss_equals_eq1_on_eval_logits(model: nn.Module, form: str) -> None:
    from dallmi_core.modeling import Encoded
    from dallmi_core.steps import heldout_variational_loss

    ids, mask = _batch()
    encoded = Encoded(input_ids=ids, lengths=mask.sum(dim=1))
    model.train()
    config = TrainConfig(loss_form=form, eval_batch_size=2)  # type: ignore[arg-type]
    got = heldout_variational_loss(model, encoded, KNOWN, config, torch.device("cpu"))
    assert isinstance(got, float)
    assert model.training
    model.eval()
    with torch.no_grad():
        want = variational_loss(model(input_ids=ids, attention_mask=mask).logits, torch.from_numpy(KNOWN), form)
    assert got == pytest.approx(want.item(), abs=1e-4)


def test_mixup_grad_prediction_keeps_the_value_and_drops_the_targets_gradient(model: nn.Module) -> None:
    ids, mask = _batch()
    known = torch.from_numpy(KNOWN).float()
    outs, grads = {}, {}
    for mode in ("full", "prediction"):
        model.zero_grad()
        config = TrainConfig(mixup_grad=mode)  # type: ignore[arg-type]
        outs[mode] = dallmi_step(model, ids, mask, known, KNOWN, config, np.random.default_rng(4))
        outs[mode].loss.backward()
        grads[mode] = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    torch.testing.assert_close(outs["full"].loss, outs["prediction"].loss)
    key = "classifier.bias"  # the target's sigma(Phi(s_u)) pulls the bias too when it carries gradient
    assert not torch.allclose(grads["full"][key], grads["prediction"][key], atol=1e-7, rtol=0)


def test_dallmi_step_adds_the_weighted_anchor_when_given_the_source_scores(model: nn.Module) -> None:
    ids, mask = _batch()
    known = torch.from_numpy(KNOWN).float()
    teacher = torch.full((5, N_LABELS), 0.25)
    for weight in (0.0, 2.0):
        config = TrainConfig(anchor_weight=weight)
        out = dallmi_step(model, ids, mask, known, KNOWN, config, np.random.default_rng(9), teacher)
        expected = out.parts["var"] + out.parts["mixup"] + weight * out.parts["anchor"]
        torch.testing.assert_close(out.loss, expected)
        assert (out.parts["anchor"] > 0) == (weight > 0)
