"""Unit tests of dallmi_core.losses: Eq. 1 (norm and log forms), Eq. 2, Eq. 5 and the BCE baseline."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dallmi_core import (
    VariationalLoss,
    bce_loss,
    mixup_penalty_per_label,
    mixup_target,
    variational_loss,
    variational_loss_per_label,
)

LN3, LN9 = math.log(3.0), math.log(9.0)

# A (B=4, L=2) batch whose sigmoids are round numbers:
#   sigma(ln 3) = 0.75, sigma(0) = 0.5, sigma(ln 9) = 0.9, sigma(-ln 3) = 0.25, sigma(-ln 9) = 0.1
HAND_LOGITS = [
    [LN3, 0.0],  # sigma: [0.75, 0.5 ]
    [0.0, LN9],  # sigma: [0.5 , 0.9 ]
    [-LN3, -LN9],  # sigma: [0.25, 0.1 ]
    [LN9, -LN3],  # sigma: [0.9 , 0.25]
]
HAND_KNOWN = [
    [1, 0],
    [0, 1],
    [0, 0],
    [1, 1],
]
# label 0: P = rows {0, 3} (sigma 0.75, 0.9), U = rows {1, 2} (sigma 0.5, 0.25)
# label 1: P = rows {1, 3} (sigma 0.9, 0.25), U = rows {0, 2} (sigma 0.5, 0.1)


def _hand_batch() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(HAND_LOGITS, dtype=torch.float32), torch.tensor(HAND_KNOWN, dtype=torch.bool)


def test_norm_form_hand_values() -> None:
    logits, known = _hand_batch()
    # label 0: mean_U sigma = (0.5 + 0.25) / 2 = 0.375; mean_P |sigma| = (0.75 + 0.9) / 2 = 0.825
    #          L_var^0 = 0.375 - 0.825 = -0.45
    # label 1: mean_U sigma = (0.5 + 0.1) / 2 = 0.3;    mean_P |sigma| = (0.9 + 0.25) / 2 = 0.575
    #          L_var^1 = 0.3 - 0.575 = -0.275
    per_label = variational_loss_per_label(logits, known, "norm")
    assert per_label.dtype == torch.float32
    assert per_label.shape == (2,)
    torch.testing.assert_close(per_label, torch.tensor([-0.45, -0.275]), atol=1e-6, rtol=0)
    # L_var = -0.45 - 0.275 = -0.725
    torch.testing.assert_close(variational_loss(logits, known, "norm"), torch.tensor(-0.725), atol=1e-6, rtol=0)
    torch.testing.assert_close(VariationalLoss("norm")(logits, known), torch.tensor(-0.725), atol=1e-6, rtol=0)


def test_log_form_hand_values() -> None:
    logits, known = _hand_batch()
    # label 0: log(0.375) - (log 0.75 + log 0.9) / 2 = -0.980829 - (-0.287682 - 0.105361) / 2 = -0.784308
    # label 1: log(0.3)   - (log 0.9 + log 0.25) / 2 = -1.203973 - (-0.105361 - 1.386294) / 2 = -0.458145
    expected = torch.tensor([
        math.log(0.375) - (math.log(0.75) + math.log(0.9)) / 2,
        math.log(0.3) - (math.log(0.9) + math.log(0.25)) / 2,
    ])
    torch.testing.assert_close(expected, torch.tensor([-0.784308, -0.458145]), atol=1e-6, rtol=0)
    per_label = variational_loss_per_label(logits, known, "log")
    torch.testing.assert_close(per_label, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(variational_loss(logits, known, "log"), expected.sum(), atol=1e-5, rtol=0)
    torch.testing.assert_close(VariationalLoss("log")(logits, known), expected.sum(), atol=1e-5, rtol=0)


def test_default_form_is_norm() -> None:
    logits, known = _hand_batch()
    torch.testing.assert_close(variational_loss_per_label(logits, known),
                               variational_loss_per_label(logits, known, "norm"))
    assert VariationalLoss().form == "norm"


def _reference_per_label(logits: torch.Tensor, known: torch.Tensor, form: str) -> torch.Tensor:
    """Eq. 1 written label by label, the way Algorithm 1 states it (lines 1-3)."""
    values = []
    for label in range(logits.shape[1]):
        z = logits[:, label].double()
        positive = known[:, label].bool()
        unlabeled = ~positive
        if positive.sum() == 0 or unlabeled.sum() == 0:
            values.append(torch.zeros((), dtype=torch.float64))
            continue
        if form == "norm":
            unl = torch.sigmoid(z[unlabeled]).mean()
            pos = torch.sigmoid(z[positive]).abs().mean()
        else:
            unl = torch.log(torch.sigmoid(z[unlabeled]).mean())
            pos = torch.log(torch.sigmoid(z[positive])).mean()
        values.append(unl - pos)
    return torch.stack(values).float()


@settings(max_examples=50, deadline=None)
@given(
    batch=st.integers(1, 9),
    n_labels=st.integers(1, 6),
    density=st.floats(0.0, 1.0),
    scale=st.floats(0.1, 8.0),
    seed=st.integers(0, 2**31 - 1),
    form=st.sampled_from(["norm", "log"]),
)
def test_vectorised_equals_per_label_reference(batch: int, n_labels: int, density: float, scale: float,
                                               seed: int, form: str) -> None:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, n_labels, generator=gen) * scale
    known = torch.rand(batch, n_labels, generator=gen) < density
    got = variational_loss_per_label(logits, known, form)
    want = _reference_per_label(logits, known, form)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # known given as 0/1 floats means the same as bool
    torch.testing.assert_close(variational_loss_per_label(logits, known.float(), form), got)
    torch.testing.assert_close(variational_loss(logits, known, form), want.sum(), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("form", ["norm", "log"])
def test_gradient_matches_reference(form: str) -> None:
    gen = torch.Generator().manual_seed(3)
    base = torch.randn(6, 4, generator=gen) * 2
    known = torch.rand(6, 4, generator=gen) < 0.4
    known[0, :] = True  # every label has a positive
    known[1, :] = False  # and an unlabeled row
    a = base.clone().requires_grad_(True)
    variational_loss(a, known, form).backward()
    b = base.clone().requires_grad_(True)
    _reference_per_label(b, known, form).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("form", ["norm", "log"])
def test_absent_label_contributes_zero_without_nan(form: str) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(5, 3, generator=gen) * 3).requires_grad_(True)
    known = torch.tensor([
        [1, 0, 1],
        [1, 0, 0],
        [1, 0, 1],
        [1, 0, 0],
        [1, 0, 0],
    ], dtype=torch.bool)
    # label 0: only positives (no unlabeled row); label 1: no positive; label 2: both
    per_label = variational_loss_per_label(logits, known, form)
    assert torch.isfinite(per_label).all()
    assert per_label[0].item() == 0.0
    assert per_label[1].item() == 0.0
    assert per_label[2].item() != 0.0
    per_label.sum().backward()
    grad = logits.grad
    assert grad is not None and torch.isfinite(grad).all()
    assert torch.equal(grad[:, :2], torch.zeros(5, 2))
    assert (grad[:, 2] != 0).all()


@pytest.mark.parametrize("form", ["norm", "log"])
def test_batch_with_no_positive_at_all_is_zero(form: str) -> None:
    logits = torch.randn(3, 2, requires_grad=True)
    known = torch.zeros(3, 2, dtype=torch.bool)
    loss = variational_loss(logits, known, form)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(3, 2))


def test_log_form_finite_for_extreme_logits() -> None:
    # label 0: positive at +200, unlabeled at -200 and -200; label 1: positive at -200, unlabeled at +200, -200
    logits = torch.tensor([[200.0, -200.0], [-200.0, 200.0], [-200.0, -200.0]], requires_grad=True)
    known = torch.tensor([[1, 1], [0, 0], [0, 0]], dtype=torch.bool)
    # a naive log(mean(sigmoid)) over U of label 0 underflows to log(0) = -inf in float32
    naive = torch.log(torch.sigmoid(logits.detach()[1:, 0]).mean())
    assert naive.item() == float("-inf")
    per_label = variational_loss_per_label(logits, known, "log")
    assert torch.isfinite(per_label).all()
    # label 0: log(mean(e^-200, e^-200)) - log sigma(200) = -200 - 0
    # label 1: log((1 + e^-200) / 2) - log sigma(-200) = -log 2 + 200
    torch.testing.assert_close(per_label, torch.tensor([-200.0, 200.0 - math.log(2.0)]), atol=1e-3, rtol=0)
    per_label.sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_norm_form_finite_for_extreme_logits() -> None:
    logits = torch.tensor([[200.0], [-200.0], [1e4], [-1e4]], requires_grad=True)
    known = torch.tensor([[1], [0], [1], [0]], dtype=torch.bool)
    loss = variational_loss(logits, known, "norm")
    # mean_U sigma = 0, mean_P sigma = 1
    torch.testing.assert_close(loss, torch.tensor(-1.0))
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_half_precision_logits_are_computed_in_float32() -> None:
    logits, known = _hand_batch()
    out = variational_loss_per_label(logits.to(torch.bfloat16), known, "norm")
    assert out.dtype == torch.float32


def test_errors() -> None:
    with pytest.raises(ValueError, match="must both be"):
        variational_loss_per_label(torch.zeros(3, 2), torch.zeros(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="must both be"):
        variational_loss_per_label(torch.zeros(3), torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="unknown variational loss form 'l2'"):
        variational_loss_per_label(torch.zeros(3, 2), torch.zeros(3, 2, dtype=torch.bool), "l2")  # type: ignore[arg-type]


def test_mixup_penalty_hand_values() -> None:
    target = torch.tensor([0.6, 0.2, 0.9])
    # only the diagonal counts: sigma(ln 3) = 0.75, sigma(0) = 0.5, sigma(-ln 9) = 0.1
    mixed_logits = torch.tensor([
        [LN3, 5.0, -5.0],
        [7.0, 0.0, 3.0],
        [-1.0, 2.0, -LN9],
    ])
    valid = torch.tensor([True, True, False])
    # (0.6 - 0.75)^2 = 0.0225; (0.2 - 0.5)^2 = 0.09; label 2 invalid -> 0 (would be (0.9 - 0.1)^2 = 0.64)
    penalty = mixup_penalty_per_label(target, mixed_logits, valid)
    assert penalty.dtype == torch.float32
    torch.testing.assert_close(penalty, torch.tensor([0.0225, 0.09, 0.0]), atol=1e-6, rtol=0)
    all_valid = mixup_penalty_per_label(target, mixed_logits, torch.ones(3, dtype=torch.bool))
    torch.testing.assert_close(all_valid, torch.tensor([0.0225, 0.09, 0.64]), atol=1e-6, rtol=0)


def test_mixup_penalty_gradient_only_through_diagonal_and_valid() -> None:
    target = torch.tensor([0.3, 0.8], requires_grad=True)
    mixed = torch.zeros(2, 2, requires_grad=True)
    valid = torch.tensor([True, False])
    mixup_penalty_per_label(target, mixed, valid).sum().backward()
    # d/dz (0.3 - sigma(z))^2 at z=0 = -2 (0.3 - 0.5) * 0.25 = 0.1
    torch.testing.assert_close(mixed.grad, torch.tensor([[0.1, 0.0], [0.0, 0.0]]))
    # d/dt (t - 0.5)^2 at t=0.3 = -0.4
    torch.testing.assert_close(target.grad, torch.tensor([-0.4, 0.0]))


def test_mixup_target_hand_values() -> None:
    mu = torch.tensor([0.5, 0.25, 1.0, 0.0])
    unl_logits = torch.tensor([0.0, LN3, -3.0, -LN9])
    # 0.5 + 0.5 * 0.5 = 0.75; 0.25 + 0.75 * 0.75 = 0.8125; mu = 1 -> 1; mu = 0 -> sigma(-ln 9) = 0.1
    target = mixup_target(mu, unl_logits)
    assert target.dtype == torch.float32
    torch.testing.assert_close(target, torch.tensor([0.75, 0.8125, 1.0, 0.1]), atol=1e-6, rtol=0)


def test_mixup_target_keeps_gradient_through_unlabeled_logits() -> None:
    unl = torch.tensor([0.0, 0.0], requires_grad=True)
    mixup_target(torch.tensor([0.5, 1.0]), unl).sum().backward()
    # d/dz (1 - mu) sigma(z) at z=0 = (1 - mu) / 4
    torch.testing.assert_close(unl.grad, torch.tensor([0.125, 0.0]))


def test_bce_loss_equals_torch_bce() -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(5, 3, generator=gen) * 3
    targets = (torch.rand(5, 3, generator=gen) < 0.5).float()
    got = bce_loss(logits, targets)
    assert got.dtype == torch.float32 and got.dim() == 0
    torch.testing.assert_close(got, F.binary_cross_entropy(torch.sigmoid(logits), targets), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got, torch.nn.BCEWithLogitsLoss()(logits, targets))
    # bool / uint8 targets are accepted
    torch.testing.assert_close(bce_loss(logits, targets.bool()), got)


def test_bce_loss_hand_value() -> None:
    # -(1 * log sigma(0) + (1 - 0) * log(1 - sigma(ln 3))) / 2 = -(log 0.5 + log 0.25) / 2 = 1.0397208
    got = bce_loss(torch.tensor([[0.0, LN3]]), torch.tensor([[1.0, 0.0]]))
    torch.testing.assert_close(got, torch.tensor(-(math.log(0.5) + math.log(0.25)) / 2))
