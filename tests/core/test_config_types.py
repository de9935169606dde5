"""TrainConfig rejects values of the wrong type and non-finite numbers, naming the key."""
import math

import pytest

from dallmi_core import TrainConfig


@pytest.mark.parametrize(("key", "value"), [
    ("lr", "abc"), ("mixup_weight", "1"), ("alpha", None), ("warmup_ratio", "0.1"), ("device", 5),
    ("checkpoint_every_steps", "3"),
])
def test_wrong_type_raises_value_error_naming_the_key(key, value):
    # before the fix: ValueError("'>' not supported between instances of 'str' and 'int'") without the key,
    # and AttributeError for device=5
    with pytest.raises(ValueError, match=key):
        TrainConfig.from_dict({key: value})


@pytest.mark.parametrize("key", ["mixup_weight", "weight_decay", "max_grad_norm"])
def test_nan_is_refused(key):
    # before the fix: accepted (NaN < 0 is False), a NaN lambda makes every loss NaN
    with pytest.raises(ValueError, match=key):
        TrainConfig.from_dict({key: math.nan})


def test_seed_must_be_an_int():
    with pytest.raises(ValueError, match="seed"):
        TrainConfig.from_dict({"seed": "x"})
