"""Every model of the zoo exported to TorchScript and ONNX at Fashion-MNIST's size, or the smallest its layers take
(VGG-11 at an eighth of its width), run on a batch larger than the one it was exported with (the batch dimension is
dynamic) and matched against the PyTorch model; the metadata read back."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from cnnbench import export
from cnnbench.models import create_model, list_models

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.load, in the test itself


# The smallest input each network takes (the d2l book resizes to 224 or 96; the layers are the same, the export and
# its check cost a fraction); the others at Fashion-MNIST's 28.
ZOO_SIZES = {"alexnet": 65, "nin": 67, "vgg11": 32, "densenet": 29}


@pytest.mark.parametrize("name", list_models())
def test_every_zoo_model_exports_to_both_formats_and_matches(name, tmp_path):
    size = ZOO_SIZES.get(name, 28)
    model = create_model(name, input_size=size, **({"width_div": 8} if name == "vgg11" else {})).eval()
    images = torch.randn(3, 1, size, size, generator=torch.Generator().manual_seed(0))
    meta = json.dumps({"model": name, "dataset": "fashion_mnist", "fingerprint": "x"})
    with torch.no_grad():
        expected = model(images)
        runners = {"torchscript": export.export_torchscript(model, images, tmp_path / "m.pt", meta)}
        if importlib.util.find_spec("onnxruntime") is not None:
            runners["onnx"] = export.export_onnx(model, images, tmp_path / "m.onnx", meta)
        for fmt, run in runners.items():
            got = run(images)  # a batch of 3, exported with 2: the batch dimension is dynamic
            assert float((got - expected).abs().max()) < export.TOLERANCE, fmt
    if "onnx" in runners:
        import onnx

        assert {p.key for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props} >= {"cnnbench", "model"}
    files = {"model.json": ""}
    torch.jit.load(str(tmp_path / "m.pt"), _extra_files=files)
    assert json.loads(files["model.json"])["model"] == name
