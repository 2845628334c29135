"""The model registry: names, duplicates, unknown names, and configs reaching the constructor."""

from __future__ import annotations

import pytest

from cnnbench.models import create_model, list_models, register_model
from cnnbench.models.registry import _MODELS


def test_core_models_are_registered():
    assert {"lenet", "lenet5", "resnet18"} <= set(list_models())
    assert list_models("lenet*")[:2] == ["lenet", "lenet5"]
    assert list_models() == sorted(list_models())


def test_registering_a_name_twice_is_an_error():
    def lenet(num_classes=10, in_chans=1):  # same name as the registered d2l LeNet
        raise AssertionError("never built")

    with pytest.raises(ValueError, match="already registered"):
        register_model(lenet)
    assert _MODELS["lenet"] is not lenet


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="lenet5"):
        create_model("lenet6")


def test_num_classes_and_in_chans_reach_the_model():
    import torch

    model = create_model("resnet18", num_classes=7, in_chans=3)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    assert create_model("lenet", num_classes=4, in_chans=3, input_size=32)(torch.randn(1, 3, 32, 32)).shape == (1, 4)
