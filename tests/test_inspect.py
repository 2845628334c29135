"""`python -m cnnbench.inspect`: the report's fields, FLOPs, receptive fields through branches, and the CLI."""

from __future__ import annotations

import io
import json
import os

import pytest
import torch
from hydra import compose, initialize_config_dir
from rich.console import Console
from torch.utils.flop_counter import FlopCounterMode

from cnnbench import CONF_DIR
from cnnbench.errors import ConfigError
from cnnbench.inspect import adaptive_window, format_flops, inspect_model, render_table, run
from cnnbench.inspect import main as inspect_main
from cnnbench.models import create_model
from cnnbench.models.shapes import Window


def test_report_fields_and_types():
    report = inspect_model(create_model("lenet"), (1, 1, 28, 28), name="lenet")
    assert set(report) == {"model", "input_shape", "params", "flops", "layers"}
    assert report["model"] == "lenet"
    assert report["input_shape"] == [1, 1, 28, 28]
    assert report["params"] == 61_706
    assert report["params"] == sum(layer["params"] for layer in report["layers"])
    for layer in report["layers"]:
        assert set(layer) == {"name", "type", "output_shape", "params", "receptive_field"}
        assert isinstance(layer["receptive_field"], int | None)
    assert json.loads(json.dumps(report)) == report


@pytest.mark.parametrize(("name", "in_chans", "size", "device"), [
    ("lenet", 1, 28, "cpu"), ("cnn_small", 1, 28, "cpu"), ("resnet18", 3, 32, "meta"), ("googlenet", 1, 96, "meta"),
])
def test_flops_are_flop_counter_modes_total(name, in_chans, size, device):
    with torch.device(device):  # FlopCounterMode counts from shapes, so meta tensors give the same numbers
        model = create_model(name, in_chans=in_chans).eval()
        x = torch.zeros(1, in_chans, size, size)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
        assert inspect_model(model, tuple(x.shape))["flops"] == counter.get_total_flops() > 0


def test_lenet_flops_by_hand():
    # 2 * multiply-adds: conv1 6*28*28*25, conv2 16*10*10*150, Linear 400*120 + 120*84 + 84*10
    assert inspect_model(create_model("lenet"), (1, 1, 28, 28))["flops"] == 2 * (117_600 + 240_000 + 58_920)


def layers_by_call(report: dict) -> dict[str, list[dict]]:
    calls: dict[str, list[dict]] = {}
    for layer in report["layers"]:
        calls.setdefault(layer["name"], []).append(layer)
    return calls


def shapes_only(name: str, input_shape: tuple[int, ...]) -> dict:
    """inspect_model on the meta device: shapes, parameters and receptive fields without computing."""
    with torch.device("meta"):
        return inspect_model(create_model(name, in_chans=input_shape[1]), input_shape)


def test_residual_add_takes_the_wider_branch_and_reused_modules_are_listed_per_call():
    calls = layers_by_call(shapes_only("resnet18", (1, 1, 28, 28)))
    first_relu, after_add = calls["layer1.0.relu"]  # BasicBlock calls its one ReLU twice
    assert first_relu["receptive_field"] == 3 + 2  # 3x3 stem, then conv1
    assert calls["layer1.0.shortcut"][0]["receptive_field"] == 3  # identity: the block's input
    assert after_add["receptive_field"] == 3 + 2 + 2  # conv2's branch, wider than the shortcut
    assert calls["classifier"][0]["receptive_field"] is None


def test_inception_concat_takes_the_widest_branch():
    calls = layers_by_call(shapes_only("googlenet", (1, 1, 96, 96)))
    branch_ends = ("p1_relu", "p2_relu2", "p3_relu2", "p4_relu")
    widest = max(calls[f"net.2.0.{end}"][0]["receptive_field"] for end in branch_ends)
    assert widest == calls["net.2.0.p3_relu2"][0]["receptive_field"]  # the 5x5 path
    assert calls["net.2.1.p1_1"][0]["receptive_field"] == widest  # a 1x1 conv on the concatenation


def test_adaptive_pool_covers_its_widest_window():
    assert adaptive_window(7, 1) == Window(7, 7, 0, 1)
    assert adaptive_window(7, 4) == Window(3, 1, 0, 1)  # windows of 2, 3, 3, 2 rows overlap


def test_format_flops():
    assert [format_flops(n) for n in (12_884, 833_040, 1_876_000_000)] == ["12.88 KFLOPs", "0.83 MFLOPs",
                                                                            "1.88 GFLOPs"]


def test_render_table():
    console = Console(record=True, width=120, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(render_table(inspect_model(create_model("lenet"), (1, 1, 28, 28), name="lenet")))
    text = console.export_text()
    assert "features.3" in text and "16x10x10" in text and "14x14" in text
    assert "61,706" in text and "0.83 MFLOPs" in text


# --- through Hydra: compose API for the logic, one subprocess each for what only a process shows ----------

def compose_inspect(*overrides: str):
    with initialize_config_dir(CONF_DIR, version_base=None):
        return compose("inspect", overrides=list(overrides))


def test_run_prints_one_json_object(capsys):
    report = run(compose_inspect("model=nin", "data=fashion_mnist", "data.resize=224", "inspect.format=json"))
    assert json.loads(capsys.readouterr().out) == report
    assert report["input_shape"] == [1, 1, 224, 224]
    assert report["layers"][-1]["output_shape"] == [1, 10]


def test_run_passes_model_options_and_data_channels(capsys):
    report = run(compose_inspect("model=vgg11", "model.width_div=4", "data=cifar10"))
    assert report["input_shape"] == [1, 3, 32, 32]
    assert report["layers"][0]["output_shape"] == [1, 16, 32, 32]
    assert "features.0.0" in capsys.readouterr().out


def test_run_refuses_an_unknown_format():
    with pytest.raises(ConfigError, match="inspect.format"):
        run(compose_inspect("inspect.format=xml"))


@pytest.fixture
def run_inspect(cli_main, monkeypatch):
    def _run(*args: str, cwd):
        monkeypatch.chdir(cwd)
        return cli_main(*args, main=inspect_main)

    return _run


def test_cli_json_writes_no_files(run_inspect, tmp_path):
    result = run_inspect("model=lenet", "data=fashion_mnist", "inspect.format=json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["model"] == "lenet" and report["params"] == 61_706
    assert [layer["receptive_field"] for layer in report["layers"][:6]] == [5, 5, 6, 14, 14, 16]
    assert list(tmp_path.iterdir()) == []  # no outputs/, no .hydra/, no log file


def test_cli_refuses_a_too_small_input_in_one_line(run_inspect, tmp_path):
    result = run_inspect("model=alexnet", "data=fashion_mnist", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: model alexnet needs inputs of at least 65x65 (got 28x28): set data.resize=224 (the d2l book's size)"
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["resnet18", "googlenet", "densenet", "vgg11"])
def test_the_layer_table_fits_80_columns_with_every_name_and_shape_whole(name):
    from rich.console import Console

    size = 96 if name in ("googlenet", "densenet") else 224 if name == "vgg11" else 28
    with torch.device("meta"):
        model = create_model(name, input_size=size, **({"width_div": 4} if name == "vgg11" else {}))
    report = inspect_model(model.to_empty(device="cpu").eval(), (1, 1, size, size), name=name)
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(render_table(report))
    lines = console.export_text().splitlines()
    assert max(map(len, lines)) <= 80 and not any("…" in line for line in lines)
    rows = {line.split()[0]: line for line in lines if line.split() and line.split()[0] in
            {layer["name"] for layer in report["layers"]}}
    assert len(rows) == len({layer["name"] for layer in report["layers"]})  # every name whole, on one line
    for layer in report["layers"]:
        assert "x".join(map(str, layer["output_shape"][1:])) in rows[layer["name"]]
