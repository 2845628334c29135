"""The model zoo against the seeds: a forward pass on every input size, a gradient on every parameter,
parameters as the seeds' code builds them, the seeds' shape printouts, receptive fields, too-small
inputs, seed 003's from-scratch batch norm, `build_model`, the model configs and the generated table."""

from __future__ import annotations

import importlib.util
import inspect
import re

import pytest
import torch
import torch.nn as nn
from omegaconf import OmegaConf

from cnnbench.config import build_model
from cnnbench.errors import ConfigError
from cnnbench.inspect import inspect_model
from cnnbench.models import InputTooSmall, conv_output_size, create_model, get_model_factory, list_models
from cnnbench.models.batchnorm import BatchNorm
from cnnbench.models.resnet import BasicBlock
from cnnbench.models.shapes import min_input_size, spatial_path
from tests.conftest import REPO
from tests.models.seed_reference import SEED_NETWORKS

# (in_chans, size): MNIST-like, CIFAR-10, and the d2l book's two resizes of Fashion-MNIST.
INPUTS = [(1, 28), (3, 32), (1, 96), (1, 224)]
# Inputs too small for the model's pooling stack: construction must refuse them.
REFUSED = {("alexnet", 28), ("alexnet", 32), ("nin", 28), ("nin", 32), ("vgg11", 28), ("densenet", 28)}

# Parameter counts (10 classes, 1 input channel) from running the seeds' code (tests/models/seed_reference.py).
SEED_CODE_PARAMS = {
    "lenet": 61_706, "lenet5": 61_706, "lenet_bn": 44_878, "lenet_bn_scratch": 44_878,
    "alexnet": 46_764_746, "alexnet_small": 431_946, "vgg11": 128_806_154, "nin": 1_992_166,
    "googlenet": 5_977_530, "resnet18": 11_172_810, "resnet34": 21_280_970, "resnet50": 23_519_690,
    "densenet": 758_226, "mlp": 6_442, "cnn_small": 6_422,
}


def takes_input_size(name: str) -> bool:
    return "input_size" in inspect.signature(get_model_factory(name)).parameters


def make(name: str, in_chans: int = 1, size: int = 28, num_classes: int = 10, **kwargs) -> nn.Module:
    if takes_input_size(name):
        kwargs["input_size"] = size
    return create_model(name, num_classes=num_classes, in_chans=in_chans, **kwargs)


def options_for(name: str, size: int) -> dict:
    """Keep the suite fast: ResNets take the d2l stem at 96/224, VGG-11 the book's quarter width."""
    if name.startswith("resnet") and name != "resnet_small" and size >= 96:
        return {"stem": "imagenet"}
    if name == "vgg11" and size >= 96:
        return {"width_div": 4}
    return {}


# --- every model, every input size ----------------------------------------------------------------------

@pytest.mark.parametrize(("in_chans", "size"), INPUTS, ids=[f"{c}x{s}" for c, s in INPUTS])
@pytest.mark.parametrize("name", list_models())
def test_forward(name, in_chans, size):
    if (name, size) in REFUSED:
        with pytest.raises(InputTooSmall, match=r"needs inputs of at least \d+x\d+") as err:
            make(name, in_chans, size, num_classes=7)
        assert "\n" not in str(err.value) and err.value.needed > size
        return
    torch.manual_seed(0)
    # the large inputs only for their shapes (seconds each on a CPU); the values at the sizes the tests train at
    with torch.device("meta" if size >= 96 else "cpu"):
        model = make(name, in_chans, size, num_classes=7, **options_for(name, size))
        with torch.no_grad():
            out = model(torch.randn(2, in_chans, size, size))
    assert out.shape == (2, 7)
    assert out.is_meta or torch.isfinite(out).all()


@pytest.mark.parametrize("name", list_models())
def test_gradient_reaches_every_parameter(name):
    # The first input size the model accepts; gradient flow does not depend on the size.
    in_chans, size = next((c, s) for c, s in INPUTS if (name, s) not in REFUSED)
    torch.manual_seed(0)
    model = make(name, in_chans, size, **options_for(name, size))
    out = model(torch.randn(2, in_chans, size, size))
    out.square().mean().backward()
    assert torch.isfinite(out).all()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, f"{name}: no gradient for {param_name}"
        assert torch.isfinite(param.grad).all(), f"{name}: non-finite gradient for {param_name}"
        assert param.grad.abs().sum() > 0, f"{name}: zero gradient for {param_name}"


@pytest.mark.parametrize("name", sorted({name for name, _ in REFUSED}))
def test_refusing_models_run_at_their_minimum_size(name):
    options = options_for(name, 224)
    with torch.device("meta"):
        size = min_input_size(spatial_path(make(name, size=224, **options)))
    model = make(name, size=size, **options).eval()
    assert model(torch.zeros(1, 1, size, size)).shape == (1, 10)
    with pytest.raises(InputTooSmall):
        make(name, size=size - 1, **options)


def test_refusal_message_names_the_resize(make_cfg):
    with pytest.raises(InputTooSmall) as err:
        make("alexnet", size=28)
    assert (err.value.needed, err.value.hint) == (65, "224 (the d2l book's size)")
    with pytest.raises(ConfigError) as err:  # the config's words, at the top
        build_model(make_cfg(["model=alexnet", "data=digits"]))
    assert str(err.value) == ("model alexnet needs inputs of at least 65x65 (got 28x28): "
                              "set data.resize=224 (the d2l book's size)")


# --- parameters as the seeds' code builds them ---------------------------------------------------------

OWN_MODELS = {"resnet_small"}  # cnnbench's own, built from a seed's blocks (tested below)


def test_every_registered_model_has_a_seed_reference():
    assert sorted(SEED_NETWORKS) == sorted(set(list_models()) - OWN_MODELS)


def test_resnet_small_is_the_seeds_basic_block_in_a_short_stack():
    model = make("resnet_small")
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 3 and [b.conv1.out_channels for b in blocks] == [32, 64, 128]
    assert sum(p.numel() for p in model.parameters()) == 308_074
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    strided = make("resnet_small", widths=[16, 32], depths=[2, 1], stem_stride=2)
    assert strided.stem(torch.zeros(1, 1, 28, 28)).shape == (1, 16, 14, 14)
    assert len([m for m in strided.modules() if isinstance(m, BasicBlock)]) == 3
    with pytest.raises(ValueError, match=r"widths=\[16, 32\] is not allowed with depths=\[1\]"):
        make("resnet_small", widths=[16, 32], depths=[1])


@pytest.mark.parametrize("name", sorted(set(list_models()) - OWN_MODELS))
def test_parameters_match_the_seed_code(name):
    build_seed, (in_chans, size, _) = SEED_NETWORKS[name]
    with torch.device("meta"):  # shapes only: no memory, no init time (VGG-11 has 129M parameters)
        seed_model = build_seed()
        ours = make(name, in_chans, size)
    assert [tuple(p.shape) for p in ours.parameters()] == [tuple(p.shape) for p in seed_model.parameters()]
    assert sum(p.numel() for p in ours.parameters()) == SEED_CODE_PARAMS[name]


@pytest.mark.parametrize(("name", "printed"), [("resnet18", 11_173_962), ("resnet34", 21_282_122)])
def test_seed_001_printed_resnet_counts_are_for_three_channels(name, printed):
    with torch.device("meta"):
        assert sum(p.numel() for p in make(name, in_chans=3).parameters()) == printed


def test_vgg11_quarter_width_as_the_book_trains_it():
    with torch.device("meta"):
        assert sum(p.numel() for p in make("vgg11", size=224, width_div=4).parameters()) == 43_093_322


# --- the seeds' shape printouts ------------------------------------------------------------------------

def parse_printout(text: str) -> list[tuple[str, list[int]]]:
    """`Conv2d output shape:  torch.Size([1, 6, 28, 28])` lines -> [("Conv2d", [1, 6, 28, 28]), ...]."""
    rows = re.findall(r"(\w+) \w+ shape:\s*torch\.Size\(\[([\d, ]+)\]\)", text)
    return [(kind, [int(d) for d in dims.split(",")]) for kind, dims in rows]


def module_outputs(model: nn.Module, x: torch.Tensor, names: list[str]) -> list[tuple[str, list[int]]]:
    """(type, output shape) of the named submodules, in call order: what the seeds' `for blk in net` prints."""
    modules = dict(model.named_modules())
    rows = []
    handles = [modules[n].register_forward_hook(lambda m, i, o: rows.append((type(m).__name__, list(o.shape))))
               for n in names]
    with torch.no_grad():
        model.eval()(x)
    for handle in handles:
        handle.remove()
    return rows


LENET_28 = """  (seed 000, d2l LeNet)
Conv2d output shape: 	 torch.Size([1, 6, 28, 28])
Sigmoid output shape: 	 torch.Size([1, 6, 28, 28])
AvgPool2d output shape: 	 torch.Size([1, 6, 14, 14])
Conv2d output shape: 	 torch.Size([1, 16, 10, 10])
Sigmoid output shape: 	 torch.Size([1, 16, 10, 10])
AvgPool2d output shape: 	 torch.Size([1, 16, 5, 5])
Flatten output shape: 	 torch.Size([1, 400])
Linear output shape: 	 torch.Size([1, 120])
Sigmoid output shape: 	 torch.Size([1, 120])
Linear output shape: 	 torch.Size([1, 84])
Sigmoid output shape: 	 torch.Size([1, 84])
Linear output shape: 	 torch.Size([1, 10])
"""
ALEXNET_224 = """  (seed 000 / 003, d2l AlexNet)
Conv2d output shape:	 torch.Size([1, 96, 54, 54])
ReLU output shape:	 torch.Size([1, 96, 54, 54])
MaxPool2d output shape:	 torch.Size([1, 96, 26, 26])
Conv2d output shape:	 torch.Size([1, 256, 26, 26])
ReLU output shape:	 torch.Size([1, 256, 26, 26])
MaxPool2d output shape:	 torch.Size([1, 256, 12, 12])
Conv2d output shape:	 torch.Size([1, 384, 12, 12])
ReLU output shape:	 torch.Size([1, 384, 12, 12])
Conv2d output shape:	 torch.Size([1, 384, 12, 12])
ReLU output shape:	 torch.Size([1, 384, 12, 12])
Conv2d output shape:	 torch.Size([1, 256, 12, 12])
ReLU output shape:	 torch.Size([1, 256, 12, 12])
MaxPool2d output shape:	 torch.Size([1, 256, 5, 5])
Flatten output shape:	 torch.Size([1, 6400])
Linear output shape:	 torch.Size([1, 4096])
ReLU output shape:	 torch.Size([1, 4096])
Dropout output shape:	 torch.Size([1, 4096])
Linear output shape:	 torch.Size([1, 4096])
ReLU output shape:	 torch.Size([1, 4096])
Dropout output shape:	 torch.Size([1, 4096])
Linear output shape:	 torch.Size([1, 10])
"""
VGG11_224 = """  (seed 000, d2l VGG-11; its `ouput` typo kept)
Sequential ouput shape:	 torch.Size([1, 64, 112, 112])
Sequential ouput shape:	 torch.Size([1, 128, 56, 56])
Sequential ouput shape:	 torch.Size([1, 256, 28, 28])
Sequential ouput shape:	 torch.Size([1, 512, 14, 14])
Sequential ouput shape:	 torch.Size([1, 512, 7, 7])
Flatten ouput shape:	 torch.Size([1, 25088])
Linear ouput shape:	 torch.Size([1, 4096])
ReLU ouput shape:	 torch.Size([1, 4096])
Dropout ouput shape:	 torch.Size([1, 4096])
Linear ouput shape:	 torch.Size([1, 4096])
ReLU ouput shape:	 torch.Size([1, 4096])
Dropout ouput shape:	 torch.Size([1, 4096])
Linear ouput shape:	 torch.Size([1, 10])
"""
NIN_224 = """  (seed 003, d2l NiN)
# Sequential output shape:   torch.Size([1, 96, 54, 54])
# MaxPool2d output shape:    torch.Size([1, 96, 26, 26])
# Sequential output shape:   torch.Size([1, 256, 26, 26])
# MaxPool2d output shape:    torch.Size([1, 256, 12, 12])
# Sequential output shape:   torch.Size([1, 384, 12, 12])
# MaxPool2d output shape:    torch.Size([1, 384, 5, 5])
# Dropout output shape:  torch.Size([1, 384, 5, 5])
# Sequential output shape:   torch.Size([1, 10, 5, 5])
# AdaptiveAvgPool2d output shape:    torch.Size([1, 10, 1, 1])
# Flatten output shape:  torch.Size([1, 10])
"""
GOOGLENET_96 = """  (seed 003, d2l GoogLeNet)
# Sequential output shape:   torch.Size([1, 64, 24, 24])
# Sequential output shape:   torch.Size([1, 192, 12, 12])
# Sequential output shape:   torch.Size([1, 480, 6, 6])
# Sequential output shape:   torch.Size([1, 832, 3, 3])
# Sequential output shape:   torch.Size([1, 1024])
# Linear output shape:   torch.Size([1, 10])
"""
RESNET18_224 = """  (seed 000 / 003, d2l ResNet-18: our resnet18 with stem=imagenet has the same shapes)
Sequential output shape:	 torch.Size([1, 64, 56, 56])
Sequential output shape:	 torch.Size([1, 64, 56, 56])
Sequential output shape:	 torch.Size([1, 128, 28, 28])
Sequential output shape:	 torch.Size([1, 256, 14, 14])
Sequential output shape:	 torch.Size([1, 512, 7, 7])
AdaptiveAvgPool2d output shape:	 torch.Size([1, 512, 1, 1])
Flatten output shape:	 torch.Size([1, 512])
Linear output shape:	 torch.Size([1, 10])
"""
LENET5_TRACE = [  # seed 001's trace_shapes(LeNet5(), torch.randn(1, 1, 28, 28)), names included
    ("features.0", [1, 6, 28, 28]), ("features.1", [1, 6, 28, 28]), ("features.2", [1, 6, 14, 14]),
    ("features.3", [1, 16, 10, 10]), ("features.4", [1, 16, 10, 10]), ("features.5", [1, 16, 5, 5]),
    ("classifier.0", [1, 400]), ("classifier.1", [1, 120]),
]


@pytest.mark.parametrize(("name", "size", "printout"), [("lenet", 28, LENET_28), ("alexnet", 224, ALEXNET_224)])
def test_layer_printouts(name, size, printout):
    with torch.device("meta"):
        report = inspect_model(make(name, size=size), (1, 1, size, size))
    assert [(layer["type"], layer["output_shape"]) for layer in report["layers"]] == parse_printout(printout)


@pytest.mark.parametrize(("name", "size", "options", "blocks", "printout"), [
    ("vgg11", 224, {}, [f"features.{i}" for i in range(5)] + [f"classifier.{i}" for i in range(8)], VGG11_224),
    ("nin", 224, {}, [f"net.{i}" for i in range(10)], NIN_224),
    ("googlenet", 96, {}, [f"net.{i}" for i in range(6)], GOOGLENET_96),
    ("resnet18", 224, {"stem": "imagenet"},
     ["stem", "layer1", "layer2", "layer3", "layer4", "avgpool", "flatten", "classifier"], RESNET18_224),
])
def test_block_printouts(name, size, options, blocks, printout):
    with torch.device("meta"):  # shapes only
        model = make(name, size=size, **options)
        rows = module_outputs(model, torch.zeros(1, 1, size, size), blocks)
        layers = inspect_model(model, (1, 1, size, size))["layers"]
    expected = parse_printout(printout)
    assert rows == expected
    # In inspect's leaf-module listing, a block's output is the output of its last leaf call.
    block_ends = [[layer for layer in layers if layer["name"] == block or layer["name"].startswith(block + ".")][-1]
                  for block in blocks]
    assert [layer["output_shape"] for layer in block_ends] == [shape for _, shape in expected]


def test_lenet5_trace_names_and_shapes():
    report = inspect_model(make("lenet5"), (1, 1, 28, 28))
    assert [(layer["name"], layer["output_shape"]) for layer in report["layers"]][:8] == LENET5_TRACE


# --- receptive field and the output-size formula (seed 001) -----------------------------------------------

def test_lenet_receptive_fields_are_seed_001s_table():
    layers = {layer["name"]: layer for layer in inspect_model(make("lenet"), (1, 1, 28, 28))["layers"]}
    fields = [layers[f"features.{i}"]["receptive_field"] for i in (0, 2, 3, 5)]  # conv1, pool1, conv2, pool2
    assert fields == [5, 6, 14, 16]
    assert layers["classifier.0"]["receptive_field"] is None  # after flattening


def test_conv_output_size_reproduces_seed_001():
    assert [conv_output_size(28, 3, 1, 0), conv_output_size(28, 3, 1, 1), conv_output_size(28, 3, 2, 1),
            conv_output_size(28, 1, 1, 0)] == [26, 28, 14, 28]
    assert conv_output_size(28, 3, padding=2, dilation=2) == 28  # the dilated 3x3 that covers 5x5
    assert conv_output_size(224, 11, stride=4, padding=1) == 54  # AlexNet's first layer


# --- seed 003's from-scratch batch normalization -----------------------------------------------------------

def test_scratch_batchnorm_normalizes_like_torch_in_training():
    torch.manual_seed(0)
    x = torch.randn(8, 6, 5, 5) * 3 + 2
    ours, reference = BatchNorm(6, num_dims=4), nn.BatchNorm2d(6)
    torch.testing.assert_close(ours(x), reference(x))
    # momentum 0.9 on the old value is nn.BatchNorm's momentum 0.1 on the new one
    torch.testing.assert_close(ours.moving_mean.flatten(), reference.running_mean)
    assert not torch.equal(ours.moving_mean, torch.zeros_like(ours.moving_mean))


def test_scratch_batchnorm_train_and_eval_differ():
    torch.manual_seed(0)
    layer = BatchNorm(4, num_dims=2)
    x = torch.randn(16, 4) * 2 + 5
    layer.eval()
    eval_before = layer(x)
    torch.testing.assert_close(eval_before, x / torch.sqrt(torch.tensor(1 + 1e-5)))  # moving stats 0 and 1
    layer.train()
    train_out = layer(x)
    torch.testing.assert_close(train_out.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    layer.eval()
    assert not torch.allclose(layer(x), eval_before)  # the moving statistics moved
    assert not torch.allclose(layer(x), train_out)


def test_scratch_batchnorm_state_is_saved_and_moves_with_the_model():
    model = make("lenet_bn_scratch")
    state = model.state_dict()
    assert "features.1.moving_mean" in state and "classifier.2.moving_var" in state
    model(torch.randn(4, 1, 28, 28))
    assert not torch.equal(model.state_dict()["features.1.moving_mean"], torch.zeros(1, 6, 1, 1))
    assert model.to(torch.float64).features[1].moving_var.dtype == torch.float64


# --- create_model: the one way to build a model ------------------------------------------------------------

SIZES = {"num_classes": 10, "in_chans": 1, "input_size": 28}


def test_create_model_passes_the_input_size_to_models_that_derive_layers_from_it():
    model = create_model("alexnet", **{**SIZES, "input_size": 96})
    assert model(torch.zeros(1, 1, 96, 96)).shape == (1, 10)
    assert create_model("resnet18", **SIZES, stem=None).stem[0].kernel_size == (3, 3)  # None: the factory's default


def test_create_model_passes_options_and_init():
    torch.manual_seed(0)
    model = create_model("vgg11", init="xavier", width_div=8, **{**SIZES, "input_size": 32, "in_chans": 3})
    assert model.features[0][0].out_channels == 8
    bound = (6 / (3 * 9 + 8 * 9)) ** 0.5  # xavier_uniform_ bound of the first conv
    assert model.features[0][0].weight.abs().max() <= bound
    with pytest.raises(ValueError, match="init=he is not allowed"):
        create_model("lenet", init="he")


@pytest.mark.parametrize("name", list_models())
def test_every_model_has_a_config(name):
    model_cfg = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "model" / f"{name}.yaml"))
    assert model_cfg.pop("name") == name
    with torch.device("meta"):
        model = create_model(name, **{**SIZES, "input_size": 224}, **model_cfg)
    assert sum(p.numel() for p in model.parameters()) > 0


# --- the generated model table in README.md and docs/models.md -------------------------------------------

def test_model_table_covers_every_model_and_is_up_to_date():
    spec = importlib.util.spec_from_file_location("model_table", REPO / "scripts" / "model_table.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert {name for name, *_ in script.ZOO} == set(list_models())
    block = script.generated_block()
    for path in script.TARGETS:
        if path.exists() and script.START in path.read_text():
            assert block in path.read_text(), f"{path.name} is stale: run python scripts/model_table.py"
            assert path.read_text().count(script.START) == 1, f"{path.name} holds the table more than once"
    twice = f"a\n{block}\nb\n{block.replace('lenet', 'old')}\nc\n"  # a stale second copy
    once = script.replace_block(twice, block)
    assert once.count(script.START) == 1 and "b\nc" in once and once != twice
